"""Delivery against real servers: SMS gateway, SMTP, signed webhook, the PDF letter; backoff."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import socket
import threading
import time
from collections import Counter

import pytest
import sqlalchemy
from notify_sample_events import (
    LEADER_EMAIL,
    PHONE,
    UNIT_EMAIL,
    Visit,
    assignment_resolved,
    case_routed,
    supervision_event,
    unit_changed,
)
from notify_test_servers import PARTNER, HttpReceiver, self_signed_certificate
from pypdf import PdfReader
from sqlalchemy import select

from eventbus import envelope
from notify import delivery, models
from notify.channels import SmsGateway, Smtp, Webhook
from notify.delivery import UNKNOWN_OUTCOME, Settings, Worker
from servicekit.localsystem import free_port


def whole_story(visit: Visit, unit: str):
    """The events of one case from registration to the leader's listed supervision."""
    return [
        visit.case_registered(),
        visit.contact_recorded(),
        case_routed(visit, unit),
        supervision_event("case.warning", visit, unit),
        supervision_event(
            "case.escalated",
            visit,
            unit,
            level=1,
            supervisor_unit="city-org",
            supervisor="黄宝山",
        ),
        assignment_resolved(visit, unit),
    ]


def rows(runtime, case_id: str) -> list[models.Notification]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(models.Notification)
                .where(models.Notification.case_id == case_id)
                .order_by(models.Notification.created_at)
            )
        )


def outbox_types(runtime) -> Counter:
    with runtime.sessions() as session:
        table = models.metadata.tables["outbox"]
        return Counter(session.execute(select(table.c.routing_key)).scalars())


def test_every_channel_reaches_its_real_server(
    deliver, runtime, partner_unit, make_worker, gateway, smtp, partner_hook
):
    visit = Visit()
    for event in whole_story(visit, partner_unit):
        deliver(event)

    handled = make_worker().drain()

    notifications = rows(runtime, visit.case_ids[0])
    assert len(notifications) == 11
    assert handled == 10
    assert Counter(n.status for n in notifications) == {
        models.DELIVERED: 10,
        models.UNREACHABLE: 1,  # the escalation by SMS: routing gave the leader no phone
    }
    # The visitor: receipt, routing, answer and satisfaction by SMS, to their phone.
    sms = [r.json() for r in gateway.requests]
    assert len(sms) == 4
    assert {m["to"] for m in sms} == {PHONE}
    assert all(r.headers["Authorization"] == "Bearer gw-token" for r in gateway.requests)
    assert any(visit.case_numbers[0] in m["text"] and "2027-01-15" in m["text"] for m in sms)
    assert any("工资已于本月补发" in m["text"] for m in sms)
    # The unit's office: the assignment and the warning by e-mail; the leader: escalation.
    by_recipient = Counter(m["To"] for m in smtp.messages)
    assert by_recipient == {UNIT_EMAIL: 2, LEADER_EMAIL: 1}
    escalation = next(m for m in smtp.messages if m["To"] == LEADER_EMAIL)
    assert visit.case_numbers[0] in escalation["Subject"]
    assert "挂牌督办" in escalation.get_content()
    # The partner's system: assignment and warning, signed.
    assert len(partner_hook.requests) == 2
    assert all(r.signature_ok for r in partner_hook.requests)
    assert {r.json()["kind"] for r in partner_hook.requests} == {"assignment", "warning"}
    # Each delivery is announced once.
    assert outbox_types(runtime)["notification.delivered"] == 10


def test_a_claim_reads_its_rows_and_what_renders_them_in_one_statement(
    deliver, make_worker, runtime
):
    """The unit's name, the visitor's contact and the template come with the claimed rows."""
    deliver(unit_changed("lw-guokeng", name="郭坑镇人民政府"))
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(case_routed(visit, "lw-guokeng"))
    reads = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    sqlalchemy.event.listen(runtime.engine, "before_cursor_execute", note)
    try:
        claimed = make_worker().claim(limit=2)
    finally:
        sqlalchemy.event.remove(runtime.engine, "before_cursor_execute", note)

    assert len(reads) == 1, reads
    messages = [item.message for item in claimed]
    assert [m.address for m in messages] == [PHONE, PHONE]
    assert any("已交由郭坑镇人民政府办理" in m.body for m in messages)


SENT_LONG_AGO = 5_000


