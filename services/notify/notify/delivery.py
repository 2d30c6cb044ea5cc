"""The delivery worker: claim pending notifications, send each on its channel, record the outcome.

Three steps, three transactions, so that a crash anywhere leaves a state a restart
can read:

1. **claim** – pending rows that are due are locked (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so workers never take the same row; SQLite serialises writers),
   moved to ``sending`` with a fresh claim token and ``sending_since``, and rendered
   for their recipient (in memory), committed *before* anything is sent;
2. **send** – outside any transaction, with the notification id as idempotency key
   where the channel takes one;
3. **record** – ``delivered``, ``pending`` again with a later ``next_attempt_at``
   (temporary failure, exponential backoff) or ``failed`` (permanent, or the attempt
   limit reached), with ``notification.delivered`` / ``notification.failed`` in the
   same transaction (outbox). Only the holder of the claim token records.

A send that was handed over and got no answer (a read timeout, a dropped connection)
is the same unknown outcome met while the worker lives: the channel raises
``OutcomeUnknown`` where it cannot tell a duplicate, and the row is failed.

A worker killed between 2 and 3 leaves the row ``sending``. Once it is older than
the sending timeout, a channel that tells duplicates (webhook, an SMS gateway that
honours ``Idempotency-Key``, the letter) gets it again; one that cannot (SMTP, an
SMS gateway without idempotency) marks it ``failed`` with the reason, for an
operator to check and retry by hand, rather than risk a second message.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from environs import env
from marshmallow.validate import Range
from sqlalchemy import Row, and_, bindparam, literal_column, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from eventbus import envelope
from eventbus.unit_of_work import UnitOfWork
from notify import models, templates
from notify.channels import Artifact, Channel, Outgoing, PermanentFailure, TemporaryFailure
from notify.recipients import visitor_in_clear
from servicekit.localtime import local_zone
from servicekit.runtime import Runtime

log = logging.getLogger(__name__)

UNKNOWN_OUTCOME = (
    "the worker stopped during the send, and this channel cannot tell a duplicate: "
    "not resent automatically; check with the recipient, then retry by hand"
)


# Said of a send that raised what no channel should, on a channel that cannot tell a
# duplicate: the message may have gone out before the error.
UNKNOWN_SEND = (
    " during the send, on a channel that cannot tell a duplicate: it may have gone out; "
    "not resent automatically; check with the recipient, then retry by hand"
)


def _zone_setting() -> str | None:
    # Empty is unset: compose passes ${NIGHTTALK_NOTIFY_TIMEZONE:-} through as "".
    return os.environ.get("NIGHTTALK_NOTIFY_TIMEZONE", "").strip() or None


@dataclass(frozen=True)
class Settings:
    """How the worker retries and when it keeps quiet (env ``NIGHTTALK_NOTIFY_*``)."""

    max_attempts: int = 5
    backoff_base: float = 30.0  # seconds before the second attempt; doubles each time
    backoff_max: float = 3600.0
    sending_timeout: float = 300.0  # a 'sending' row older than this lost its worker
    batch: int = 20
    # Senders working side by side, each claiming one notification at a time: a send
    # waits on the gateway and the database, so one sender leaves the CPU idle.
    senders: int = 4
    quiet_start: dt.time = dt.time(22, 0)
    quiet_end: dt.time = dt.time(8, 0)
    # The quiet hours' clock; None: the programme's (NIGHTTALK_TIMEZONE), the visitors' own.
    timezone: str | None = None
    # A visitor still at the desk tonight gets the receipt at once, quiet hours or not.
    desk_minutes: float = 120.0

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Read the settings; a bad one raises ValueError naming its variable (environs)."""
        at_least_one, not_negative = Range(min=1), Range(min=0)
        values = {
            "max_attempts": env.int(
                "NIGHTTALK_NOTIFY_MAX_ATTEMPTS", cls.max_attempts, validate=at_least_one
            ),
            "backoff_base": env.float(
                "NIGHTTALK_NOTIFY_BACKOFF_BASE", cls.backoff_base, validate=not_negative
            ),
            "backoff_max": env.float(
                "NIGHTTALK_NOTIFY_BACKOFF_MAX", cls.backoff_max, validate=not_negative
            ),
            "sending_timeout": env.float(
                "NIGHTTALK_NOTIFY_SENDING_TIMEOUT", cls.sending_timeout, validate=not_negative
            ),
            "batch": env.int("NIGHTTALK_NOTIFY_BATCH", cls.batch, validate=at_least_one),
            "senders": env.int("NIGHTTALK_NOTIFY_SENDERS", cls.senders, validate=at_least_one),
            "quiet_start": env.time("NIGHTTALK_NOTIFY_QUIET_START", cls.quiet_start),
            "quiet_end": env.time("NIGHTTALK_NOTIFY_QUIET_END", cls.quiet_end),
            "timezone": _zone_setting(),
            "desk_minutes": env.float(
                "NIGHTTALK_NOTIFY_DESK_MINUTES", cls.desk_minutes, validate=not_negative
            ),
        }
        values.update(overrides)
        return cls(**values)

    def zone(self) -> ZoneInfo:
        """Return the zone of the quiet hours; one the database does not know raises
        ValueError naming the variable."""
        if self.timezone is None:
            return local_zone()
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # as local_zone() says
            raise ValueError(
                f"NIGHTTALK_NOTIFY_TIMEZONE={self.timezone!r} is not a time zone of the IANA "
                "database: write one like Asia/Shanghai, or leave it unset for the "
                "programme's (NIGHTTALK_TIMEZONE)"
            ) from exc

    def backoff(self, attempts: int) -> dt.timedelta:
        """Return the wait after the given number of failed attempts."""
        return dt.timedelta(
            seconds=min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_max)
        )


