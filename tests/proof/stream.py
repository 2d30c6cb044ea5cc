"""A steady stream of visits posted like a reception desk, and the effects they leave.

Scenarios of the proof suite post visits at a steady rate while something breaks, then
count what each case answered 201 caused:

- routing: its assignments (one per case: exactly one routing);
- notify: the SMS its visitor received, through an SMS gateway of the test's own that
  honours ``Idempotency-Key`` as a good gateway does (a resend of the same notification
  is one message to the visitor) — a receipt (回执) and a "routed to" message per case;
- intake: the outbox rows not yet published (the backlog while the broker is away).

Every visit has one issue, signed over to one unit, and its own phone number.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests
from proofkit import start_system
from sqlalchemy import create_engine, text

from servicekit.localsystem import SmsGateway, System

UNIT = "xc-zhishan"
# What the visitor of a signed-over case hears by SMS under notify's default rules.
VISITOR_SMS = ("receipt", "routed")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# What the delivery worker needs to send to our gateway, whatever the hour the suite runs.
NOTIFY_ENV = {
    "NIGHTTALK_SMS_DEDUPES": "1",  # our gateway honours Idempotency-Key
    "NIGHTTALK_NOTIFY_QUIET_START": "00:00",  # no quiet hours: the "routed" SMS goes at once
    "NIGHTTALK_NOTIFY_QUIET_END": "00:00",
    # A row a killed worker left 'sending' is taken up again after this many seconds
    # (compose's default, 300, would outlast the scenario; the gateway dedupes a resend).
    "NIGHTTALK_NOTIFY_SENDING_TIMEOUT": "5",
}


def visit(n: int) -> dict:
    """Return visit ``n`` of a stream: one issue signed over to UNIT, received just now."""
    return {
        "channel": "daily",
        "received_at": dt.datetime.now(SHANGHAI).isoformat(timespec="seconds"),
        "headcount": 1,
        "visitor": {"name": "访客", "phone": f"1390{n:07d}"},
        "issues": [
            {
                "category": "land",
                "summary": f"土地纠纷 {n}",
                "disposition": {"action": "sign_over", "unit": UNIT},
            }
        ],
    }


@contextlib.contextmanager
def system_sending_sms(amqp_url: str, db_backend: str, folder, gateway: SmsGateway):
    """Run the whole system with notify sending its SMS to the test's gateway."""
    env = {**NOTIFY_ENV, "NIGHTTALK_SMS_URL": gateway.url}
    with start_system(amqp_url, db_backend, folder, extra_env=env) as running:
        # Only what compose declares reaches a process: make sure ours all do.
        assert set(env) <= running.specs["notify-deliver"].env_names
        yield running


@dataclass
class Accepted:
    """A visit intake answered 201, and the cases it made."""

    n: int
    key: str
    case_ids: list[str]


@dataclass
class VisitStream:
    """Post ``visits`` visits at ``rate`` per second from a thread, retrying like a desk does.

    With ``visits=None`` the stream goes on until :meth:`stop`. Each visit is posted with
    its own Idempotency-Key until it is answered 201; a refused connection, a timeout or a
    5xx is retried with the same key and body. A 4xx, or a visit still not accepted after
    ``give_up`` seconds, is recorded in ``refused``.
    """

    system: System
    visits: int | None
    rate: float
    give_up: float = 120.0
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    retries: int = 0
    ended: float | None = None  # when the last visit was answered, monotonic

    def start(self) -> VisitStream:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visit-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Post no further visit (the one in hand is still retried until answered)."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not finish"

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def posted(self) -> int:
        return len(self.accepted) + len(self.refused)

    @property
    def case_ids(self) -> list[str]:
        return [case for a in list(self.accepted) for case in a.case_ids]

    def _run(self) -> None:
        began = time.monotonic()
        self._session = requests.Session()
        n = 0
        while n != self.visits:
            # Steady: visit n is due at n / rate, however long the earlier ones took.
            if self._stopping.wait(max(0.0, began + n / self.rate - time.monotonic())):
                break
            self._post(n)
            n += 1
        self.ended = time.monotonic()

    def _post(self, n: int) -> None:
        body, key = visit(n), f"{self.prefix}-{n}"
        headers = {**self.system.token("city-org"), "Idempotency-Key": key}
        deadline = time.monotonic() + self.give_up
        while True:
            try:
                r = self._session.post(
                    self.system.url("intake", "/v1/visits"), json=body, headers=headers, timeout=10
                )
                if r.status_code == 201:
                    cases = [c["case_id"] for c in r.json()["cases"]]
                    self.accepted.append(Accepted(n, key, cases))
                    return
                if r.status_code < 500:
                    self.refused.append((n, f"{r.status_code} {r.text[:300]}"))
                    return
            except requests.RequestException:
                # The worker died under us: retry on a fresh connection.
                self._session = requests.Session()
            if time.monotonic() > deadline:
                self.refused.append((n, f"not accepted within {self.give_up} s"))
                return
            self.retries += 1
            time.sleep(0.2)