def test_a_claim_reads_the_rows_to_send_not_the_table_however_it_has_grown(
    deliver, runtime, make_worker, db_backend
):
    """The claim's plan, made while the table is small, finds due rows by their index.

    psycopg prepares a statement run often, and PostgreSQL may keep one generic plan for
    it until something invalidates it (the table's next ANALYZE, say). Made on a new
    system's small table, that plan was a sequential scan, and the benchmark's delivery
    worker kept it while the table grew: every claim read every notification ever sent
    (27,000 rows per visit). Which plan PostgreSQL keeps depends on its estimates; the
    generic one is asked for here.
    """
    if db_backend == "sqlite":
        pytest.skip("SQLite plans each statement anew: no plan outlives the table's growth")
    assert runtime.engine.pool.checkedin() == 0  # the connection below is the pool's only one
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")  # for the session
    worker = make_worker()
    first = Visit()
    deliver(first.case_registered())
    deliver(first.contact_recorded())  # the visitor's receipt: one SMS to send
    before = _notifications_read(runtime)

    # A new system's first claims: the claim is prepared, its plan made and kept.
    claimed = [item for _ in range(20) for item in worker.claim(limit=1)]

    kept = _notifications_read(runtime)
    assert [item.message.address for item in claimed] == [PHONE]
    assert kept["rows_scanned"] == before["rows_scanned"]  # none by a sequential scan
    assert kept["index_scans"] - before["index_scans"] >= 20  # and the counters came in

    # The table grows; the claims still read only the rows to send.
    long_ago = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    sent = {
        "event_id": "e-old",
        "case_number": "ZZ-old",
        "unit": "lw-guokeng",
        "kind": models.RECEIPT,
        "recipient_kind": models.VISITOR,
        "channel": models.SMS,
        "status": models.DELIVERED,
        "language": "zh",
        "created_at": long_ago,
        "updated_at": long_ago,
        "delivered_at": long_ago,
        "payload": {},
    }
    with runtime.engine.begin() as conn:
        conn.execute(
            sqlalchemy.insert(models.Notification.__table__),
            [{**sent, "id": f"old-{n}", "case_id": f"c-old-{n}"} for n in range(SENT_LONG_AGO)],
        )
    second = Visit()
    deliver(second.case_registered())
    deliver(second.contact_recorded())

    claimed = [item for _ in range(10) for item in worker.claim(limit=1)]

    grown = _notifications_read(runtime)
    assert [item.message.address for item in claimed] == [PHONE]
    assert grown["index_scans"] - kept["index_scans"] >= 10
    assert grown["rows_scanned"] - kept["rows_scanned"] < SENT_LONG_AGO


def _notifications_read(runtime) -> dict[str, int]:
    """Return how the notifications table has been read so far, this test's pool included."""
    # The pool's one connection, which ran the claims, reports its counters now (a
    # backend reports them when idle, at most once a second): before the answer comes.
    assert runtime.engine.pool.checkedin() == 1
    with runtime.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    with runtime.engine.connect() as conn:
        rows_scanned, index_scans = conn.exec_driver_sql(
            "SELECT seq_tup_read, idx_scan FROM pg_stat_user_tables WHERE relname = 'notifications'"
        ).one()
    return {"rows_scanned": rows_scanned, "index_scans": index_scans}


def test_the_receipt_of_a_case_resolved_on_the_spot_promises_no_later_answer(
    deliver, make_worker, gateway
):
    """Intake publishes such a case with no due date: the receipt says it was answered at
    the desk, never "我们将在None前答复您"."""
    visit = Visit()
    data = visit.case_data()
    data.update(
        status="resolved_on_spot",
        due_at=None,
        disposition={"action": "resolved_on_spot", "answer": "镇里当场同意补发"},
    )
    deliver(visit.case_registered(data=data))
    deliver(visit.contact_recorded())

    make_worker().drain()

    (receipt,) = [r.json()["text"] for r in gateway.requests]
    assert receipt == (
        f"【夜话】您反映的问题已登记，编号{visit.case_numbers[0]}，已当场答复。"
        "凭编号可查询办理进度。"
    )


def test_a_major_case_given_a_supervisor_is_worded_as_such(
    deliver, partner_unit, make_worker, smtp
):
    """Supervision's ``level: "major"`` (a named supervisor, at any time) is not a rung
    of the ladder: no "第major级", and not called long unresolved."""
    visit = Visit()
    deliver(
        supervision_event(
            "case.escalated",
            visit,
            partner_unit,
            level="major",
            supervisor_unit="city-org",
            supervisor="黄宝山",
        )
    )

    make_worker().drain()

    (mail,) = smtp.messages
    text = mail.get_content().strip()
    assert text.startswith(f"黄宝山同志：交办件{visit.case_numbers[0]}（")
    assert text.endswith("）列为重大事项挂牌督办，由您督办，请督促办理。")


def test_the_routing_notice_names_the_unit_as_the_directory_names_it(deliver, make_worker, gateway):
    """By its name in notify's copy of the directory; by its code while the copy lacks it."""
    deliver(unit_changed("lw-guokeng", name="郭坑镇人民政府"))
    named, unknown = Visit(), Visit()
    for visit, unit in ((named, "lw-guokeng"), (unknown, "lw-nowhere")):
        for event in (visit.case_registered(), visit.contact_recorded()):
            deliver(event)
        deliver(case_routed(visit, unit))

    make_worker().drain()

    notices = [r.json()["text"] for r in gateway.requests if "已交由" in r.json()["text"]]
    assert len(notices) == 2
    assert any(named.case_numbers[0] in t and "已交由郭坑镇人民政府办理" in t for t in notices)
    assert any(unknown.case_numbers[0] in t and "已交由lw-nowhere办理" in t for t in notices)


