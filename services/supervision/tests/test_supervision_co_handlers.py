"""A co-operating unit's (协办) answer is its part, never the case's, whatever the arrival order.

Routing marks each assignment.* event with the assignment's ``role`` (lead or co); events
published before it did carry none, and supervision then goes by what it knows: the lead's
``case.routed`` names the assignment that answers for the case.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest
from sqlalchemy import func, select
from supervision_samples import (
    CST,
    ROUTED_AT,
    ROUTED_DUE_AT,
    assignment_event,
    case_registered,
    case_routed,
    case_row,
    consume,
    new_case,
    timeline,
)

from supervision import ladder, models

CO_ROUTED_AT = ROUTED_AT + dt.timedelta(days=1)
CO_RESOLVED_AT = dt.datetime(2026, 12, 20, 10, 0, tzinfo=CST)


def timers(runtime, case_id: str) -> int:
    with runtime.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(models.ClockTimer)
            .where(models.ClockTimer.case_id == case_id)
        )


def co_case(role: str | None):
    """Return the events of a case with a lead and a co-handler that answered its part."""
    case_id, number = new_case()
    lead, co = str(uuid.uuid4()), str(uuid.uuid4())
    marked = {} if role is None else {"role": role}
    events = {
        "registered": case_registered(case_id, number),
        "lead routed": case_routed(case_id, number, assignment_id=lead),
        "co routed": case_routed(
            case_id,
            number,
            unit="lw-chaoyang",
            role="co",
            routed_at=CO_ROUTED_AT,
            assignment_id=co,
        ),
        "co resolved": assignment_event(
            "assignment.resolved",
            case_id,
            number,
            co,
            unit="lw-chaoyang",
            answer="协办部分：材料已转交",
            occurred_at=CO_RESOLVED_AT,
            **marked,
        ),
    }
    return case_id, lead, events


ORDERS = list(itertools.permutations(["registered", "lead routed", "co routed", "co resolved"]))


@pytest.mark.parametrize("role", [None, "co"], ids=["unmarked", "marked-co"])
@pytest.mark.parametrize("order", ORDERS, ids=lambda order: ", ".join(order))
def test_a_co_handlers_answer_never_resolves_the_case(runtime, order, role):
    case_id, lead, events = co_case(role)

    for name in order:
        consume(runtime, events[name])

    row = case_row(runtime, case_id)
    assert (row["status"], row["assignment_id"], row["responsible_unit"]) == (
        models.ROUTED,
        lead,
        "lw-buwen",
    )
    assert row["resolved_at"] is None
    assert row["due_at"] == ROUTED_DUE_AT
    # The lead's clock runs: the ladder still watches the case.
    assert timers(runtime, case_id) > 0
    # The co-handler's part stays on the timeline, marked as such when routing marks it.
    [part] = [e for e in timeline(runtime, case_id) if e[1] == "assignment.resolved"]
    assert part[3]["answer"] == "协办部分：材料已转交"
    assert part[3].get("role") == role


def test_a_co_handlers_answer_before_any_routing_leaves_the_case_unresolved(runtime):
    """The audit's order: the lead's routing held back until the co-handler has answered."""
    case_id, lead, events = co_case(None)
    consume(runtime, events["registered"])
    consume(runtime, events["co routed"])
    consume(runtime, events["co resolved"])

    assert case_row(runtime, case_id)["status"] == models.OPEN
    consume(runtime, events["lead routed"])

    assert case_row(runtime, case_id)["status"] == models.ROUTED
    fired = ladder.sweep(runtime, ROUTED_DUE_AT + dt.timedelta(days=120)).fired
    assert fired == {"warning": 1, "overdue": 1, "unit-leader": 1, "city-leader": 1}


@pytest.mark.parametrize("role", [None, "lead"], ids=["unmarked", "marked-lead"])
@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["registered", "lead routed", "lead resolved"])),
    ids=lambda order: ", ".join(order),
)
def test_the_leads_answer_resolves_the_case_in_any_order(runtime, order, role):
    case_id, number = new_case()
    lead = str(uuid.uuid4())
    marked = {} if role is None else {"role": role}
    events = {
        "registered": case_registered(case_id, number),
        "lead routed": case_routed(case_id, number, assignment_id=lead),
        "lead resolved": assignment_event(
            "assignment.resolved",
            case_id,
            number,
            lead,
            answer="已补发",
            occurred_at=CO_RESOLVED_AT,
            **marked,
        ),
    }

    for name in order:
        consume(runtime, events[name])

    row = case_row(runtime, case_id)
    assert (row["status"], row["assignment_id"], row["resolved_at"]) == (
        models.RESOLVED,
        lead,
        CO_RESOLVED_AT,
    )
    assert timers(runtime, case_id) == 0


def test_an_answer_marked_lead_resolves_the_case_before_its_routing_arrives(runtime):
    case_id, number = new_case()
    lead = str(uuid.uuid4())
    consume(runtime, case_registered(case_id, number))
    consume(
        runtime,
        assignment_event(
            "assignment.resolved",
            case_id,
            number,
            lead,
            role="lead",
            answer="已补发",
            occurred_at=CO_RESOLVED_AT,
        ),
    )

    row = case_row(runtime, case_id)
    assert (row["status"], row["assignment_id"]) == (models.RESOLVED, lead)