def check_settings() -> None:
    """Read the time zones now, so that a bad one stops the process at start, naming it.

    Otherwise messages would fail at delivery, one by one, while the process looked healthy.
    """
    from notify import channels

    local_zone()  # the dates in messages
    Settings.from_env().zone()  # the worker's numbers and times, and the quiet hours' zone
    channels.from_env()  # the channels' ports, timeouts and switches


def quiet_until(
    settings: Settings, now: dt.datetime, notification: models.Notification | Row
) -> dt.datetime | None:
    """Return when quiet hours end if an SMS to a visitor must wait for it, else None."""
    if notification.channel != models.SMS or notification.recipient_kind != models.VISITOR:
        return None
    zone = settings.zone()
    local = now.astimezone(zone)
    start, end = settings.quiet_start, settings.quiet_end
    clock = local.time()
    quiet = (clock >= start or clock < end) if start > end else (start <= clock < end)
    if not quiet:
        return None
    if notification.kind == models.RECEIPT:
        received = (notification.payload or {}).get("received_at")
        if received:
            at_desk = now - dt.datetime.fromisoformat(received)
            if at_desk <= dt.timedelta(minutes=settings.desk_minutes):
                return None
    wake = dt.datetime.combine(local.date(), end, tzinfo=zone)
    if wake <= local:
        wake += dt.timedelta(days=1)
    return wake.astimezone(dt.UTC)