def test_an_sms_due_in_quiet_hours_waits_for_the_morning_then_goes(
    deliver, make_worker, gateway, clock, notifications_of
):
    """23:30 in the city: the visitor's SMS are put off to 08:00, and sent then."""
    visit = Visit()
    for event in (visit.case_registered(), visit.contact_recorded(), case_routed(visit, PARTNER)):
        deliver(event)
    clock.now = dt.datetime(2026, 12, 21, 15, 30, tzinfo=dt.UTC)  # 23:30 in Beijing
    worker = make_worker()

    worker.drain()

    assert gateway.requests == []
    to_visitor = [n for n in notifications_of(visit.case_ids[0]) if n.channel == models.SMS]
    assert {n.kind for n in to_visitor} == {models.RECEIPT, models.ROUTED}
    morning = dt.datetime(2026, 12, 22, 0, 0, tzinfo=dt.UTC)  # 08:00 in Beijing
    assert {(n.status, n.next_attempt_at, n.attempts) for n in to_visitor} == {
        (models.PENDING, morning, 0)
    }
    clock.now = morning
    assert worker.drain() == 2
    assert len(gateway.requests) == 2
    assert {n.status for n in notifications_of(visit.case_ids[0]) if n.channel == models.SMS} == {
        models.DELIVERED
    }


def test_a_stale_sms_met_in_quiet_hours_waits_as_pending_and_holds_nothing_back(
    deliver, runtime, partner_unit, make_worker, gateway, smtp, partner_hook, clock
):
    """A receipt left 'sending' by a worker that died at 21:58, found stale at 22:30 on a
    gateway that dedupes: it waits for the morning as pending, so the unit's e-mail and
    webhook behind it go now, and no claim finds it again until 08:00."""
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    clock.now = dt.datetime(2026, 12, 21, 13, 58, tzinfo=dt.UTC)  # 21:58 in Beijing
    assert len(make_worker(sending_timeout=300).claim(limit=1)) == 1  # ...and it dies
    deliver(case_routed(visit, partner_unit))
    clock.now = dt.datetime(2026, 12, 21, 14, 30, tzinfo=dt.UTC)  # 22:30
    worker = make_worker(sending_timeout=300)

    worker.drain()

    assert (len(smtp.messages), len(partner_hook.requests), len(gateway.requests)) == (1, 1, 0)
    assert worker._deliver_due(readdress=False) == (0, False)  # nothing due: no spinning
    receipt = next(n for n in rows(runtime, visit.case_ids[0]) if n.kind == models.RECEIPT)
    morning = dt.datetime(2026, 12, 22, 0, 0, tzinfo=dt.UTC)
    assert (receipt.status, receipt.next_attempt_at, receipt.claim, receipt.sending_since) == (
        models.PENDING,
        morning,
        None,
        None,
    )
    clock.now = morning
    worker.drain()
    # The receipt, sent again under its own key, and the routing notice put off beside it.
    assert receipt.id in {r.headers["Idempotency-Key"] for r in gateway.requests}
    assert len(gateway.requests) == 2
    assert {n.status for n in rows(runtime, visit.case_ids[0])} == {models.DELIVERED}


def test_letter_is_html_and_a_pdf_that_opens_with_the_case_number(
    deliver, runtime, partner_unit, make_worker
):
    visit = Visit()
    for event in whole_story(visit, partner_unit):
        deliver(event)

    make_worker().drain()

    (letter_row,) = [n for n in rows(runtime, visit.case_ids[0]) if n.channel == models.LETTER]
    with runtime.sessions() as session:
        letter = session.get(models.Letter, letter_row.id)
    assert "致来访者的一封信" in letter.html
    assert visit.case_numbers[0] in letter.html
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(letter.pdf)).pages)
    assert visit.case_numbers[0] in text
    assert "致来访者的一封信" in text


def test_a_webhook_with_a_wrong_secret_fails_verification(deliver, partner_hook, runtime):
    """The receiver's check is real: a signature made with another secret does not pass."""
    visit = Visit()
    deliver(unit_changed(PARTNER, email=None, webhook_url=partner_hook.url))
    deliver(case_routed(visit, PARTNER))
    worker = Worker(runtime, {models.WEBHOOK: Webhook(secret="not-the-secret", timeout=5)})
    worker.drain()
    assert len(partner_hook.requests) == 1
    assert partner_hook.requests[0].signature_ok is False


