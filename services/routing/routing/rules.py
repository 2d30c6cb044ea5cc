"""Decide which unit answers for a case, and by when.

``choose_unit`` is the one entry point: it takes what reception decided (sign over
to a named unit, or let routing decide) and passes every choice through
``apply_confidentiality``, so no path — today's or the (category, area) rules still
to come — can hand a complaint to the unit it accuses.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace

from dateutil.relativedelta import relativedelta

from routing.directory import Directory, ancestors, in_subtree

DEFAULT_UNIT = "city-gov-office"
# The organ of last resort for complaints about officials (市纪委 / 监察局).
DISCIPLINE_UNIT = "city-discipline"

SIGN_OVER = "sign_over"
ROUTE = "route"
RESOLVED_ON_SPOT = "resolved_on_spot"

SIGNED_OVER = "signed over"
DEFAULT_RULE = "default rule"
SIGN_OVER_UNAVAILABLE = "signed-over unit unknown or inactive → default rule"
WITHHELD_TO_SUPERIOR = "accused unit withheld → superior"
WITHHELD_TO_DISCIPLINE = "accused unit withheld → discipline commission"


class NoResponsibleUnitError(Exception):
    """The directory lacks the unit a case must go to (not seeded, or misconfigured).

    Not the event's fault: the message is retried, and dead-lettered for an operator
    once the delivery limit is spent.
    """


@dataclass(frozen=True)
class CaseFacts:
    """What routing needs to know about a case to choose its unit."""

    action: str
    category: str
    receiving_unit: str
    sign_over_unit: str | None = None
    accused_unit: str | None = None
    accused_person: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class Choice:
    """The unit chosen for a case, why, and whether the case is confidential."""

    unit: str
    reason: str
    confidential: bool = False


def default_unit() -> str:
    """Return the unit that takes cases no rule claims (``ROUTING_DEFAULT_UNIT``)."""
    return os.environ.get("ROUTING_DEFAULT_UNIT", DEFAULT_UNIT)


def _available(directory: Directory, code: str | None) -> bool:
    unit = directory.get(code) if code else None
    return unit is not None and unit.active


def choose_unit(case: CaseFacts, directory: Directory, *, default: str) -> Choice:
    """Choose the responsible unit of a case that is not resolved on the spot."""
    if case.action == RESOLVED_ON_SPOT:
        raise ValueError("a case resolved on the spot is not routed")
    if case.action == SIGN_OVER and _available(directory, case.sign_over_unit):
        choice = Choice(case.sign_over_unit, SIGNED_OVER)
    elif case.action == SIGN_OVER:
        choice = _by_rules(case, directory, default, reason=SIGN_OVER_UNAVAILABLE)
    else:
        choice = _by_rules(case, directory, default, reason=DEFAULT_RULE)
    return apply_confidentiality(choice, case, directory)


def _by_rules(case: CaseFacts, directory: Directory, default: str, *, reason: str) -> Choice:
    # The seam for the (category, area) → unit rules of a later issue; until then
    # every case routing decides goes to the default unit.
    if not _available(directory, default):
        raise NoResponsibleUnitError(f"default unit {default!r} is not an active unit")
    return Choice(default, reason)


def apply_confidentiality(choice: Choice, case: CaseFacts, directory: Directory) -> Choice:
    """Keep a complaint away from the unit it accuses and from that unit's sub-units.

    An excluded choice goes to the accused unit's nearest active superior outside the
    accused subtree, else to the discipline commission. Any case that accuses a unit
    or a person is marked confidential: the visitor's identity is withheld.
    """
    if not case.accused_unit and not case.accused_person:
        return choice
    choice = replace(choice, confidential=True)
    accused = case.accused_unit
    if not accused or not in_subtree(directory, choice.unit, accused):
        return choice
    for superior in ancestors(directory, accused):
        if superior.active:
            return Choice(superior.code, WITHHELD_TO_SUPERIOR, confidential=True)
    # No active superior: the accused is the city itself, or everything above it is
    # retired. Complaints about officials are the discipline commission's (纪委) to take
    # even though it sits under the city; a complaint about itself it never takes.
    if accused == DISCIPLINE_UNIT or not _available(directory, DISCIPLINE_UNIT):
        raise NoResponsibleUnitError(f"no unit may take a complaint about {accused!r}")
    return Choice(DISCIPLINE_UNIT, WITHHELD_TO_DISCIPLINE, confidential=True)


def due_date(routed_at: dt.datetime) -> dt.datetime:
    """Return the due date of an assignment: one calendar month after routing.

    The month is counted on the UTC calendar, as intake's provisional due date and
    every consumer of ``case.routed`` count it; the day is clamped to the end of a
    shorter month (routed on 31 January, due on 28 or 29 February).
    """
    if routed_at.tzinfo is None:
        raise ValueError("naive datetime: give instants with a time zone")
    return routed_at.astimezone(dt.UTC) + relativedelta(months=1)
