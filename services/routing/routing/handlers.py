"""The consumer's handlers: what routing does with each event it receives.

Each handler runs inside the consumer's unit of work, which also records the
event in the inbox and commits; a handler never commits itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from eventbus.consumer import Handler
from eventbus.envelope import ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from routing import inbound, rules, usecases


def handlers(runtime) -> Mapping[str, Handler]:
    """Return the handlers by routing key; their keys are the queue's bindings."""
    default_unit = rules.default_unit()

    def on_case_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
        """Route a newly registered case to its responsible unit."""
        case = inbound.case_registered(event)
        usecases.route_case(uow, case, default_unit=default_unit)

    return {"case.registered": on_case_registered}