def test_replayed_events_give_one_delivery_per_recipient_and_channel(
    deliver, runtime, partner_unit, make_worker, gateway, smtp, partner_hook
):
    visit = Visit()
    story = whole_story(visit, partner_unit)
    for event in story + story:  # every event twice, same ids
        deliver(event)
    deliver(visit.case_registered())  # and a republication under a new event id
    deliver(case_routed(visit, partner_unit))

    make_worker().drain()
    make_worker().drain()  # a second worker round finds nothing more to send

    assert len(rows(runtime, visit.case_ids[0])) == 11
    assert len(gateway.requests) == 4
    assert len(smtp.messages) == 3
    assert len(partner_hook.requests) == 2


def test_gateway_failing_three_times_then_succeeding_delivers_once(
    deliver, runtime, make_worker, gateway, clock
):
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    gateway.script = [503, 502, 500]
    worker = make_worker(backoff_base=10, max_attempts=5)

    waits = []
    for _ in range(4):
        assert worker.drain() == 1
        (receipt,) = rows(runtime, visit.case_ids[0])
        if receipt.status == models.DELIVERED:
            break
        assert receipt.status == models.PENDING
        waits.append((receipt.next_attempt_at - clock.now).total_seconds())
        assert worker.drain() == 0  # not due before its backoff
        clock.advance(waits[-1])

    assert waits == [10, 20, 40]  # exponential backoff
    assert receipt.status == models.DELIVERED
    assert receipt.attempts == 4
    assert [r.status for r in gateway.requests] == [503, 502, 500, 200]
    assert len({r.headers["Idempotency-Key"] for r in gateway.requests}) == 1
    assert len(gateway.accepted) == 1
    assert outbox_types(runtime)["notification.delivered"] == 1


def test_always_failing_gateway_gives_up_after_the_limit(
    deliver, runtime, make_worker, gateway, clock
):
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    gateway.default = 503
    worker = make_worker(backoff_base=1, max_attempts=3)

    for _ in range(3):
        assert worker.drain() == 1
        clock.advance(3600)

    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.FAILED
    assert receipt.attempts == 3
    assert "503" in receipt.last_error
    assert worker.drain() == 0
    assert len(gateway.requests) == 3
    assert outbox_types(runtime)["notification.failed"] == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_gateway_4xx_is_permanent(deliver, runtime, make_worker, gateway, status):
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    gateway.default = status

    make_worker().drain()

    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.FAILED
    assert receipt.attempts == 1
    assert len(gateway.requests) == 1


def sms_worker(runtime, clock, url: str, timeout: float = 5, dedupes: bool = False) -> Worker:
    """Return a worker whose SMS go to ``url`` (made now: it reads the proxies now)."""
    gateway = SmsGateway(url=url, timeout=timeout, dedupes=dedupes)
    return Worker(runtime, {models.SMS: gateway}, clock=clock)


def test_an_unreachable_gateway_is_tried_again_later(deliver, runtime, clock):
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())

    assert sms_worker(runtime, clock, f"http://127.0.0.1:{free_port()}/sms").drain() == 1

    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.PENDING
    assert receipt.attempts == 1
    assert receipt.last_error.startswith("SMS gateway unreachable")


def test_a_deduping_gateway_that_does_not_answer_in_time_is_tried_again_later(
    deliver, runtime, clock
):
    """The request went out, so it may have arrived: sent again under the same key."""
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    # Listening, so the connection opens, but never answering.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/sms"
        assert sms_worker(runtime, clock, url, timeout=0.5, dedupes=True).drain() == 1
    finally:
        silent.close()

    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.PENDING
    assert receipt.last_error == "SMS gateway unreachable: ReadTimeoutError"


def test_a_gateway_that_cannot_dedupe_and_answers_late_is_not_sent_twice(deliver, runtime, clock):
    """The gateway took the SMS and answered after the worker stopped waiting: the
    outcome is unknown, so the row is failed for an operator, never sent again."""
    answer = threading.Event()
    gateway = HttpReceiver(on_request=lambda _received: answer.wait())
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    worker = sms_worker(runtime, clock, gateway.url, timeout=0.5)
    try:
        worker.drain()
        clock.advance(3600)
        worker.drain()
    finally:
        answer.set()
        gateway.close()

    assert len(gateway.requests) == 1
    (receipt,) = rows(runtime, visit.case_ids[0])
    assert (receipt.status, receipt.attempts) == (models.FAILED, 1)
    assert receipt.last_error.startswith(
        "SMS gateway: no answer after the message was handed over (ReadTimeoutError)"
    )
    assert outbox_types(runtime)["notification.failed"] == 1


