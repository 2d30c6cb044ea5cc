"""Who hears what from each event, units' contacts from routing, and quiet hours for SMS."""

from __future__ import annotations

import datetime as dt

import pytest
from notify_sample_events import (
    UNIT_EMAIL,
    Visit,
    assignment_resolved,
    case_routed,
    supervision_event,
    unit_changed,
)
from notify_test_servers import PARTNER
from sqlalchemy import select

from eventbus.envelope import PoisonMessage
from notify import models
from notify.delivery import Settings, quiet_until


def kinds(notifications) -> set[tuple[str, str, str, str]]:
    return {(n.kind, n.recipient_kind, n.recipient_ref, n.channel) for n in notifications}


def test_routing_tells_the_visitor_and_the_unit(deliver, notifications_of):
    visit = Visit()
    deliver(case_routed(visit, PARTNER))
    assert kinds(notifications_of(visit.case_ids[0])) == {
        ("routed", "visitor", "", "sms"),
        ("assignment", "unit", PARTNER, "email"),
        ("assignment", "unit", PARTNER, "webhook"),
    }


def test_a_co_handling_unit_is_told_but_not_announced_to_the_visitor(deliver, notifications_of):
    visit = Visit()
    deliver(case_routed(visit, "lw-buwen", role="co"))
    assert {n.recipient_kind for n in notifications_of(visit.case_ids[0])} == {"unit"}


def test_the_answer_and_the_satisfaction_question_go_to_the_visitor(deliver, notifications_of):
    visit = Visit()
    deliver(assignment_resolved(visit, PARTNER))
    assert kinds(notifications_of(visit.case_ids[0])) == {
        ("answer", "visitor", "", "sms"),
        ("answer", "visitor", "", "letter"),
        ("satisfaction", "visitor", "", "sms"),
    }


def test_each_escalation_level_reaches_the_supervising_leader_once(deliver, notifications_of):
    visit = Visit()
    for level in (1, 1, 2):
        deliver(
            supervision_event(
                "case.escalated", visit, PARTNER, level=level, supervisor_unit="city-org"
            )
        )
    found = notifications_of(visit.case_ids[0])
    assert sorted((n.occasion, n.channel) for n in found) == [
        ("level-1", "email"),
        ("level-1", "sms"),
        ("level-2", "email"),
        ("level-2", "sms"),
    ]
    assert {n.recipient_ref for n in found} == {"city-org"}


@pytest.mark.parametrize("level", [0, 10, "three", None])
def test_an_escalation_level_supervision_cannot_give_is_poison(level, deliver):
    # Its ladder's levels are 1 to 9 (LadderStepIn), besides 'major': see the contract tests.
    visit = Visit()
    with pytest.raises(PoisonMessage, match="level"):
        deliver(
            supervision_event("case.escalated", visit, PARTNER, level=level, supervisor_unit="x")
        )


def test_unit_notifications_wait_for_the_units_contact(deliver, notifications_of):
    visit = Visit()
    deliver(supervision_event("case.overdue", visit, PARTNER))
    assert {n.status for n in notifications_of(visit.case_ids[0])} == {models.AWAITING_CONTACT}

    deliver(unit_changed(PARTNER, email=UNIT_EMAIL))  # an e-mail, no webhook

    by_channel = {n.channel: n.status for n in notifications_of(visit.case_ids[0])}
    assert by_channel == {"email": models.PENDING, "webhook": models.UNREACHABLE}


def test_contacts_known_beforehand_address_each_channel_at_once(deliver, notifications_of):
    # The common order: the unit's and the visitor's contacts arrived before the routing.
    # Each channel's row is addressed as it is recorded, in its contact's language.
    deliver(unit_changed(PARTNER, email=UNIT_EMAIL, language="en"))  # no webhook
    visit = Visit()
    deliver(visit.contact_recorded(data={**visit.contact_data(phone=None), "language": "en"}))

    deliver(case_routed(visit, PARTNER))

    recorded = {
        (n.recipient_kind, n.channel): (n.status, n.language)
        for n in notifications_of(visit.case_ids[0])
    }
    assert recorded == {
        ("unit", "email"): (models.PENDING, "en"),
        ("unit", "webhook"): (models.UNREACHABLE, "en"),
        # No phone: the SMS cannot go, and keeps the default language until it can.
        ("visitor", "sms"): (models.UNREACHABLE, models.DEFAULT_LANGUAGE),
    }

    deliver(visit.contact_recorded(data={**visit.contact_data(), "language": "en"}))

    statuses = {
        (n.recipient_kind, n.channel): (n.status, n.language)
        for n in notifications_of(visit.case_ids[0])
    }
    assert statuses[("visitor", "sms")] == (models.PENDING, "en")


