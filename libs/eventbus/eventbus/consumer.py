"""Consume a service's queue: apply each event once, ack only after the commit.

The connection lives in the thread that runs :meth:`Consumer.run`; handlers run in
one worker thread of their own, so a long handler never starves the connection's
heartbeats. The worker hands its outcomes to the connection's thread, which sends them
when it next wakes (a delivery, or its half-second tick); it wakes that thread with
``add_callback_threadsafe``, as pika's own examples do, only for a nack or a reject or
when half the prefetch waits for its ack. A link that goes silent (a black hole: no
reset, no bytes) is dropped after one heartbeat timeout without a byte from the broker,
which sends one every half timeout, and the consumer reconnects. A database call unanswered for as
long is cancelled on the server, its link broken if the server does not answer either
(:mod:`eventbus.statement_watch`), and the event is retried.

The subscription can also end while the connection stands: the broker closes the channel
(its ``consumer_timeout`` strikes a delivery held unacked too long, e.g. through a long
database outage) or cancels the consumer (its queue deleted). The consumer takes that as
a lost connection: it says so, drops the connection and subscribes again with the same
backoff; what it held unacked is redelivered, and the inbox makes a second application
a no-op. ``nighttalk_consumer_consuming{service}`` is 1 while it is subscribed. RabbitMQ
3.10 does not always cancel the consumers of a quorum queue it deletes, so the consumer
also looks at its queue every ``queue_check`` seconds (:class:`_QueueWatch`, a passive
declare from the connection's thread between two ticks): a queue gone, one without a
consumer, or one whose ready messages do not come is a subscription lost as well.

Under load, the messages already prefetched when the worker is free are applied
together: one transaction, one commit, one publish of what they caused, then their
acks; a batch takes no new event once it has lasted ``BATCH_SECONDS``. If a handler
fails, the batch is rolled back, that event is judged at once (dead-lettered if invalid,
requeued if a bug: one handler run per delivery, as alone) and the others are applied
again without it; after a database error each event goes on its own. One bad event
never takes the others with it.

A message that cannot be decoded or validated is rejected to the service's
dead-letter queue; a handler that fails for another reason is retried (infrastructure
errors in place, other errors by redelivery up to the delivery limit). Which database
errors are infrastructure is told by their SQLSTATE (:func:`database_trouble`): a database
that is away or refuses writes (a failover's demoted primary) is waited for, and never
dead-letters an event.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pika
import pika.exceptions
import sqlalchemy.event
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from eventbus import metrics, topology, tracing
from eventbus.connection import abort, bytes_received, connect, deadline, heartbeat_timeout
from eventbus.envelope import PoisonMessage, ReceivedEvent, decode
from eventbus.names import routing_key_of, service_queue
from eventbus.statement_watch import StatementWatch
from eventbus.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, ReceivedEvent], None]


@dataclass
class _Delivery:
    tag: int
    routing_key: str
    properties: pika.BasicProperties
    body: bytes
    redelivered: bool


class SubscriptionLost(Exception):
    """The broker ended the consumer's subscription while its connection stood."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error