def test_an_smtp_server_answering_late_to_the_message_is_not_sent_it_twice(
    deliver, runtime, partner_unit, smtp, clock
):
    """After DATA's 354 the message is the server's: no answer to it is an unknown outcome
    (SMTP tells no duplicate), failed for an operator; before it, tried again."""
    smtp.answer_after = threading.Event()
    visit = Visit()
    deliver(case_routed(visit, partner_unit))
    channels = {models.EMAIL: Smtp(host="127.0.0.1", port=smtp.port, timeout=0.5)}
    worker = Worker(runtime, channels, clock=clock)

    worker.drain()
    clock.advance(3600)
    worker.drain()

    assert len(smtp.messages) == 1
    email = next(n for n in rows(runtime, visit.case_ids[0]) if n.channel == models.EMAIL)
    assert (email.status, email.attempts) == (models.FAILED, 1)
    assert email.last_error.startswith("SMTP: no answer after the message was handed over")


def test_an_unexpected_error_in_a_send_that_cannot_dedupe_is_not_sent_again(
    deliver, runtime, clock
):
    """A send that raised what no channel should may have gone out first."""

    class Broken:
        dedupes = False
        calls = 0

        def send(self, message):
            Broken.calls += 1
            raise RuntimeError("after the message went out")

    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    worker = Worker(runtime, {models.SMS: Broken()}, clock=clock)

    worker.drain()
    clock.advance(3600)
    worker.drain()

    assert Broken.calls == 1
    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.FAILED
    assert receipt.last_error == "unexpected RuntimeError" + delivery.UNKNOWN_SEND


def test_an_https_gateway_is_trusted_only_with_a_known_certificate(
    deliver, runtime, clock, tmp_path, monkeypatch
):
    certificate, key = self_signed_certificate(tmp_path)
    gateway = HttpReceiver(tls=(certificate, key))
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    try:
        # Signed by no authority the system knows: refused before anything is sent.
        assert sms_worker(runtime, clock, gateway.url).drain() == 1
        (receipt,) = rows(runtime, visit.case_ids[0])
        assert (receipt.status, receipt.last_error) == (
            models.PENDING,
            "SMS gateway unreachable: SSLError",
        )

        # Named as trusted, as an operator would for a city's own authority: sent.
        monkeypatch.setenv("SSL_CERT_FILE", certificate)
        clock.advance(3600)
        assert sms_worker(runtime, clock, gateway.url).drain() == 1
    finally:
        gateway.close()

    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.DELIVERED
    assert [r.json()["to"] for r in gateway.requests] == [PHONE]


@pytest.fixture
def no_proxy_set(monkeypatch):
    """Clear the proxy variables the machine may have, for a test to set its own."""
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_environments_proxy_carries_the_sms_unless_no_proxy_names_the_host(
    deliver, runtime, clock, gateway, no_proxy_set
):
    proxy = HttpReceiver()
    try:
        no_proxy_set.setenv("http_proxy", proxy.url.rsplit("/", 1)[0])
        first, second = Visit(), Visit()
        for event in (first.case_registered(), first.contact_recorded()):
            deliver(event)
        assert sms_worker(runtime, clock, gateway.url).drain() == 1

        no_proxy_set.setenv("no_proxy", "127.0.0.1")
        for event in (second.case_registered(), second.contact_recorded()):
            deliver(event)
        assert sms_worker(runtime, clock, gateway.url).drain() == 1
    finally:
        proxy.close()

    # Through the proxy, the request line names the gateway's whole URL.
    assert [r.target for r in proxy.requests] == [gateway.url]
    assert first.case_numbers[0] in proxy.requests[0].json()["text"]
    assert [r.target for r in gateway.requests] == ["/messages"]
    assert second.case_numbers[0] in gateway.requests[0].json()["text"]


def test_smtp_4xx_is_retried_and_5xx_is_not(
    deliver, runtime, partner_unit, make_worker, smtp, clock
):
    first, second = Visit(), Visit()
    deliver(case_routed(first, partner_unit))
    smtp.script = ["451 4.3.0 try again later"]
    worker = make_worker(backoff_base=5)
    worker.drain()
    mail = next(n for n in rows(runtime, first.case_ids[0]) if n.channel == models.EMAIL)
    assert mail.status == models.PENDING
    clock.advance(5)
    worker.drain()
    mail = next(n for n in rows(runtime, first.case_ids[0]) if n.channel == models.EMAIL)
    assert mail.status == models.DELIVERED
    assert len(smtp.messages) == 1

    deliver(case_routed(second, partner_unit))
    smtp.script = ["550 5.1.1 mailbox unknown"]
    worker.drain()
    mail = next(n for n in rows(runtime, second.case_ids[0]) if n.channel == models.EMAIL)
    assert mail.status == models.FAILED
    assert mail.attempts == 1
    assert "550" in mail.last_error


def test_one_channel_failing_does_not_hold_back_the_others(
    deliver, runtime, partner_unit, make_worker, smtp, partner_hook
):
    visit = Visit()
    deliver(case_routed(visit, partner_unit))
    smtp.script = ["550 5.1.1 mailbox unknown"]

    make_worker().drain()

    by_channel = {n.channel: n.status for n in rows(runtime, visit.case_ids[0])}
    assert by_channel[models.EMAIL] == models.FAILED
    assert by_channel[models.WEBHOOK] == models.DELIVERED


