"""A co-handling unit's (协办) resolution is its part of the case, not the case's answer.

The visitor hears the lead unit's answer, and is asked whether they are satisfied with it;
a co-handler's resolution tells the visitor nothing. Routing names the role in every
``assignment.*`` event; an older event without it is judged by what ``case.routed`` told
notify of the assignment, else taken for the lead's.
"""

from __future__ import annotations

import pytest
from notify_sample_events import Visit, assignment_resolved, case_routed

from notify import models

ANSWERED = {
    (models.ANSWER, models.SMS),
    (models.ANSWER, models.LETTER),
    (models.SATISFACTION, models.SMS),
}


@pytest.fixture
def routed(deliver) -> Visit:
    """A case of a known visitor, led by lw-guokeng with lw-buwen co-handling."""
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())
    deliver(case_routed(visit, "lw-guokeng"))
    deliver(case_routed(visit, "lw-buwen", role="co"))
    return visit


def told_of_the_answer(notifications) -> set[tuple[str, str]]:
    return {
        (n.kind, n.channel) for n in notifications if n.kind in (models.ANSWER, models.SATISFACTION)
    }


@pytest.mark.parametrize("role", ["co", None], ids=["role in the event", "role from case.routed"])
def test_a_co_handlers_resolution_tells_the_visitor_nothing(
    role, routed, deliver, notifications_of
):
    deliver(assignment_resolved(routed, "lw-buwen", answer="步文镇部分：材料已转交", role=role))

    assert told_of_the_answer(notifications_of(routed.case_ids[0])) == set()


@pytest.mark.parametrize("role", ["lead", None], ids=["role in the event", "role from case.routed"])
def test_the_leads_resolution_is_the_answer(role, routed, deliver, notifications_of):
    deliver(assignment_resolved(routed, "lw-buwen", answer="步文镇部分：材料已转交", role="co"))

    deliver(assignment_resolved(routed, "lw-guokeng", answer="工资已于本月补发", role=role))

    notifications = notifications_of(routed.case_ids[0])
    assert told_of_the_answer(notifications) == ANSWERED
    answers = {n.payload["answer"] for n in notifications if n.kind == models.ANSWER}
    assert answers == {"工资已于本月补发"}


def test_a_resolution_of_an_assignment_notify_never_heard_of_is_taken_for_the_leads(
    deliver, notifications_of
):
    """An event from before routing named the role, its case.routed not (yet) here."""
    visit = Visit()
    deliver(visit.case_registered())
    deliver(visit.contact_recorded())

    deliver(assignment_resolved(visit, "lw-guokeng"))

    assert told_of_the_answer(notifications_of(visit.case_ids[0])) == ANSWERED


def test_a_role_routing_does_not_know_is_poison(deliver, routed):
    from eventbus.envelope import PoisonMessage

    with pytest.raises(PoisonMessage, match="role"):
        deliver(assignment_resolved(routed, "lw-guokeng", role="boss"))
