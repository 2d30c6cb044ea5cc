"""The consumer's handlers on a real database: receipts, contacts, order, duplicates, PII."""

from __future__ import annotations

import logging
import threading

import pytest
from notify_sample_events import ADDRESS, NAME, PHONE, Visit, seal
from sqlalchemy import func, select, text

from eventbus import envelope, testing
from eventbus.envelope import PoisonMessage
from notify import models
from notify.recipients import recipient_of
from servicekit import pii


def final_state(runtime, case_id: str) -> dict:
    """Return what matters of a case's receipt: status, language, payload, masked recipient."""
    with runtime.sessions() as session:
        (receipt,) = session.scalars(
            select(models.Notification).where(models.Notification.case_id == case_id)
        ).all()
        recipient = recipient_of(session, receipt)
        return {
            "kind": receipt.kind,
            "recipient_kind": receipt.recipient_kind,
            "channel": receipt.channel,
            "status": receipt.status,
            "language": receipt.language,
            "payload": receipt.payload,
            "recipient": recipient.masked() if recipient else None,
        }


def test_receipt_carries_case_number_and_due_date(deliver, notifications_of):
    visit = Visit()
    event = visit.case_registered()

    deliver(event)

    (receipt,) = notifications_of(visit.case_ids[0])
    assert receipt.kind == models.RECEIPT
    assert receipt.recipient_kind == models.VISITOR
    assert receipt.channel == models.SMS
    assert receipt.event_id == event.event_id
    assert receipt.case_number == visit.case_numbers[0]
    assert receipt.unit == visit.unit
    assert receipt.payload["case_number"] == visit.case_numbers[0]
    assert receipt.payload["due_at"] == visit.due_at.isoformat()
    assert receipt.payload["unit"] == visit.unit


def test_receipt_is_recorded_once_however_often_the_case_arrives(deliver, notifications_of, caplog):
    visit = Visit()
    first = visit.case_registered()

    with caplog.at_level(logging.INFO, logger="notify.handlers"):
        deliver(first)
        deliver(first)  # a redelivery: same event id
        deliver(visit.case_registered())  # a republication: same case, another event id

    receipts = notifications_of(visit.case_ids[0])
    assert len(receipts) == 1
    assert receipts[0].event_id == first.event_id
    # The log says what went in: the redelivery never reaches the handler, the
    # republication meets the unique occasion and records nothing.
    recorded = [r.recorded for r in caplog.records if r.getMessage() == "notifications recorded"]
    assert recorded == [1, 0]


def test_case_without_known_contact_awaits_it(deliver, notifications_of):
    visit = Visit()

    deliver(visit.case_registered())

    (receipt,) = notifications_of(visit.case_ids[0])
    assert receipt.status == models.AWAITING_CONTACT


@pytest.mark.parametrize("order", ["case_first", "contact_first"])
def test_both_orders_end_pending_in_the_same_state(order, deliver, runtime):
    visit = Visit()
    events = [visit.case_registered(), visit.contact_recorded()]
    if order == "contact_first":
        events.reverse()

    for event in events:
        deliver(event)

    assert final_state(runtime, visit.case_ids[0]) == {
        "kind": "receipt",
        "recipient_kind": "visitor",
        "channel": "sms",
        "status": "pending",
        "language": "zh",
        "payload": {
            "case_number": visit.case_numbers[0],
            "unit": visit.unit,
            "received_at": visit.received_at.isoformat(),
            "due_at": visit.due_at.isoformat(),
            "case_status": "open",
        },
        "recipient": {
            "kind": "visitor",
            "name": "林*清",
            "phone": "139****1234",
            "address": "郭坑***",
        },
    }


def test_contact_addresses_every_case_of_its_visit_and_no_other(deliver, notifications_of):
    visit, other = Visit(cases=2), Visit()
    for event in (visit.case_registered(0), visit.case_registered(1), other.case_registered()):
        deliver(event)

    deliver(visit.contact_recorded())

    assert [n.status for c in visit.case_ids for n in notifications_of(c)] == ["pending"] * 2
    assert [n.status for n in notifications_of(other.case_ids[0])] == ["awaiting_contact"]


def test_a_contact_addresses_what_waits_for_it_without_reading_itself_back(
    deliver, runtime, notifications_of
):
    visit = Visit()
    deliver(visit.case_registered())

    english = visit.contact_data() | {"language": "en"}
    with testing.reads_of(runtime.engine, "visitor_contacts") as reads:
        deliver(visit.contact_recorded(data=english))

    assert reads == []
    (receipt,) = notifications_of(visit.case_ids[0])
    assert (receipt.status, receipt.language) == ("pending", "en")


def test_contact_without_phone_leaves_the_sms_unreachable_until_a_phone_arrives(
    deliver, notifications_of
):
    visit = Visit()
    deliver(visit.case_registered())

    deliver(visit.contact_recorded(phone=None))
    assert [n.status for n in notifications_of(visit.case_ids[0])] == ["unreachable"]

    deliver(visit.contact_recorded())
    assert [n.status for n in notifications_of(visit.case_ids[0])] == ["pending"]


def test_producers_may_add_fields(deliver, notifications_of):
    visit = Visit()
    case = visit.case_data() | {"new_field": 1}
    contact = visit.contact_data(id_last4="1234")  # a field added inside the sealed contact
    contact["cases"][0]["status"] = "open"
    contact["extra"] = {"a": 1}

    deliver(visit.case_registered(data=case))
    deliver(visit.contact_recorded(data=contact))

    assert [n.status for n in notifications_of(visit.case_ids[0])] == ["pending"]