def test_a_subject_with_a_line_break_from_the_case_goes_on_one_line(
    deliver, runtime, partner_unit, make_worker, smtp
):
    """A summary typed over two lines, in an edited subject: one send, the lines joined
    (a header may not hold a line break: the message could not even be built)."""
    with runtime.sessions() as session:
        session.add(
            models.Template(
                kind=models.ASSIGNMENT,
                channel=models.EMAIL,
                language="zh",
                subject="新交办件：{{ summary }}",
                body="{{ unit_name }}：{{ summary }}",
                updated_at=models.now(),
                updated_by="admin",
            )
        )
        session.commit()
    visit = Visit()
    event = case_routed(visit, partner_unit)
    data = json.loads(event.body)
    data["summary"] = "退休教师工资拖欠\r\n多次反映未果\u2028仍未解决"
    deliver(
        envelope.build(
            service="routing", routing_key="case.routed", subject=data["case_id"], data=data
        )
    )

    make_worker().drain()

    (mail,) = smtp.messages
    assert mail["Subject"] == "新交办件：退休教师工资拖欠 多次反映未果 仍未解决"
    email = next(n for n in rows(runtime, visit.case_ids[0]) if n.channel == models.EMAIL)
    assert (email.status, email.attempts) == (models.DELIVERED, 1)


def test_a_stale_sending_email_is_failed_not_resent(
    deliver, runtime, partner_unit, make_worker, smtp, clock
):
    """SMTP cannot tell a duplicate: a send hidden by a crash is left to an operator."""
    visit = Visit()
    deliver(case_routed(visit, partner_unit))
    worker = make_worker(sending_timeout=60)
    claimed = worker.claim()  # ...and the worker dies before sending or recording
    assert len(claimed) == 2

    clock.advance(61)
    worker.drain()

    by_channel = {n.channel: n for n in rows(runtime, visit.case_ids[0])}
    assert by_channel[models.EMAIL].status == models.FAILED
    assert by_channel[models.EMAIL].last_error == UNKNOWN_OUTCOME
    assert smtp.messages == []
    assert by_channel[models.WEBHOOK].status == models.DELIVERED  # the webhook dedupes


def test_a_claim_taken_over_cannot_be_recorded_twice(
    deliver, runtime, partner_unit, make_worker, partner_hook, clock
):
    visit = Visit()
    deliver(case_routed(visit, partner_unit))
    slow = make_worker(sending_timeout=60)
    with runtime.sessions() as session:
        hook_id = session.scalars(
            select(models.Notification.id).where(
                models.Notification.case_id == visit.case_ids[0],
                models.Notification.channel == models.WEBHOOK,
            )
        ).one()
    (stale_claim,) = [c for c in slow.claim() if c.notification_id == hook_id]
    clock.advance(61)
    make_worker(sending_timeout=60).drain()  # the row is taken over and delivered

    assert slow.deliver(stale_claim) == "lost"  # the first worker wakes up: nothing recorded
    assert outbox_types(runtime)["notification.delivered"] == 1


def test_the_letter_escapes_what_it_quotes(deliver, runtime, make_worker):
    """An answer is text, not markup: the printed letter shows it, never runs it."""
    visit = Visit()
    deliver(visit.contact_recorded())
    event = assignment_resolved(visit, PARTNER, answer="<script>alert(1)</script>")
    deliver(event)

    make_worker().drain()

    with runtime.sessions() as session:
        (letter,) = session.scalars(select(models.Letter)).all()
    assert "<script>" not in letter.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in letter.html


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


def test_a_character_the_letters_fonts_lack_is_warned_of_not_written_to_the_log(
    deliver, runtime, make_worker
):
    """fpdf2 names the characters a font lacks: from a visitor's name, PII in the log."""
    visit = Visit()
    deliver(visit.contact_recorded(name="林𠈓清"))
    deliver(assignment_resolved(visit, PARTNER))
    kept, root = _Kept(), logging.getLogger()
    level = root.level
    root.addHandler(kept)
    root.setLevel(logging.INFO)  # the services' level (LOG_LEVEL)
    try:
        make_worker().drain()
    finally:
        root.removeHandler(kept)
        root.setLevel(level)

    with runtime.sessions() as session:
        (letter,) = session.scalars(select(models.Letter)).all()
    assert "林𠈓清" in letter.html
    # Neither the characters nor their glyphs' names (fontTools lists 'uni6797', 林).
    assert not [line for line in kept.lines if "𠈓" in line or "uni6797" in line]
    assert [line for line in kept.lines if line.startswith("fpdf.output WARNING Font")]