# The worker's statements, built once: building one costs about as much as running it.
# The claim reads and writes its rows as plain columns: an ORM load and flush of each
# row claimed cost more than the statements themselves.
@functools.cache
def _due_statement():
    """Return the claim of rows due (``now``) or lost by their worker (``stale``), oldest first.

    Each row comes with what rendering it reads (the name of the unit it is about, the
    visitor's contact, the stored edit of its template, each NULL where there is none),
    so that a claim and its rendering take one read, not four. The rows are chosen and
    locked first, in a subquery, so that only they are joined, however many are due;
    they are found by the claim index (``ix_notifications_to_claim``), which holds only
    the rows to claim.
    """
    n = models.Notification.__table__
    # The statuses as literals, not parameters: the plan PostgreSQL keeps for this
    # prepared statement must be able to prove the claim index's condition (CLAIMABLE).
    pending, sending = (
        literal_column(f"'{status}'") for status in (models.PENDING, models.SENDING)
    )
    due = (
        select(n)
        .where(
            or_(
                and_(
                    n.c.status == pending,
                    or_(n.c.next_attempt_at.is_(None), n.c.next_attempt_at <= bindparam("now")),
                ),
                and_(n.c.status == sending, n.c.sending_since < bindparam("stale")),
            )
        )
        .order_by(n.c.created_at, n.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    units = models.UnitContact.__table__
    link, contact = models.ContactCase.__table__, models.VisitorContact.__table__
    stored = models.Template.__table__
    return (
        select(
            due,
            units.c.name.label("unit_name"),
            contact.c.visit_id.label("contact_visit_id"),
            contact.c.name_enc,
            contact.c.phone_enc,
            contact.c.address_enc,
            contact.c.language.label("contact_language"),
            stored.c.kind.label("stored_kind"),
            stored.c.subject.label("stored_subject"),
            stored.c.body.label("stored_body"),
        )
        .select_from(
            due.outerjoin(units, units.c.code == due.c.payload["unit"].as_string())
            .outerjoin(
                link,
                and_(link.c.case_id == due.c.case_id, due.c.recipient_kind == models.VISITOR),
            )
            .outerjoin(contact, contact.c.visit_id == link.c.visit_id)
            .outerjoin(
                stored,
                and_(
                    stored.c.kind == due.c.kind,
                    stored.c.channel == due.c.channel,
                    stored.c.language == due.c.language,
                ),
            )
        )
        .order_by(due.c.created_at, due.c.id)
    )


@functools.cache
def _take_statement():
    """Return the move of a claimed row (``row_id``) to sending under ``taken_as``, at ``at``."""
    n = models.Notification.__table__
    at = bindparam("at", type_=n.c.updated_at.type)
    return (
        update(n)
        .where(n.c.id == bindparam("row_id"))
        .values(
            status=models.SENDING,
            sending_since=at,
            claim=bindparam("taken_as"),
            attempts=n.c.attempts + 1,
            updated_at=at,
        )
    )


@functools.cache
def _unclaim_statement():
    """Return the return to 'pending' (at ``at``) of a row claimed under ``held`` and never
    sent (its worker stopped first): its attempt uncounted, for the next worker to take.

    'pending' also wakes the other workers on PostgreSQL (the table's trigger). Left
    'sending', it would wait out the sending timeout, and then an e-mail would be failed
    as of unknown outcome though it never went out.
    """
    n = models.Notification.__table__
    return (
        update(n)
        .where(n.c.id == bindparam("row_id"), n.c.claim == bindparam("held"))
        .where(n.c.status == models.SENDING)
        .values(
            status=models.PENDING,
            claim=None,
            sending_since=None,
            attempts=n.c.attempts - 1,
            updated_at=bindparam("at", type_=n.c.updated_at.type),
        )
    )


@functools.cache
def _postpone_statement():
    """Return the postponement of a row (``row_id``) to ``wake``, written at ``at``."""
    n = models.Notification.__table__
    return (
        update(n)
        .where(n.c.id == bindparam("row_id"))
        .values(
            next_attempt_at=bindparam("wake", type_=n.c.next_attempt_at.type),
            updated_at=bindparam("at", type_=n.c.updated_at.type),
        )
    )


@functools.cache
def _release_statement():
    """Return the postponement to ``wake`` (written at ``at``) of a row (``row_id``) found
    'sending' and stale: back to 'pending', its lost claim dropped.

    Left 'sending', it would stay the oldest row to claim: every claim until ``wake``
    would take it again, put it off again and say more were due, and the rows behind it
    would wait. Only a channel that tells duplicates gets here (the others' stale rows are
    failed first), so sending it again later is the resend a stale row gets anyway, with
    the same idempotency key; a worker still holding the dropped claim records nothing.
    """
    n = models.Notification.__table__
    return (
        update(n)
        .where(n.c.id == bindparam("row_id"))
        .values(
            status=models.PENDING,
            claim=None,
            sending_since=None,
            next_attempt_at=bindparam("wake", type_=n.c.next_attempt_at.type),
            updated_at=bindparam("at", type_=n.c.updated_at.type),
        )
    )


@functools.cache
def _claimed_statement():
    """Return the row still sending under the given ``claim``, locked."""
    n = models.Notification
    return (
        select(n)
        .where(n.id == bindparam("id"), n.claim == bindparam("claim"), n.status == models.SENDING)
        .with_for_update()
    )


@functools.cache
def _delivered_statement():
    """Return the mark as delivered (at ``at``) of the row still sending under ``held``."""
    n = models.Notification.__table__
    at = bindparam("at", type_=n.c.updated_at.type)
    return (
        update(n)
        .where(n.c.id == bindparam("row_id"), n.c.claim == bindparam("held"))
        .where(n.c.status == models.SENDING)
        .values(
            status=models.DELIVERED,
            claim=None,
            sending_since=None,
            next_attempt_at=None,
            updated_at=at,
            delivered_at=at,
            last_error=None,
        )
        .returning(n.c.id, n.c.case_id, n.c.case_number, n.c.kind, n.c.channel, n.c.recipient_kind)
    )


# The channel the notifications table's trigger (migration a3f1c0d9e2b4) notifies on
# PostgreSQL when a row becomes pending.
DUE_CHANNEL = "nighttalk_notify_due"

# The listening connection sits idle between notices. With the system's TCP keepalive
# (first probe after two hours) a link that died without a word would go unnoticed and
# the senders would fall back to their interval for good; probed after 10 s idle, a dead
# link fails the wait within about 25 s and the worker connects again.
LISTEN_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def listening_connection(dsn: str) -> psycopg.Connection:
    """Open the connection that LISTENs for due notifications, its dead link soon noticed."""
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10, **LISTEN_KEEPALIVE)


class _DueSignal:
    """Wake the waiting senders: a notification may have become due."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.generation = 0

    def notify(self, everyone: bool = False) -> None:
        """Wake one waiting sender (each that finds work wakes the next), or all of them."""
        with self._changed:
            self.generation += 1
            if everyone:
                self._changed.notify_all()
            else:
                self._changed.notify()

    def wait(self, seen: int, timeout: float) -> None:
        """Return once notified after ``seen`` was read, or after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation != seen, timeout)