class _QueueWatch:
    """Look at the queue a consumer is subscribed to, passively, every ``interval`` seconds.

    RabbitMQ 3.10 does not always send Basic.Cancel to the consumers of a quorum queue it
    deletes, and the consumer would stay subscribed to nothing. Seen in this project's
    tests: the queue deleted and declared again at once (`nighttalk broker declare`,
    another consumer's start) never brought a cancel, and the new queue even counted the
    consumer as its own and handed it messages it never received (unacknowledged, held by
    nobody) until its window was full. A passive declare on a channel of its own (a
    NOT_FOUND closes the channel it was sent on) tells three ways that the subscription is
    lost: the queue is gone; it has no consumer; or it has messages ready, the consumer's
    window has room, and nothing came since the last look. RabbitMQ answers "no consumer,
    no message" when a quorum queue's leader does not answer within 250 ms (a node
    failing), so the last two count only when seen in two looks in a row, the second a
    moment after the first.
    """

    RECHECK = 2.0

    def __init__(
        self,
        conn: pika.BlockingConnection,
        queue: str,
        settlements: _Settlements,
        *,
        interval: float,
        bound: float,
    ) -> None:
        self.conn = conn
        self.queue = queue
        self.settlements = settlements
        self.interval = interval
        self.bound = bound
        self.due = time.monotonic() + interval
        # What the previous look found amiss ("no consumer", "no delivery"), when, and how
        # many deliveries had come by then.
        self.amiss: tuple[str, float, int] | None = None

    def look_if_due(self) -> None:
        """Raise SubscriptionLost if it is time to look and the queue is not served."""
        if time.monotonic() < self.due:
            return
        answer = self._look()
        now = time.monotonic()
        self.due = now + self.interval
        if answer is None:
            return
        consumers, ready = answer
        settlements = self.settlements
        if consumers == 0:
            amiss = "no consumer on the queue"
        elif ready and settlements.held < settlements.prefetch:
            amiss = "no delivery from the queue"
        else:
            self.amiss = None
            return
        before = self.amiss
        if before is None or before[0] != amiss or before[2] != settlements.received:
            self.amiss = (amiss, now, settlements.received)
            self.due = now + min(self.RECHECK, self.interval)
            return
        raise SubscriptionLost(
            amiss,
            f"{self.queue}: {consumers} consumers, {ready} messages ready, "
            f"{settlements.held} held, in two looks {round(now - before[1], 1)} s apart",
        )

    def _look(self) -> tuple[int, int] | None:
        """Return the queue's consumers and ready messages (None if the broker would not say)."""
        # A look unanswered for as long as the link's silence rule allows drops the link.
        with deadline(self.conn, self.bound, f"queue check unanswered for {self.bound} s"):
            channel = self.conn.channel()
            try:
                declared = channel.queue_declare(self.queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    raise SubscriptionLost("queue not found", exc.reply_text) from exc
                log.warning(
                    "queue check refused",
                    extra={"queue": self.queue, "error": f"{exc.reply_code} {exc.reply_text}"},
                )
                return None
            channel.close()
        return declared.method.consumer_count, declared.method.message_count


class _Settlements:
    """The outcomes the worker has come to, for the connection's thread to send.

    The worker does not wake the connection's thread for every batch: its acks go out the
    next time that thread wakes anyway (the next delivery, or its half-second tick), which
    under a flow of events is moments later; a wake of its own for each event cost about
    a twelfth of an event's CPU (the benchmark's event hop). It is woken at once for a nack
    or a reject, and when the deliveries waiting reach half the prefetch, so that the
    broker's window never fills with messages applied and not yet acked. An ack lost with
    the connection only lets the broker deliver that event again, which the inbox makes a
    no-op, as for any crash between a commit and its ack.
    """

    def __init__(self, conn: pika.BlockingConnection, channel, prefetch: int) -> None:
        self.conn = conn
        self.channel = channel
        self.prefetch = prefetch
        self._lock = threading.Lock()
        self._waiting: list[tuple[list[_Delivery], list[str]]] = []
        self._deliveries = 0
        # Deliveries received and settled on this channel (the connection's thread only).
        self.received = 0
        self.settled = 0

    def add(self, batch: list[_Delivery], outcomes: list[str]) -> None:
        """Keep a batch's outcomes to send (the worker's thread); wake the connection's
        thread if they cannot wait."""
        with self._lock:
            self._waiting.append((batch, outcomes))
            self._deliveries += len(batch)
            urgent = self._deliveries * 2 >= self.prefetch
        if urgent or any(outcome != "ack" for outcome in outcomes):
            self.conn.add_callback_threadsafe(self.send)

    def send(self) -> None:
        """Send what the worker has settled, in the order it did (the connection's thread)."""
        with self._lock:
            waiting, self._waiting, self._deliveries = self._waiting, [], 0
        for batch, outcomes in waiting:
            self.settled += len(batch)
            self._settle(batch, outcomes)

    @property
    def held(self) -> int:
        """Return how many deliveries are received and not settled yet."""
        return self.received - self.settled

    def _settle(self, batch: list[_Delivery], outcomes: list[str]) -> None:
        """Ack, reject or requeue on the connection's thread, if the channel still stands.

        A run of acks is one ``multiple`` ack up to its last tag: the deliveries before
        it on this channel are settled already (they came earlier, in order, and were
        settled in order), so it acks only this run.
        """
        channel = self.channel
        if not channel.is_open:
            return
        run: list[_Delivery] = []
        for delivery, outcome in [*zip(batch, outcomes, strict=True), (None, None)]:
            if outcome == "ack":
                run.append(delivery)
                continue
            if run:
                channel.basic_ack(run[-1].tag, multiple=len(run) > 1)
                run = []
            if outcome == "dead":
                channel.basic_reject(delivery.tag, requeue=False)
            elif outcome is not None:
                channel.basic_nack(delivery.tag, requeue=True)


# SQLSTATEs that say the database cannot take a write now, whatever the event: away
# (class 08, connection; 57P, operator intervention: admin or crash shutdown, cannot connect
# now; 53, insufficient resources: disk full, too many connections; 58, system error: I/O),
# or refusing writes (25006: a read-only transaction, as on a failover's demoted primary or
# under default_transaction_read_only).
_AWAY_CLASSES = ("08", "53", "57P", "58")
_AWAY_STATES = frozenset({"25006"})
# ...or another transaction stands in its way for a moment: a serialization failure, a
# deadlock, a lock wait past lock_timeout, a statement cancelled (by statement_timeout, or
# by the statement watch on an unanswered call).
_CONTENDED_STATES = frozenset({"40001", "40P01", "55P03", "57014"})


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def database_trouble(exc: BaseException) -> str | None:
    """Return "away" or "contended" if a database error is none of the event's doing.

    Told by the SQLSTATE the server sent; an error without one (a link lost or broken, a
    connection refused, SQLite's locked file) is the database being away if the driver
    calls it operational. Any other error (a bug, bad data) is the event's: None.
    """
    if not isinstance(exc, DBAPIError):
        return None
    sqlstate = _sqlstate(exc)
    if sqlstate is None:
        return "away" if isinstance(exc, OperationalError | InterfaceError) else None
    if sqlstate in _CONTENDED_STATES:
        return "contended"
    if sqlstate in _AWAY_STATES or sqlstate.startswith(_AWAY_CLASSES):
        return "away"
    return None


def _drop_links_to_a_database_away(context) -> None:
    """Have SQLAlchemy discard its pooled links after the server said it is away for writes.

    A link to a demoted primary stays read-only after the failover; the next try must
    connect afresh (to the new primary). SQLAlchemy does so for the disconnects it knows.
    """
    sqlstate = _sqlstate(context.sqlalchemy_exception)
    if sqlstate and (sqlstate in _AWAY_STATES or sqlstate.startswith(_AWAY_CLASSES)):
        context.is_disconnect = True


def _event_key(ce_type: str) -> str | None:
    # A message replayed from a dead-letter queue arrives with the queue's name as its
    # routing key; its CloudEvents type still says which event it is.
    try:
        return routing_key_of(ce_type)
    except ValueError:
        return None


def _constraint_name(exc: IntegrityError) -> str | None:
    """Return the name of the constraint a PostgreSQL error names (SQLite names none)."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


# Longest wait between two tries to reach the broker or the database again. A try is one
# handshake, cheap for either; a longer cap would leave events waiting that long after
# the outage ends (a 30 s cap kept routing idle 25 s after a 20 s cut in the proof suite).
RECONNECT_CAP = 5.0

# Seconds between two looks at a consumer's queue (see _QueueWatch): how long at most a
# consumer stays subscribed to a queue deleted without a cancel. A look is a passive
# declare on a channel opened and closed for it: three round trips.
QUEUE_CHECK_SECONDS = 15.0

# Longest a batch's transaction takes new events: under load a batch takes milliseconds;
# slow handlers commit after this and go on in another batch.
BATCH_SECONDS = 1.0


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Return an exponential backoff with full jitter for the given attempt (from 1)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class Consumer:
    """Read one service's quorum queue and apply events with the given handlers."""

    def __init__(
        self,
        *,
        service: str,
        handlers: Mapping[str, Handler],
        unit_of_work: Callable[[], UnitOfWork],
        url: str | None = None,
        prefetch: int = 20,
        heartbeat: int | None = None,
        delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT,
        on_ready: Callable[[], None] | None = None,
        setup: Callable[[pika.adapters.blocking_connection.BlockingChannel], None] | None = None,
        engine: Engine | None = None,
        queue_check: float = QUEUE_CHECK_SECONDS,
    ) -> None:
        self.service = service
        self.queue_check = queue_check
        self.handlers = dict(handlers)
        self.unit_of_work = unit_of_work
        self.url = url
        self.prefetch = prefetch
        self.heartbeat = heartbeat or heartbeat_timeout()
        self.delivery_limit = delivery_limit
        self.on_ready = on_ready
        self.setup = setup
        self.stopping = threading.Event()
        self._subscribed = False
        # Set by the worker while an event waits for the database to come back.
        self._database_away = False
        # The handlers' database, watched as the broker link is: a call unanswered for a
        # heartbeat timeout has its link broken (SQLite is a local file: nothing to watch).
        self.statements = (
            StatementWatch(engine, self.heartbeat)
            if engine is not None and engine.dialect.name != "sqlite"
            else None
        )
        if engine is not None and not sqlalchemy.event.contains(
            engine, "handle_error", _drop_links_to_a_database_away
        ):
            sqlalchemy.event.listen(engine, "handle_error", _drop_links_to_a_database_away)

    # -- the connection's thread -------------------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; reconnect with backoff whenever the broker is lost."""
        attempt = 0
        metrics.CONSUMING.labels(self.service).set(0)
        while not self.stopping.is_set():
            self._subscribed = False
            try:
                self._run_connected()
                attempt = 0
            except Exception as exc:  # noqa: BLE001 - pika's connector errors are not AMQPErrors
                # After a subscription that stood, the first try again comes soon.
                attempt = 1 if self._subscribed else attempt + 1
                delay = backoff(attempt, cap=RECONNECT_CAP)
                # A SubscriptionLost was said already, with its reason.
                if not isinstance(exc, SubscriptionLost):
                    if self._subscribed:
                        metrics.SUBSCRIPTIONS_LOST.labels(self.service, "connection lost").inc()
                    log.warning(
                        "broker connection lost; reconnecting",
                        extra={
                            "service": self.service,
                            "error": repr(exc),
                            "retry_in": round(delay, 2),
                        },
                    )
                self.stopping.wait(delay)
                self._wait_for_the_database()

    def _wait_for_the_database(self) -> None:
        """Return once the database answers, if an event was waiting for it (or stopping).

        The messages wait in the queue meanwhile, held by nobody and counted by nothing.
        """
        attempt = 0
        while self._database_away and not self.stopping.is_set():
            answered = threading.Event()
            asking = threading.Thread(
                target=self._ask_the_database,
                args=(answered,),
                name=f"{self.service}-db-probe",
                daemon=True,
            )
            asking.start()
            while asking.is_alive():
                asking.join(timeout=0.5)
                self._break_overdue_calls()  # a black-holed link answers nothing
            if answered.is_set():
                self._database_away = False
                return
            attempt += 1
            delay = backoff(attempt, cap=RECONNECT_CAP)
            log.warning(
                "database unavailable; subscribing again once it answers",
                extra={"service": self.service, "retry_in": round(delay, 2)},
            )
            self.stopping.wait(delay)

    def _ask_the_database(self, answered: threading.Event) -> None:
        """Set ``answered`` if the database answers a query (any failure: it did not)."""
        with contextlib.suppress(Exception), self.unit_of_work() as uow:
            uow.session.execute(text("SELECT 1"))
            answered.set()

    def stop(self) -> None:
        """Ask the consumer to finish the message in hand and return from :meth:`run`."""
        self.stopping.set()

    def _run_connected(self) -> None:
        conn = connect(self.url, heartbeat=self.heartbeat)
        work: queue.Queue[_Delivery | None] = queue.Queue()
        worker: threading.Thread | None = None
        settlements: _Settlements | None = None
        # Set once the deliveries of this subscription are no longer the worker's to
        # settle: an event held in place for the database lets go of it at once.
        gone = threading.Event()
        lost: list[SubscriptionLost] = []
        try:
            channel = conn.channel()
            channel._impl.add_on_close_callback(  # noqa: SLF001 - BlockingChannel has no hook
                lambda _channel, reason: lost.append(
                    SubscriptionLost("channel closed by the broker", str(reason))
                )
            )
            channel.add_on_cancel_callback(
                lambda _frame: lost.append(
                    SubscriptionLost("cancelled by the broker", "Basic.Cancel")
                )
            )
            settlements = _Settlements(conn, channel, self.prefetch)
            worker = threading.Thread(
                target=self._work,
                args=(settlements, work, gone),
                name=f"{self.service}-worker",
                daemon=True,
            )
            topology.declare_service_queue(
                channel, self.service, self.handlers.keys(), delivery_limit=self.delivery_limit
            )
            if self.setup:
                self.setup(channel)
            channel.basic_qos(prefetch_count=self.prefetch)

            def on_message(ch, method, properties, body):
                settlements.received += 1
                work.put(
                    _Delivery(
                        method.delivery_tag,
                        method.routing_key,
                        properties,
                        body,
                        method.redelivered,
                    )
                )

            channel.basic_consume(service_queue(self.service), on_message, auto_ack=False)
            worker.start()
            self._subscribed = True
            metrics.CONSUMING.labels(self.service).set(1)
            log.info(
                "consuming", extra={"service": self.service, "queue": service_queue(self.service)}
            )
            if self.on_ready:
                self.on_ready()
            heard, heard_at = bytes_received(conn), time.monotonic()
            watch = _QueueWatch(
                conn,
                service_queue(self.service),
                settlements,
                interval=self.queue_check,
                bound=self.heartbeat,
            )
            while not self.stopping.is_set():
                try:
                    conn.process_data_events(time_limit=0.5)
                    if lost and conn.is_open:
                        raise lost[0]
                    settlements.send()
                except pika.exceptions.ChannelClosedByBroker as exc:
                    # pika raises the broker's close from the call on the channel that
                    # received it (a dispatch, an ack), besides calling the close hook:
                    # the same subscription lost, whichever saw it first.
                    raise (
                        lost[0]
                        if lost
                        else SubscriptionLost(
                            "channel closed by the broker", str((exc.reply_code, exc.reply_text))
                        )
                    ) from exc
                self._break_overdue_calls()
                watch.look_if_due()
                if bytes_received(conn) != heard:
                    heard, heard_at = bytes_received(conn), time.monotonic()
                elif time.monotonic() - heard_at > self.heartbeat:
                    # pika's own check runs every timeout + 5 s and needs two idle checks,
                    # up to 2 * (timeout + 5) s on a dead link; two missed broker heartbeats
                    # (RabbitMQ's own rule for its clients) say it sooner.
                    silent = round(time.monotonic() - heard_at, 1)
                    abort(conn, f"no bytes from the broker for {silent} s")
                    conn.process_data_events(time_limit=0)  # raises the abort's error
                    raise ConnectionError(f"no bytes from the broker for {silent} s")
        except SubscriptionLost as exc:
            # The broker's own words (e.g. "PRECONDITION_FAILED - delivery acknowledgement
            # on channel 1 timed out"): no message content in them.
            metrics.SUBSCRIPTIONS_LOST.labels(self.service, exc.reason).inc()
            log.warning(
                "subscription lost; resubscribing",
                extra={"service": self.service, "reason": exc.reason, "error": exc.error},
            )
            raise
        except Exception as exc:
            # Said at once: finishing the message in hand below may take a while.
            log.warning(
                "broker connection dropped",
                extra={"service": self.service, "error": repr(exc)},
            )
            raise
        finally:
            metrics.CONSUMING.labels(self.service).set(0)
            gone.set()
            # Let the worker finish the message in hand; what is still queued is
            # unacked and will be redelivered to whoever consumes next.
            with contextlib.suppress(queue.Empty):
                while True:
                    work.get_nowait()
            work.put(None)
            if worker is not None and worker.is_alive():
                while worker.is_alive():
                    worker.join(timeout=0.2)
                    # A handler stuck on a dead database link would keep us here for good.
                    self._break_overdue_calls()
                    if conn.is_open:
                        try:
                            conn.process_data_events(time_limit=0)
                            settlements.send()
                        except (pika.exceptions.AMQPError, OSError):
                            break
            if conn.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                    if settlements is not None:
                        settlements.send()  # what the worker finished last, acked
                    conn.close()

    def _break_overdue_calls(self) -> None:
        """Break the database link of a handler's call unanswered for a heartbeat timeout."""
        if self.statements is None:
            return
        for waited in self.statements.break_overdue():
            log.warning(
                "database call unanswered; link broken",
                extra={"service": self.service, "waited_s": waited},
            )

    # -- the worker thread --------------------------------------------------------------

    def _work(self, settlements: _Settlements, work: queue.Queue, gone: threading.Event) -> None:
        while True:
            delivery = work.get()
            if delivery is None:
                return
            # What has arrived already joins it: under load the prefetched messages are
            # applied in one transaction, with one commit and one publish. Never waits
            # for more, so a lone event is not held back.
            batch, last = [delivery], False
            while len(batch) < self.prefetch:
                try:
                    more = work.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                batch.append(more)
            outcomes = self._handle_batch(batch, gone)
            for each, outcome in zip(batch, outcomes, strict=True):
                metrics.EVENTS_CONSUMED.labels(self.service, each.routing_key, outcome).inc()
            try:
                settlements.add(batch, outcomes)
            except (pika.exceptions.AMQPError, OSError, AssertionError):
                # The connection is gone; the broker will redeliver the messages and the
                # inbox makes the second application a no-op.
                return
            if last:
                return

    def _handle_batch(self, batch: list[_Delivery], gone: threading.Event) -> list[str]:
        """Apply deliveries together if they all go through; else one by one, as ever."""
        if len(batch) <= 1:
            return [self._handle(delivery, gone) for delivery in batch]
        together = []
        for delivery in batch:
            try:
                event = decode(delivery.properties, delivery.body, delivery.routing_key)
            except PoisonMessage:
                break
            handler = self.handlers.get(delivery.routing_key) or self.handlers.get(
                _event_key(event.type)
            )
            if handler is None:
                break
            together.append((delivery, event, handler))
        else:
            applied, fault = self._apply_together(together)
            if fault is None:
                if applied == len(batch):
                    return ["ack"] * len(batch)
                if applied:
                    # Slow handlers: what went in is committed; the rest is another batch.
                    return ["ack"] * applied + self._handle_batch(batch[applied:], gone)
            else:
                # One handler failed on its own (a bug, invalid data): that event is judged
                # now, its handler not run twice for one delivery; the others go again
                # without it.
                index, exc = fault
                outcome = self._judge_handler_fault(together[index][1], exc, attempt=1)
                return [
                    *self._handle_batch(batch[:index], gone),
                    outcome,
                    *self._handle_batch(batch[index + 1 :], gone),
                ]
        # Poison, an unknown event or a database error: each event on its own, so that one
        # bad event neither holds up nor dead-letters the others.
        return [self._handle(delivery, gone) for delivery in batch]

    def _apply_together(
        self, batch: list[tuple[_Delivery, ReceivedEvent, Handler]]
    ) -> tuple[int, tuple[int, Exception] | None]:
        """Apply events in one transaction; return how many, and a handler's fault if any.

        On any failure everything is rolled back (0 applied); the fault names the event
        whose handler raised, unless the error came from the database, which no single
        event answers for. Stops taking events once the transaction has lasted
        ``BATCH_SECONDS``, so that slow handlers never make a long transaction holding its
        locks and its acks.
        """
        timings = []
        started = time.perf_counter()
        current = None
        try:
            with self.unit_of_work() as uow:
                for index, (_delivery, event, handler) in enumerate(batch):
                    began = time.perf_counter()
                    tracing.continue_trace(event.traceparent)
                    if uow.claim_application(event.id, self.service, event.type):
                        current = index
                        handler(uow, event)
                        current = None
                    timings.append(time.perf_counter() - began)
                    if time.perf_counter() - started > BATCH_SECONDS:
                        break
                committing = time.perf_counter()
                uow.commit()
        except Exception as exc:  # noqa: BLE001 - judged below or one by one
            log.info(
                "batch not applied",
                # The class only: a database error's text may quote the row's values.
                extra={"service": self.service, "events": len(batch), "error": type(exc).__name__},
            )
            database = isinstance(exc, DBAPIError)
            if current is None or database:
                return 0, None
            return 0, (current, exc)
        finally:
            tracing.clear()
        shared = (time.perf_counter() - committing) / len(timings)
        for (delivery, event, _handler), spent in zip(batch, timings, strict=False):
            self._record_applied(delivery, event, spent + shared, batch=len(timings))
        return len(timings), None

    def _record_applied(
        self, delivery: _Delivery, event: ReceivedEvent, seconds: float, *, batch: int
    ) -> None:
        """Count and log an applied event (its share of a batch's commit included)."""
        metrics.EVENT_PROCESSING.labels(self.service, delivery.routing_key).observe(seconds)
        log.info(
            "event applied",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "case_id": event.subject,
                "ms": round(seconds * 1000, 2),
                "batch": batch,
            },
        )

    def _handle(self, delivery: _Delivery, gone: threading.Event) -> str:
        """Apply one delivery; return 'ack', 'dead' (reject to dead letters) or 'retry'."""
        try:
            event = decode(delivery.properties, delivery.body, delivery.routing_key)
        except PoisonMessage as exc:
            log.error(
                "poison message dead-lettered",
                extra={
                    "service": self.service,
                    "routing_key": delivery.routing_key,
                    "reason": str(exc),
                },
            )
            return "dead"
        handler = self.handlers.get(delivery.routing_key) or self.handlers.get(
            _event_key(event.type)
        )
        if handler is None:
            log.warning(
                "no handler; acknowledged",
                extra={"routing_key": delivery.routing_key, "event_id": event.id},
            )
            return "ack"
        tracing.continue_trace(event.traceparent)
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    started = time.perf_counter()
                    self._apply(handler, event)
                    self._database_away = False
                    self._record_applied(delivery, event, time.perf_counter() - started, batch=1)
                    return "ack"
                except PoisonMessage as exc:
                    return self._judge_handler_fault(event, exc, attempt)
                except IntegrityError as exc:
                    # Never the inbox's (a redelivery is told apart before the handler
                    # runs): a constraint of the handler's own. A retry may pass (a
                    # concurrent insert of the same new row); if not, the delivery limit
                    # dead-letters it. Logged by the constraint's name, without the
                    # database's text: its DETAIL quotes the row's values.
                    log.warning(
                        "handler hit a constraint; requeued",
                        extra={
                            "event_id": event.id,
                            "case_id": event.subject,
                            "constraint": _constraint_name(exc),
                        },
                    )
                    self.stopping.wait(min(2.0, backoff(attempt)))
                    return "retry"
                except Exception as exc:  # noqa: BLE001 - a bug must not kill the consumer
                    trouble = database_trouble(exc)
                    if trouble is None:
                        return self._judge_handler_fault(event, exc, attempt)
                    # The database is away, refuses writes, or another transaction is in
                    # the way: hold the message and retry in place, so that neither burns
                    # the delivery limit and dead-letters good events. Logged by class and
                    # SQLSTATE: the database's text may quote the row's values.
                    self._database_away = trouble == "away"
                    delay = backoff(attempt, cap=RECONNECT_CAP)
                    log.warning(
                        "database unavailable; retrying event"
                        if trouble == "away"
                        else "database contended; retrying event",
                        extra={
                            "event_id": event.id,
                            "error": type(getattr(exc, "orig", None) or exc).__name__,
                            "sqlstate": _sqlstate(exc),
                            "retry_in": round(delay, 2),
                        },
                    )
                    if self._held_in_vain(delay, gone):
                        # Stopping, or the broker has taken the delivery back: it goes to
                        # whoever consumes next, this consumer again once resubscribed.
                        return "retry"
        finally:
            tracing.clear()

    def _held_in_vain(self, seconds: float, gone: threading.Event) -> bool:
        """Wait ``seconds`` before a retry in place; True at once if it would be in vain."""
        deadline = time.monotonic() + seconds
        while not (self.stopping.is_set() or gone.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            gone.wait(min(left, 0.25))
        return True

    def _judge_handler_fault(self, event: ReceivedEvent, exc: Exception, attempt: int) -> str:
        """Return what becomes of an event whose handler raised: 'dead' if invalid, else 'retry'.

        Not for database errors (retried in place) nor constraint errors (see ``_handle``).
        """
        if isinstance(exc, PoisonMessage):
            log.error(
                "invalid event dead-lettered",
                extra={
                    "service": self.service,
                    "event_id": event.id,
                    "case_id": event.subject,
                    "reason": str(exc),
                },
            )
            return "dead"
        log.error(
            "handler failed; requeued",
            exc_info=exc,
            extra={"event_id": event.id, "case_id": event.subject},
        )
        self.stopping.wait(min(2.0, backoff(attempt)))
        return "retry"

    def _apply(self, handler: Handler, event: ReceivedEvent) -> None:
        with self.unit_of_work() as uow:
            if not uow.claim_application(event.id, self.service, event.type):
                return  # a redelivery of an event applied before
            handler(uow, event)
            uow.commit()