def test_a_stale_sending_sms_is_failed_when_the_gateway_cannot_dedupe(
    deliver, runtime, gateway, clock
):
    """Without a gateway that honours Idempotency-Key, SMS is treated like SMTP."""
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    channels = {models.SMS: SmsGateway(url=gateway.url, timeout=5, dedupes=False)}
    worker = Worker(runtime, channels, Settings(sending_timeout=60), clock=clock)
    assert len(worker.claim()) == 1  # ...and the worker dies

    clock.advance(61)
    worker.drain()

    (receipt,) = rows(runtime, visit.case_ids[0])
    assert receipt.status == models.FAILED
    assert receipt.last_error == UNKNOWN_OUTCOME
    assert gateway.requests == []


def test_two_workers_never_send_the_same_notification(deliver, runtime, make_worker, gateway):
    visits = [Visit() for _ in range(30)]
    for visit in visits:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    workers = [make_worker(batch=5), make_worker(batch=5)]
    errors: list[BaseException] = []

    def run(worker: Worker) -> None:
        try:
            worker.drain()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert len(gateway.requests) == 30
    assert len(gateway.accepted) == 30
    statuses = Counter(r.status for v in visits for r in rows(runtime, v.case_ids[0]))
    assert statuses == {models.DELIVERED: 30}


def test_under_a_backlog_a_send_is_recorded_with_the_next_claim(
    deliver, runtime, make_worker, gateway
):
    """One transaction per send instead of two, and while it sends, the sender holds one
    row in 'sending', never more: a worker killed then leaves one outcome unknown."""
    for visit in [Visit() for _ in range(3)]:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    held_at_each_send = []

    def count_statuses(_request) -> None:
        with runtime.sessions() as session:
            statuses = session.scalars(select(models.Notification.status))
            held_at_each_send.append(dict(Counter(statuses)))

    gateway.on_request = count_statuses
    worker_thread = threading.get_ident()
    transactions: list[list[str]] = [[]]

    def note(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() != worker_thread:
            return  # outbox marks written by a thread of their own
        if statement.startswith("SELECT") and " AS due " in statement:
            transactions[-1].append("claim")  # the claim's subquery of due rows
        elif statement.startswith("UPDATE notifications") and "delivered_at" in statement:
            transactions[-1].append("record")

    def end(_conn) -> None:
        if threading.get_ident() == worker_thread:
            transactions.append([])

    sqlalchemy.event.listen(runtime.engine, "before_cursor_execute", note)
    sqlalchemy.event.listen(runtime.engine, "commit", end)
    try:
        assert make_worker().run_once() == 3
    finally:
        sqlalchemy.event.remove(runtime.engine, "before_cursor_execute", note)
        sqlalchemy.event.remove(runtime.engine, "commit", end)

    assert [t for t in transactions if t] == [
        ["claim"],
        ["record", "claim"],
        ["record", "claim"],
        ["record"],  # nothing more due: recorded alone
    ]
    assert held_at_each_send == [
        {models.SENDING: 1, models.PENDING: 2},
        {models.DELIVERED: 1, models.SENDING: 1, models.PENDING: 1},
        {models.DELIVERED: 2, models.SENDING: 1},
    ]
    assert len(gateway.accepted) == 3
    assert outbox_types(runtime)["notification.delivered"] == 3


def test_a_send_that_outlasted_the_timeout_is_recorded_not_taken_again_by_the_next_claim(
    deliver, runtime, make_worker, gateway, clock
):
    """The outcome is written before the next claim reads, which would else find the row
    still 'sending' since longer than the timeout: lost to its worker, to send again."""
    for visit in [Visit() for _ in range(2)]:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    gateway.script = [503]  # the first send fails for now, and takes longer than the timeout
    gateway.on_request = lambda _request: clock.advance(61)

    assert make_worker(sending_timeout=60).run_once() == 2

    assert [r.status for r in gateway.requests] == [503, 200]
    with runtime.sessions() as session:
        rows = session.scalars(select(models.Notification))
        assert Counter((r.status, r.attempts, r.claim) for r in rows) == {
            (models.PENDING, 1, None): 1,  # to be tried again after its backoff
            (models.DELIVERED, 1, None): 1,
        }


def test_a_record_is_kept_when_the_next_claim_fails(
    deliver, runtime, make_worker, gateway, monkeypatch
):
    """The next claim shares the record's transaction; its failure must not undo the
    record of a message already sent."""
    for visit in [Visit() for _ in range(2)]:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    worker = make_worker()
    claim_in = worker._claim_in
    claims = []

    def failing_second_claim(uow, limit, now):
        claims.append(limit)
        if len(claims) == 2:
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("link lost"))
        return claim_in(uow, limit, now)

    monkeypatch.setattr(worker, "_claim_in", failing_second_claim)

    assert worker.run_once() == 1

    assert len(gateway.accepted) == 1
    with runtime.sessions() as session:
        statuses = Counter(session.scalars(select(models.Notification.status)))
    assert statuses == {models.DELIVERED: 1, models.PENDING: 1}
    assert outbox_types(runtime)["notification.delivered"] == 1
    assert worker.drain() == 1  # the other goes on the next round
    assert len(gateway.accepted) == 2


