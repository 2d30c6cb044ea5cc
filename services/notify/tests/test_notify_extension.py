"""The visitor hears when the due date their receipt promised moves (assignment.extension_granted).

Routing extends the lead unit's assignment (by policy, by its supervising unit, or by the
joint meeting); the visitor holds a receipt with the old date, so they are sent the new one
by SMS, once per new due date. Why it was extended is internal and not sent.
"""

from __future__ import annotations

import pytest
from notify_sample_events import Visit, case_routed, unit_changed

from eventbus import envelope
from notify import models
from notify.handlers import handlers

NEW_DUE = "2027-02-14T09:10:00+00:00"


def extension_granted(
    visit: Visit, unit: str, *, due_at: str = NEW_DUE, role: str | None = "lead"
) -> envelope.OutgoingEvent:
    """Build routing's ``assignment.extension_granted`` of the visit's case."""
    data = {
        "case_id": visit.case_ids[0],
        "case_number": visit.case_numbers[0],
        "assignment_id": f"as-{visit.case_ids[0][:8]}-{unit}",
        "unit": unit,
        "occurred_at": "2027-01-10T01:00:00+00:00",
        "by": "policy",
        "due_at": due_at,
        "granted_by": "policy",
        "reason": "需调取十年工资档案，内部协调中",
        **({"role": role} if role else {}),
    }
    return envelope.build(
        service="routing",
        routing_key="assignment.extension_granted",
        subject=visit.case_ids[0],
        data=data,
    )


@pytest.fixture
def routed(deliver) -> Visit:
    visit = Visit()
    deliver(unit_changed("lw-guokeng", name="郭坑镇人民政府"))
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(case_routed(visit, "lw-guokeng"))
    deliver(case_routed(visit, "lw-buwen", role="co"))
    return visit


def extended(notifications) -> list[models.Notification]:
    return [n for n in notifications if n.kind == "extended"]


def test_notify_binds_its_queue_to_extensions():
    assert "assignment.extension_granted" in handlers()


def test_the_visitor_is_sent_the_new_due_date_once(routed, deliver, make_worker, gateway):
    event = extension_granted(routed, "lw-guokeng")
    deliver(event)
    deliver(event)  # a redelivery
    deliver(extension_granted(routed, "lw-guokeng"))  # a republication

    make_worker().drain()

    (sms,) = [r.json()["text"] for r in gateway.requests if "延长" in r.json()["text"]]
    assert sms == (
        f"【夜话】您反映的问题（编号{routed.case_numbers[0]}）办理时限已延长至2027-02-14，"
        "郭坑镇人民政府将在此前答复您。"
    )
    assert "档案" not in sms  # the reason is internal


def test_a_second_extension_brings_a_second_notice(routed, deliver, notifications_of):
    deliver(extension_granted(routed, "lw-guokeng"))
    deliver(extension_granted(routed, "lw-guokeng", due_at="2027-03-14T09:10:00+00:00"))

    notices = extended(notifications_of(routed.case_ids[0]))
    assert sorted(n.payload["due_at"] for n in notices) == [
        NEW_DUE,
        "2027-03-14T09:10:00+00:00",
    ]
    assert {(n.recipient_kind, n.channel) for n in notices} == {(models.VISITOR, models.SMS)}


def test_in_english_for_a_visitor_who_reads_english(deliver, make_worker, gateway):
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded(data=visit.contact_data() | {"language": "en"}))
    deliver(extension_granted(visit, "lw-guokeng", role=None))

    make_worker().drain()

    (sms,) = [r.json()["text"] for r in gateway.requests if "now due" in r.json()["text"]]
    assert sms == (
        f"[Night Talk] The answer to case {visit.case_numbers[0]} is now due by 2027-02-14; "
        "lw-guokeng will answer you by then."
    )


@pytest.mark.parametrize("role", ["co", None], ids=["role in the event", "role from case.routed"])
def test_a_co_handlers_extension_tells_the_visitor_nothing(role, routed, deliver, notifications_of):
    deliver(extension_granted(routed, "lw-buwen", role=role))

    assert extended(notifications_of(routed.case_ids[0])) == []


def test_an_extension_without_a_due_date_is_poison(routed, deliver):
    from eventbus.envelope import PoisonMessage

    event = extension_granted(routed, "lw-guokeng", due_at="next month")
    with pytest.raises(PoisonMessage, match="due_at"):
        deliver(event)


def test_an_admin_may_switch_the_notice_off_or_send_it_as_a_letter():
    from notify.rules import RuleIn

    for channel in ("sms", "letter"):
        RuleIn().load(
            {
                "event": "assignment.extension_granted",
                "kind": "extended",
                "recipient_kind": "visitor",
                "channel": channel,
                "enabled": False,
            }
        )
