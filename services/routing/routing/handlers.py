"""The consumer's handlers: what routing does with each event it receives.

Each handler runs inside the consumer's unit of work, which also records the
event in the inbox and commits; a handler never commits itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from eventbus.consumer import Handler
from eventbus.envelope import PoisonMessage, ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from routing import inbound, rules, usecases


def handlers(runtime) -> Mapping[str, Handler]:
    """Return the handlers by routing key; their keys are the queue's bindings."""
    default_unit = rules.default_unit()

    def on_case_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Route a newly registered case to its responsible unit."""
        case = inbound.case_registered(event)
        usecases.route_case(uow, case, default_unit=default_unit)

    def on_case_reopened(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Send a reopened case back to its unit, with a fresh deadline."""
        data = inbound.case_reopened(event)
        usecases.reopen(uow, data, default_unit=default_unit)

    def on_meeting_decision(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Apply a joint meeting's decision: reassign the case or extend its deadline."""
        data = inbound.meeting_decision(event)
        try:
            usecases.meeting_decision(uow, data)
        except usecases.Invalid as exc:
            # The meeting named a unit the directory does not have (or retired).
            raise PoisonMessage(f"meeting.decision_recorded: {exc.message}") from exc

    return {
        "case.registered": on_case_registered,
        "case.reopened": on_case_reopened,
        "meeting.decision_recorded": on_meeting_decision,
    }