@dataclass
class Effects:
    """What the accepted cases caused: assignments and visitor SMS per case."""

    case_ids: list[str]
    assignments: Counter
    sms: dict[str, Counter]  # case → kind → messages the visitor received
    unexpected: list[str]  # effects of no accepted case (a visit made twice by a retry)

    def lost(self) -> list[str]:
        """Return the cases not routed, or whose visitor missed one of their SMS."""
        return [
            c
            for c in self.case_ids
            if self.assignments[c] == 0 or any(self.sms[c][k] == 0 for k in VISITOR_SMS)
        ]

    def duplicated(self) -> list[str]:
        """Return the cases routed twice or told twice, and any effect of no accepted case."""
        twice = [
            c
            for c in self.case_ids
            if self.assignments[c] > 1 or any(n > 1 for n in self.sms[c].values())
        ]
        return twice + self.unexpected


class Ledger:
    """Read the effects of a stream from the services' own databases and the SMS gateway."""

    def __init__(self, system: System, gateway: SmsGateway) -> None:
        self.gateway = gateway
        self.engines = {s: create_engine(url) for s, url in system.database_urls.items()}

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()

    def _rows(self, service: str, sql: str):
        with self.engines[service].connect() as conn:
            return conn.execute(text(sql)).all()

    def wait_unit_known(self, timeout: float = 90.0) -> None:
        """Wait until intake's copy of the unit directory (from routing's events) has UNIT.

        A visit naming a unit intake does not know yet is refused (422): on a freshly
        started system the directory arrives a moment after the processes are up.
        """
        deadline = time.monotonic() + timeout
        sql = f"SELECT count(*) FROM units WHERE code = '{UNIT}'"
        while not self._rows("intake", sql)[0][0]:
            assert time.monotonic() < deadline, f"intake never learnt of unit {UNIT}"
            time.sleep(0.2)

    def outbox_backlog(self, service: str = "intake") -> int:
        """Return how many of a service's events wait in its outbox, unpublished."""
        return self._rows(service, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0]

    def wait_outboxes_published(self, timeout: float) -> dict[str, int]:
        """Wait until every relay has published what a queue waits for; return what is left.

        A row the broker returned as unroutable (no queue bound for its key) is not
        counted: it stays unsent by design until a queue is bound.
        """
        sql = (
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL "
            "AND (last_error IS NULL OR last_error NOT LIKE 'unroutable%')"
        )
        deadline = time.monotonic() + timeout
        while True:
            left = {s: n for s in self.engines if (n := self._rows(s, sql)[0][0])}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.25)

    def visitor_sms_rows(self) -> dict[str, tuple[str, str, str]]:
        """Return notify's visitor SMS rows: id → (case, kind, status)."""
        rows = self._rows(
            "notify",
            "SELECT id, case_id, kind, status FROM notifications "
            "WHERE recipient_kind = 'visitor' AND channel = 'sms'",
        )
        return {id_: (case, kind, status) for id_, case, kind, status in rows}

    def effects(self, case_ids: list[str]) -> Effects:
        """Count what each case caused, and whatever no accepted case explains."""
        wanted = set(case_ids)
        assignments = Counter(
            dict(self._rows("routing", "SELECT case_id, count(*) FROM assignments GROUP BY 1"))
        )
        rows = self.visitor_sms_rows()
        sms: dict[str, Counter] = {c: Counter() for c in case_ids}
        unexpected = [f"assignment of {c}" for c in assignments if c not in wanted]
        unexpected += [f"notification of {c}" for c, _, _ in rows.values() if c not in wanted]
        for key in list(self.gateway.messages):
            if key not in rows:
                unexpected.append(f"SMS {key} of no notification")
            elif rows[key][0] in wanted:
                sms[rows[key][0]][rows[key][1]] += 1
        return Effects(list(case_ids), assignments, sms, unexpected)

    def wait_for_effects(self, case_ids: list[str], timeout: float) -> Effects:
        """Poll until every case is routed and its visitor told, or until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            effects = self.effects(case_ids)
            if not effects.lost() or time.monotonic() > deadline:
                return effects
            time.sleep(0.25)

    def wait_delivered(self, case_ids: list[str], timeout: float) -> list[str]:
        """Wait until notify records every visitor SMS of the cases delivered; return the rest."""
        wanted = set(case_ids)
        deadline = time.monotonic() + timeout
        while True:
            rows = self.visitor_sms_rows().values()
            pending = [f"{c} {k} {s}" for c, k, s in rows if c in wanted and s != "delivered"]
            if not pending or time.monotonic() > deadline:
                return pending
            time.sleep(0.25)