def test_contact_is_stored_encrypted(deliver, runtime):
    visit = Visit()
    deliver(visit.contact_recorded())
    deliver(visit.case_registered())

    with runtime.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT name_enc, phone_enc, address_enc FROM visitor_contacts WHERE visit_id = :v"
            ),
            {"v": visit.visit_id},
        ).one()
        everything = [
            str(tuple(r))
            for table in ("visitor_contacts", "contact_cases", "notifications", "inbox")
            for r in conn.execute(text(f"SELECT * FROM {table}"))
        ]
    assert (
        pii.decrypt(row.name_enc),
        pii.decrypt(row.phone_enc),
        pii.decrypt(row.address_enc),
    ) == (NAME, PHONE, ADDRESS)
    for clear in (NAME, PHONE, ADDRESS, PHONE[-4:] + "'"):
        assert not any(clear in stored for stored in everything), clear


def _log_text(record: logging.LogRecord) -> str:
    """Return everything a formatter could write of a record: message, extras, traceback."""
    return " ".join([record.getMessage(), repr(record.__dict__), record.exc_text or ""])


def test_no_visitor_data_in_logs(deliver, runtime, caplog):
    caplog.set_level(logging.DEBUG)
    visit, late = Visit(), Visit()

    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(late.contact_recorded())
    deliver(late.case_registered())
    with pytest.raises(PoisonMessage) as poisoned:
        # An invalid phone beside a valid name: the error must name the field only.
        deliver(visit.contact_recorded(phone=NAME))

    assert [r for r in caplog.records if r.name == "notify.handlers"], "handlers logged nothing"
    texts = [_log_text(r) for r in caplog.records] + [str(poisoned.value)]
    for clear in (NAME, PHONE, ADDRESS):
        leaks = [t for t in texts if clear in t]
        assert not leaks, leaks


POISON = {
    "case without number": ("case", lambda d: d.pop("case_number")),
    "case number malformed": ("case", lambda d: d.update(case_number="not a number")),
    "case without visit": ("case", lambda d: d.pop("visit_id")),
    "due date not a date": ("case", lambda d: d.update(due_at="next month")),
    "unit not a code": ("case", lambda d: d.update(unit="City Org")),
    "contact without visitor": ("contact", lambda d: d.pop("sealed_contact")),
    "sealed contact not a token": (
        "contact",
        lambda d: d.update(sealed_contact="林河清 13905961234"),
    ),
    "phone malformed": (
        "contact",
        lambda d: d.update(sealed_contact=seal({"name": NAME, "phone": "call me"})),
    ),
    # The clear contact of events published before intake sealed it.
    "unsealed contact without visitor": ("unsealed", lambda d: d.pop("visitor")),
    "visitor not an object": ("unsealed", lambda d: d.update(visitor="林河清 13905961234")),
    "unsealed phone malformed": ("unsealed", lambda d: d["visitor"].update(phone="call me")),
    "cases not a list": ("contact", lambda d: d.update(cases={"case_id": "x"})),
    "case ref without id": ("contact", lambda d: d["cases"][0].pop("case_id")),
}


@pytest.mark.parametrize("spoil", POISON.values(), ids=POISON.keys())
def test_invalid_data_is_poison_and_changes_nothing(spoil, deliver, runtime):
    visit = Visit()
    which, change = spoil
    if which == "case":
        data = visit.case_data()
    else:
        data = visit.contact_data(sealed=which == "contact")
    change(data)
    event = (
        visit.case_registered(data=data) if which == "case" else visit.contact_recorded(data=data)
    )

    with pytest.raises(PoisonMessage):
        deliver(event)

    with runtime.sessions() as session:
        counts = [
            session.scalar(select(func.count()).select_from(table))
            for table in (models.Notification, models.VisitorContact, models.ContactCase)
        ]
        applied = session.execute(text("SELECT count(*) FROM inbox")).scalar_one()
    assert counts == [0, 0, 0]
    assert applied == 0


def test_poison_reason_names_the_field(deliver):
    visit = Visit()
    data = visit.case_data()
    data["case_number"] = "not a number"

    with pytest.raises(PoisonMessage, match="case_number"):
        deliver(visit.case_registered(data=data))


def test_decoded_event_keeps_intake_shape():
    # Guard the helper itself: the events these tests feed are what intake emits.
    visit = Visit()
    out = visit.case_registered()
    event = envelope.decode(out.properties(), out.body, out.routing_key)
    assert (event.type, event.source, event.subject) == (
        "nighttalk.case.registered.v1",
        "/nighttalk/intake",
        visit.case_ids[0],
    )


def test_case_and_contact_applied_at_the_same_moment_end_pending(deliver, runtime):
    # Two consumers may apply the two events of one visit concurrently; neither may
    # leave the receipt waiting for a contact that the other has just stored.
    visits = [Visit() for _ in range(25)]
    failures: list[BaseException] = []

    def race(visit: Visit) -> None:
        start = threading.Barrier(2)

        def apply(event) -> None:
            try:
                start.wait(5)
                deliver(event)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                failures.append(exc)

        threads = [
            threading.Thread(target=apply, args=(e,))
            for e in (visit.case_registered(), visit.contact_recorded())
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    for visit in visits:
        race(visit)

    assert not failures, failures
    statuses = [final_state(runtime, v.case_ids[0])["status"] for v in visits]
    assert statuses == ["pending"] * len(visits)