def test_a_newer_unit_revision_wins_and_an_older_one_is_ignored(deliver, runtime):
    deliver(unit_changed(PARTNER, revision=2, email="new@unit.example"))
    deliver(unit_changed(PARTNER, revision=1, email="old@unit.example"))
    with runtime.sessions() as session:
        assert session.get(models.UnitContact, PARTNER).email == "new@unit.example"
    deliver(unit_changed(PARTNER, revision=3, email=None, webhook_url="https://hook.example/x"))
    with runtime.sessions() as session:
        contact = session.get(models.UnitContact, PARTNER)
        assert (contact.email, contact.webhook_url) == (None, "https://hook.example/x")


def test_a_unit_with_a_bad_email_is_poison(deliver):
    with pytest.raises(PoisonMessage, match="email"):
        deliver(unit_changed(PARTNER, email="not an address"))


def test_warning_is_once_per_due_date(deliver, notifications_of):
    visit = Visit()
    deliver(supervision_event("case.warning", visit, PARTNER))
    deliver(supervision_event("case.warning", visit, PARTNER))  # republished
    deliver(supervision_event("case.warning", visit, PARTNER, due_at="2027-02-15T00:00:00+00:00"))
    assert len(notifications_of(visit.case_ids[0])) == 4  # 2 due dates × e-mail and webhook


# --- quiet hours -------------------------------------------------------------------------

SETTINGS = Settings()
BEIJING = dt.timezone(dt.timedelta(hours=8))


def sms(kind: str = models.ANSWER, received_at: str | None = None, **fields):
    return models.Notification(
        kind=kind,
        channel=fields.get("channel", models.SMS),
        recipient_kind=fields.get("recipient_kind", models.VISITOR),
        payload={"received_at": received_at} if received_at else {},
    )


def at(hour: int, minute: int = 0, day: int = 15) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=BEIJING)


@pytest.mark.parametrize("hour", [22, 23, 0, 3, 7])
def test_no_sms_to_visitors_in_quiet_hours(hour):
    now = at(hour, 30)
    wake = quiet_until(SETTINGS, now, sms())
    assert wake is not None
    assert wake.astimezone(BEIJING).time() == dt.time(8, 0)
    assert dt.timedelta(0) < wake - now <= dt.timedelta(hours=10)


@pytest.mark.parametrize("hour", [8, 12, 21])
def test_sms_goes_out_by_day(hour):
    assert quiet_until(SETTINGS, at(hour, 30), sms()) is None


def test_a_visitor_at_the_desk_tonight_gets_the_receipt_at_once():
    registered = at(22, 40).isoformat()
    assert quiet_until(SETTINGS, at(23, 0), sms(models.RECEIPT, registered)) is None
    # ...but not hours later, and not for other kinds.
    assert quiet_until(SETTINGS, at(3, 0, day=16), sms(models.RECEIPT, registered)) is not None
    assert quiet_until(SETTINGS, at(23, 0), sms(models.ANSWER, registered)) is not None


def test_quiet_hours_spare_other_channels_and_recipients():
    assert quiet_until(SETTINGS, at(23), sms(channel=models.LETTER)) is None
    assert quiet_until(SETTINGS, at(23), sms(recipient_kind=models.LEADER)) is None


def test_quiet_hours_are_configurable():
    settings = Settings(quiet_start=dt.time(21, 0), quiet_end=dt.time(9, 0))
    assert quiet_until(settings, at(21, 30), sms()) is not None
    assert quiet_until(settings, at(8, 30), sms()) is not None
    assert (
        quiet_until(Settings(quiet_start=dt.time(0), quiet_end=dt.time(0)), at(23), sms()) is None
    )


def test_the_worker_holds_a_night_sms_until_morning(deliver, runtime, make_worker, gateway, clock):
    visit = Visit()
    deliver(visit.contact_recorded())
    deliver(assignment_resolved(visit, PARTNER))
    clock.now = at(23).astimezone(dt.UTC)
    worker = make_worker()

    worker.drain()

    with runtime.sessions() as session:
        held = session.scalars(
            select(models.Notification).where(
                models.Notification.case_id == visit.case_ids[0],
                models.Notification.channel == models.SMS,
            )
        ).all()
    assert {n.status for n in held} == {models.PENDING}
    assert gateway.requests == []
    clock.now = at(8, 0, day=16).astimezone(dt.UTC)
    worker.drain()
    assert len(gateway.requests) == 2  # the answer and the satisfaction question


def test_the_worker_settles_a_notification_a_race_left_waiting(
    deliver, runtime, partner_unit, make_worker, gateway, smtp
):
    """Both handlers committed, yet the rows still wait (as when they ran concurrently)."""
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(supervision_event("case.overdue", visit, PARTNER))
    with runtime.sessions() as session:
        for row in session.scalars(select(models.Notification)):
            row.status = models.AWAITING_CONTACT
        session.commit()

    make_worker().drain()

    with runtime.sessions() as session:
        statuses = {
            (n.kind, n.channel): n.status for n in session.scalars(select(models.Notification))
        }
    assert statuses == {
        ("receipt", "sms"): models.DELIVERED,
        ("overdue", "email"): models.DELIVERED,
        ("overdue", "webhook"): models.DELIVERED,
    }