@dataclass(frozen=True)
class Claimed:
    """A notification this worker holds, rendered when claimed or with why it could not be."""

    notification_id: str
    claim: str
    message: Outgoing | None = None
    error: str | None = None
    temporary: bool = False


class Worker:
    """Deliver notifications through the given channels."""

    def __init__(
        self,
        runtime: Runtime,
        channels: dict[str, Channel],
        settings: Settings | None = None,
        clock: Callable[[], dt.datetime] = models.now,
    ) -> None:
        self.runtime = runtime
        self.channels = channels
        self.settings = settings or Settings()
        self.clock = clock
        self._due = _DueSignal()
        self._readdress_lock = threading.Lock()
        self._readdress_at = 0.0

    def run(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Deliver with ``settings.senders`` threads until stopped.

        A sender with nothing to do waits until a notification becomes due (PostgreSQL
        tells at once, by NOTIFY) or ``interval`` seconds pass (a retry's time comes; on
        SQLite, anything new). Once ``stop`` is set, each sender records the send it has
        in hand and starts no other: a row it claimed and has not sent goes back to
        'pending' for the next worker (a whole round of sends on a slow gateway outlasted
        the grace period between SIGTERM and SIGKILL).
        """
        others = [
            threading.Thread(target=self._send_until, args=(stop, interval), name=f"sender-{n}")
            for n in range(1, self.settings.senders)
        ]
        helpers = [threading.Thread(target=self._wake_on_stop, args=(stop,), daemon=True)]
        if self.runtime.engine.dialect.name == "postgresql":
            helpers.append(threading.Thread(target=self._listen_for_due, args=(stop,), daemon=True))
        for thread in [*helpers, *others]:
            thread.start()
        try:
            self._send_until(stop, interval)
        finally:
            for thread in others:
                thread.join()

    def _send_until(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            seen = self._due.generation
            try:
                self._readdress_if_due(interval)
                _claimed, more = self._deliver_due(readdress=False, stop=stop)
            except Exception:  # noqa: BLE001 - a database blip must not end the worker
                log.exception("delivery round failed; trying again")
                more = False
            if not more:
                # Until a notice comes after ``seen`` (one during this round returns at
                # once), or the interval passes: then what fell due by the clock.
                self._due.wait(seen, interval)

    def _readdress_if_due(self, interval: float) -> None:
        # A sweep for a rare race (see readdress): once per interval for the whole worker,
        # not once per round of every sender.
        with self._readdress_lock:
            now = time.monotonic()
            if now < self._readdress_at:
                return
            self._readdress_at = now + interval
        self.readdress()

    def _wake_on_stop(self, stop: threading.Event) -> None:
        stop.wait()
        self._due.notify(everyone=True)

    def _listen_for_due(self, stop: threading.Event) -> None:
        """Pass PostgreSQL's notices of due notifications to the senders until stopped."""
        url = self.runtime.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                with listening_connection(dsn) as conn:
                    conn.execute(f"LISTEN {DUE_CHANNEL}")
                    self._due.notify()  # what became due while nobody listened
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._due.notify()
            except psycopg.Error:
                # Meanwhile the senders look every interval, as without NOTIFY.
                log.warning("delivery worker lost its LISTEN connection; reconnecting")
                stop.wait(1.0)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Deliver up to one batch, claiming one row at a time; return how many were claimed.

        One at a time, so a worker killed mid-send leaves at most one row per sender
        whose outcome is unknown, never a batch of rows it had not even tried. Once
        ``stop`` is set, no other send starts.
        """
        return self._deliver_due(readdress=True, stop=stop)[0]

    def _deliver_due(
        self, readdress: bool, stop: threading.Event | None = None
    ) -> tuple[int, bool]:
        """Deliver up to one batch; return how many were claimed and whether more are due.

        While more are due, a send's outcome is recorded in the transaction that claims
        the next row: one transaction per send instead of two, and still never more than
        one row of this sender's in 'sending'. ``stop`` is looked at before each claim and
        each send: once it is set, the send in hand is recorded alone, no row is claimed,
        and a row claimed meanwhile goes back unsent.
        """
        stopping = stop.is_set if stop is not None else _never
        if readdress:
            self.readdress()
        if stopping():
            return 0, False
        claimed_total = 0
        claimed, handled, more = self._claim(limit=1)
        for claims in range(1, self.settings.batch + 1):
            if claimed and stopping():
                # Claimed with the last record, as the stop came: not sent, so not kept.
                self.unclaim(claimed[0])
                return claimed_total, False
            if more:
                # A backlog: wake a waiting sender to share it. Without one, no sender is
                # woken to find nothing (each empty look is a transaction).
                self._due.notify()
            claimed_total += len(claimed)
            go_on = bool(handled and more) and claims < self.settings.batch
            if not claimed:
                if not go_on or stopping():
                    break
                claimed, handled, more = self._claim(limit=1)
                continue
            (item,) = claimed
            sent = self._send(item)
            if not go_on or stopping():
                self.record(item, **sent)
                break
            claimed, handled, more = self._record_and_claim_next(item, sent)
        return claimed_total, more

    def unclaim(self, item: Claimed) -> None:
        """Put a claimed row that was not sent back to 'pending', if the claim is still ours."""
        with self.runtime.unit_of_work() as uow:
            uow.session.execute(
                _unclaim_statement(),
                {"row_id": item.notification_id, "held": item.claim, "at": self.clock()},
            )
            uow.commit()
        log.info("claim given back unsent", extra={"notification_id": item.notification_id})

    def drain(self, limit: int = 1000, stop: threading.Event | None = None) -> int:
        """Deliver until nothing is due now or ``stop`` is set (for ``--once`` and tests);
        return how many."""
        total = 0
        while total < limit:
            done = self.run_once(stop)
            if not done:
                break
            total += done
        return total

    def readdress(self) -> int:
        """Address notifications left waiting for a contact that has arrived since.

        A notification recorded while its contact's event commits concurrently (on
        PostgreSQL the two handlers do not see each other's rows) would wait forever;
        this sweep settles it. Returns how many rows it addressed.
        """
        n = models.Notification
        with self.runtime.unit_of_work() as uow:
            visitors = uow.session.execute(
                select(n, models.VisitorContact)
                .join(models.ContactCase, models.ContactCase.case_id == n.case_id)
                .join(
                    models.VisitorContact,
                    models.VisitorContact.visit_id == models.ContactCase.visit_id,
                )
                .where(n.status == models.AWAITING_CONTACT, n.recipient_kind == models.VISITOR)
                .limit(self.settings.batch)
                .with_for_update(skip_locked=True, of=n)
            ).all()
            units = uow.session.execute(
                select(n, models.UnitContact)
                .join(models.UnitContact, models.UnitContact.code == n.recipient_ref)
                .where(
                    n.status == models.AWAITING_CONTACT,
                    n.recipient_kind.in_((models.UNIT, models.LEADER)),
                )
                .limit(self.settings.batch)
                .with_for_update(skip_locked=True, of=n)
            ).all()
            for row, contact in [*visitors, *units]:
                row.address_to(contact)
            uow.commit()
        return len(visitors) + len(units)

    def claim(self, limit: int | None = None) -> list[Claimed]:
        """Move due rows to 'sending' and commit that before any send."""
        return self._claim(limit or self.settings.batch)[0]

    def _claim(self, limit: int) -> tuple[list[Claimed], int, bool]:
        """Claim up to ``limit`` due rows; return them, how many rows were handled, and
        whether more were due (one row past the limit is read, and left, to know)."""
        with self.runtime.unit_of_work() as uow:
            taken = self._claim_in(uow, limit, self.clock())
            uow.commit()
        return taken

    def _claim_in(
        self, uow: UnitOfWork, limit: int, now: dt.datetime
    ) -> tuple[list[Claimed], int, bool]:
        """Claim up to ``limit`` due rows in the unit of work, as :meth:`_claim` does."""
        stale = now - dt.timedelta(seconds=self.settings.sending_timeout)
        claimed: list[Claimed] = []
        session = uow.session
        rows = session.execute(
            _due_statement(), {"now": now, "stale": stale, "limit": limit + 1}
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            channel = self.channels.get(row.channel)
            if row.status == models.SENDING and (channel is None or not channel.dedupes):
                log.warning(
                    "send outcome unknown; not resending",
                    extra={"notification_id": row.id, "channel": row.channel},
                )
                # Rare: the row, locked above, as the object the outcome's record takes.
                lost = session.get(models.Notification, row.id)
                self._finish(uow, lost, now, models.FAILED, UNKNOWN_OUTCOME)
                continue
            wake = quiet_until(self.settings, now, row)
            if wake is not None:
                postpone = (
                    _release_statement() if row.status == models.SENDING else _postpone_statement()
                )
                session.execute(postpone, {"row_id": row.id, "wake": wake, "at": now})
                continue
            claim = models.new_id()
            session.execute(_take_statement(), {"row_id": row.id, "taken_as": claim, "at": now})
            # Rendered in the claim's transaction: the row is in hand, so the send
            # needs no transaction of its own to read it again.
            claimed.append(self._rendered(session, row, claim))
        return claimed, len(rows), more

    def _record_and_claim_next(self, item: Claimed, sent: dict) -> tuple[list[Claimed], int, bool]:
        """Record a send's outcome and claim the next due row in one transaction; return
        the claim as :meth:`_claim` does.

        Should that transaction fail, the outcome is recorded on its own, as it would be
        without a next row: the next claim's failure never costs a send its record.
        """
        now = self.clock()
        try:
            with self.runtime.unit_of_work() as uow:
                status = self._record_in(uow, item, now=now, **sent)
                # Written before the claim reads (as the session's autoflush would; said
                # here because the claim depends on it): a send that outlasted the sending
                # timeout would otherwise find its own row still 'sending', and stale.
                uow.session.flush()
                taken = self._claim_in(uow, 1, now)
                uow.commit()
        except Exception:  # noqa: BLE001 - the record alone below, or that raises
            log.warning(
                "recording with the next claim failed; recording alone",
                extra={"notification_id": item.notification_id},
            )
            self.record(item, **sent)
            return [], 0, False
        _recorded(item, status)
        return taken

    def deliver(self, item: Claimed) -> str:
        """Send one claimed notification and record what happened; return the new status."""
        return self.record(item, **self._send(item))

    def _send(self, item: Claimed) -> dict:
        """Send a claimed notification; return what :meth:`record` takes of the outcome."""
        artifact: Artifact | None = None
        error, temporary = item.error, item.temporary
        if item.message is not None:
            message = item.message
            channel = self.channels.get(message.channel)
            try:
                if channel is None:
                    raise PermanentFailure(f"no sender for channel {message.channel}")
                artifact = channel.send(message)
            except TemporaryFailure as exc:
                error, temporary = str(exc), True
            except PermanentFailure as exc:
                error = str(exc)  # OutcomeUnknown too: handed over, no answer, no dedupe
            except Exception as exc:  # noqa: BLE001 - a bug in one send must not stop the rest
                log.exception(
                    "send failed unexpectedly", extra={"notification_id": item.notification_id}
                )
                # It may have failed after the message went out: tried again only where
                # the channel tells a duplicate, as after a crash.
                temporary = channel.dedupes
                error = f"unexpected {type(exc).__name__}" + ("" if temporary else UNKNOWN_SEND)
        return {"error": error, "temporary": temporary, "artifact": artifact}

    def _rendered(self, session: Session, row: Row, claim: str) -> Claimed:
        """Return the row claimed (as ``claim``) with its message, or with why it cannot be
        rendered."""
        try:
            return Claimed(row.id, claim, message=self.prepare(session, row))
        except PermanentFailure as exc:
            return Claimed(row.id, claim, error=str(exc))
        except SQLAlchemyError:
            raise  # the database's fault, not the row's: the claim rolls back, tried again
        except Exception as exc:  # noqa: BLE001 - a bug in one render must not stop the rest
            log.exception("render failed unexpectedly", extra={"notification_id": row.id})
            return Claimed(row.id, claim, error=f"unexpected {type(exc).__name__}", temporary=True)

    def prepare(self, session: Session, row: Row) -> Outgoing:
        """Render the notification for its recipient, with the address in clear (memory only).

        ``row`` is a row of the claim, with the unit's name, the visitor's contact and the
        stored template beside the notification's columns.
        """
        unit_name = row.unit_name
        if row.recipient_kind == models.VISITOR:
            if row.contact_visit_id is None:
                raise PermanentFailure("the visitor's contact is gone")
            recipient = visitor_in_clear(row, row.contact_language)
            address = recipient.phone if row.channel == models.SMS else None
            recipient_name = recipient.name
        else:
            contact = session.get(models.UnitContact, row.recipient_ref)
            if contact is None:
                raise PermanentFailure("the unit's contact is gone")
            address = contact.address_for(row.recipient_kind, row.channel)
            recipient_name = contact.leader if row.recipient_kind == models.LEADER else contact.name
        context = {name: None for name in templates.FIELDS[row.kind]}
        context.update(row.payload or {})
        context["unit_name"] = unit_name or context.get("unit")
        context["recipient_name"] = recipient_name or ""
        stored = (
            templates.Source(row.stored_subject, row.stored_body)
            if row.stored_kind is not None
            else None
        )
        source = templates.in_force(stored, row.kind, row.channel, row.language)
        try:
            rendered = templates.render(source, row.channel, context)
        except Exception as exc:  # noqa: BLE001 - a template error is the template's fault
            raise PermanentFailure(f"template does not render: {type(exc).__name__}") from exc
        return Outgoing(
            notification_id=row.id,
            case_id=row.case_id,
            case_number=row.case_number,
            kind=row.kind,
            channel=row.channel,
            recipient_kind=row.recipient_kind,
            address=address,
            language=row.language,
            subject=rendered.subject,
            body=rendered.body,
            payload=dict(row.payload or {}),
        )

    def record(
        self,
        item: Claimed,
        *,
        error: str | None,
        temporary: bool,
        artifact: Artifact | None,
    ) -> str:
        """Record a send's outcome, if this worker still holds the claim."""
        with self.runtime.unit_of_work() as uow:
            status = self._record_in(
                uow, item, error=error, temporary=temporary, artifact=artifact, now=self.clock()
            )
            if status != "lost":
                uow.commit()
        return _recorded(item, status)

    def _record_in(
        self,
        uow: UnitOfWork,
        item: Claimed,
        *,
        error: str | None,
        temporary: bool,
        artifact: Artifact | None,
        now: dt.datetime,
    ) -> str:
        """Write a send's outcome in the unit of work; return the row's new status, or
        'lost' (and write nothing) if the claim is no longer this worker's."""
        if error is None and artifact is None:
            # A plain delivery (most sends): one statement marks the row and reads what
            # its event tells, instead of reading, locking and writing it back.
            row = uow.session.execute(
                _delivered_statement(),
                {"row_id": item.notification_id, "held": item.claim, "at": now},
            ).first()
            if row is None:
                return "lost"
            uow.emit(_outcome_event(row, models.DELIVERED, now, None))
            return models.DELIVERED
        row = uow.session.scalars(
            _claimed_statement(), {"id": item.notification_id, "claim": item.claim}
        ).first()
        if row is None:
            return "lost"
        if error is None:
            if artifact is not None:
                uow.session.merge(
                    models.Letter(
                        notification_id=row.id,
                        html=artifact.html,
                        pdf=artifact.pdf,
                        created_at=now,
                    )
                )
            self._finish(uow, row, now, models.DELIVERED, None)
        elif temporary and row.attempts < self.settings.max_attempts:
            row.status = models.PENDING
            row.next_attempt_at = now + self.settings.backoff(row.attempts)
            row.last_error = error[:500]
            row.claim = None
            row.sending_since = None
            row.updated_at = now
        else:
            self._finish(uow, row, now, models.FAILED, error)
        return row.status

    def _finish(
        self,
        uow: UnitOfWork,
        row: models.Notification,
        now: dt.datetime,
        status: str,
        error: str | None,
    ) -> None:
        row.status = status
        row.claim = None
        row.sending_since = None
        row.next_attempt_at = None
        row.updated_at = now
        if status == models.DELIVERED:
            row.delivered_at = now
            row.last_error = None
        else:
            row.last_error = (error or "")[:500]
        uow.emit(_outcome_event(row, status, now, row.last_error))


def _never() -> bool:
    return False


def _recorded(item: Claimed, status: str) -> str:
    """Log a send's recorded outcome (or the claim lost meanwhile) and return its status."""
    if status == "lost":
        log.warning("claim lost before recording", extra={"notification_id": item.notification_id})
    else:
        log.info(
            "delivery recorded",
            extra={"notification_id": item.notification_id, "status": status},
        )
    return status


def _outcome_event(row, status: str, now: dt.datetime, error: str | None) -> envelope.OutgoingEvent:
    """Return ``notification.delivered`` or ``notification.failed`` for a notification."""
    data = {
        "notification_id": row.id,
        "case_id": row.case_id,
        "case_number": row.case_number,
        "kind": row.kind,
        "channel": row.channel,
        "recipient_kind": row.recipient_kind,
        "occurred_at": now.isoformat(),
    }
    if status == models.FAILED:
        data["error"] = error
    return envelope.build(
        service="notify", routing_key=f"notification.{status}", subject=row.case_id, data=data
    )