def test_a_worker_with_several_senders_sends_each_notification_once(
    deliver, runtime, make_worker, gateway
):
    visits = [Visit() for _ in range(30)]
    for visit in visits:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    worker = make_worker(senders=3, batch=5)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop, 0.05))
    running.start()
    try:
        deadline = time.monotonic() + 30
        while len(gateway.accepted) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        senders = {t.name for t in threading.enumerate() if t.name.startswith("sender-")}
    finally:
        stop.set()
        running.join(30)

    assert senders == {"sender-1", "sender-2"}  # beside the worker's own thread
    assert not running.is_alive()
    assert len(gateway.requests) == 30
    statuses = Counter(r.status for v in visits for r in rows(runtime, v.case_ids[0]))
    assert statuses == {models.DELIVERED: 30}


def stop_waiting_rows(runtime) -> Counter:
    """Return the rows as (status, attempts, claim held), by count."""
    with runtime.sessions() as session:
        rows = session.scalars(select(models.Notification))
        return Counter((r.status, r.attempts, r.claim is not None) for r in rows)


def test_a_stopped_worker_records_the_send_in_progress_and_starts_no_other(
    deliver, runtime, make_worker, gateway
):
    """SIGTERM mid-send: that send is recorded, and the rest of the round is left to the
    next worker (a round of up to ``batch`` sends on a slow gateway outlasted compose's
    grace period, and the SIGKILL then left e-mails failed as outcome unknown)."""
    for visit in [Visit() for _ in range(5)]:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    worker = make_worker(senders=1)
    stop = threading.Event()
    gateway.on_request = lambda _request: stop.set()  # the signal comes during the send

    worker.run(stop, 60.0)

    assert len(gateway.requests) == 1
    assert stop_waiting_rows(runtime) == {
        (models.DELIVERED, 1, False): 1,
        (models.PENDING, 0, False): 4,
    }
    gateway.on_request = None
    assert make_worker().drain() == 4
    assert len(gateway.requests) == 5
    assert len(gateway.accepted) == 5


def test_a_row_claimed_as_the_worker_stops_goes_back_unsent_for_the_next_worker(
    deliver, runtime, make_worker, gateway
):
    """The signal comes while a send is recorded and the next row claimed in one
    transaction: that row is not sent but put back, 'pending' and its attempt not
    counted, so the next worker sends it at once (left 'sending', an e-mail would be
    failed as outcome unknown once stale)."""
    for visit in [Visit() for _ in range(5)]:
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
    worker = make_worker(senders=1)
    stop = threading.Event()
    takes = []

    def stop_at_the_second_take(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE notifications") and "attempts" in statement:
            takes.append(statement)
            if len(takes) == 2:
                stop.set()

    sqlalchemy.event.listen(runtime.engine, "before_cursor_execute", stop_at_the_second_take)
    try:
        worker.run(stop, 60.0)
    finally:
        sqlalchemy.event.remove(runtime.engine, "before_cursor_execute", stop_at_the_second_take)

    assert len(gateway.requests) == 1
    assert stop_waiting_rows(runtime) == {
        (models.DELIVERED, 1, False): 1,
        (models.PENDING, 0, False): 4,
    }
    assert make_worker().drain() == 4
    assert len(gateway.requests) == 5
    assert len(gateway.accepted) == 5


def test_an_idle_worker_is_woken_by_a_notification_becoming_due(
    deliver, runtime, make_worker, gateway, db_backend
):
    """On PostgreSQL the worker does not wait out its interval: the row's commit wakes it."""
    if db_backend == "sqlite":
        pytest.skip("SQLite has no NOTIFY: the worker looks every interval")
    worker = make_worker()
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop, 60.0))  # a long look interval
    running.start()
    try:
        deadline = time.monotonic() + 10
        while worker._due.generation == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the worker listens (it says so once, on connecting)
        assert worker._due.generation > 0
        time.sleep(0.5)  # and has gone idle: nothing was due
        visit = Visit()
        deliver(visit.case_registered())
        deliver(visit.contact_recorded())
        deadline = time.monotonic() + 20
        while not gateway.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        running.join(30)

    assert len(gateway.accepted) == 1  # sent long before the 60 s look
    assert not running.is_alive()


def test_the_listening_connection_probes_an_idle_link(runtime, db_backend):
    """A LISTEN link that died silently is found by TCP keepalive in seconds, not hours."""
    if db_backend == "sqlite":
        pytest.skip("SQLite has no NOTIFY: the worker listens on no connection")
    url = runtime.engine.url.set(drivername="postgresql")
    with delivery.listening_connection(url.render_as_string(hide_password=False)) as conn:
        link = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            assert link.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert link.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
            assert link.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
            assert link.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        finally:
            link.close()
