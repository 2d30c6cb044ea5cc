"""The visitor's contact as intake seals it: opened with the shared key, or dead-lettered.

``visit.contact_recorded`` carries the contact as one token (``sealed_contact``) under
NIGHTTALK_PII_KEY; events published before the contact was sealed carry it in clear
(``visitor``) and are still read. A token notify cannot open is poison, never a visit
without a contact.
"""

from __future__ import annotations

import logging

import pytest
from notify_sample_events import ADDRESS, NAME, PHONE, Visit, seal
from sqlalchemy import func, select

from eventbus import names, testing
from eventbus.connection import connect
from eventbus.envelope import PoisonMessage
from notify import models
from servicekit import pii

DEADLINE = 20.0


def receipt(runtime, visit: Visit) -> models.Notification | None:
    with runtime.sessions() as session:
        return session.scalars(
            select(models.Notification).where(models.Notification.case_id == visit.case_ids[0])
        ).first()


def stored_contact(runtime, visit: Visit):
    with runtime.sessions() as session:
        return session.get(models.VisitorContact, visit.visit_id)


def test_a_sealed_contact_over_the_broker_is_opened_and_the_receipt_sent(
    consumer, runtime, amqp_url, make_worker, gateway
):
    visit = Visit()
    contact = visit.contact_recorded()
    assert PHONE not in contact.body.decode() and NAME not in contact.body.decode()

    testing.publish(amqp_url, visit.case_registered(), contact)

    testing.eventually(
        lambda: (n := receipt(runtime, visit)) is not None and n.status == models.PENDING,
        "the receipt addressed to the visitor",
        timeout=DEADLINE,
    )
    # Kept as notify keeps every contact: each field encrypted on its own.
    kept = stored_contact(runtime, visit)
    assert (pii.decrypt(kept.name_enc), pii.decrypt(kept.phone_enc)) == (NAME, PHONE)
    assert pii.decrypt(kept.address_enc) == ADDRESS
    assert make_worker().drain() == 1
    (sms,) = [r.json() for r in gateway.requests]
    assert sms["to"] == PHONE and visit.case_numbers[0] in sms["text"]


def test_a_contact_sealed_with_another_key_is_dead_lettered_saying_so(
    consumer, runtime, amqp_url, monkeypatch, caplog
):
    caplog.set_level(logging.INFO)
    visit = Visit()
    with monkeypatch.context() as intake_with_another_key:
        intake_with_another_key.setenv("NIGHTTALK_PII_KEY", "not-the-key-notify-holds")
        contact = visit.contact_recorded()
    # Only this test's dead letter in the queue (the session's vhost is shared by its tests).
    conn = connect(amqp_url)
    conn.channel().queue_purge(names.dead_letter_queue("notify"))
    conn.close()

    testing.publish(amqp_url, visit.case_registered(), contact)

    dead = testing.get_messages(
        amqp_url, names.dead_letter_queue("notify"), count=1, timeout=DEADLINE
    )
    assert [props.message_id for _m, props, _b in dead] == [contact.event_id]
    (line,) = [r for r in caplog.records if r.getMessage() == "invalid event dead-lettered"]
    assert line.event_id == contact.event_id
    assert "sealed_contact" in line.reason and "NIGHTTALK_PII_KEY" in line.reason
    # Not taken for a visit without a contact: nothing stored, the receipt still waits.
    assert stored_contact(runtime, visit) is None
    assert receipt(runtime, visit).status == models.AWAITING_CONTACT
    logged = " ".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for clear in (NAME, PHONE, ADDRESS):
        assert clear not in logged


def test_an_event_published_before_sealing_is_still_read(deliver, runtime, notifications_of):
    visit = Visit()
    deliver(visit.case_registered())

    deliver(visit.contact_recorded(data=visit.contact_data(sealed=False)))

    assert [n.status for n in notifications_of(visit.case_ids[0])] == ["pending"]
    assert pii.decrypt(stored_contact(runtime, visit).phone_enc) == PHONE


SPOILED = {
    "not a token": "林河清 13905961234",
    "not a string": {"phone": PHONE},
    "opens to no object": seal([NAME, PHONE]),  # type: ignore[arg-type]
    "phone malformed inside": seal({"name": NAME, "phone": "call " + NAME, "address": ADDRESS}),
    "name too long inside": seal({"name": NAME * 20, "phone": PHONE}),
}


@pytest.mark.parametrize("sealed", SPOILED.values(), ids=SPOILED.keys())
def test_a_spoiled_sealed_contact_is_poison_named_by_field(sealed, deliver, runtime):
    visit = Visit()
    data = visit.contact_data() | {"sealed_contact": sealed}

    with pytest.raises(PoisonMessage, match="sealed_contact") as poisoned:
        deliver(visit.contact_recorded(data=data))

    for clear in (NAME, PHONE, ADDRESS):
        assert clear not in str(poisoned.value)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.VisitorContact)) == 0
