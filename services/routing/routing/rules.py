"""Decide which unit answers for a case, and by when.

``choose_unit`` takes what reception decided (sign over to a named unit, or let
routing decide by the (category, area) rules). Every path that hands a case to a
unit — sign over, rules, return, transfer, arbitration, reopening, a meeting's
reassignment — passes its choice through ``apply_confidentiality``, the one place
that keeps a complaint away from the unit it accuses and that unit's subtree.
``supervising_unit`` applies the same test (``may_take``) to the unit that arbitrates
a case and decides its extensions.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace
from typing import Protocol

from routing.directory import Directory, ancestors, in_subtree
from routing.models import ANY, CITY_AREA
from servicekit.localtime import local_zone, one_month_after

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
RULE = "rule"


class AccusedUnitError(Exception):
    """A person asked to hand a case to the unit it accuses, or to one of its sub-units."""


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
    # Days to the due date, when a rule overrides the one-month deadline.
    due_days: int | None = None


@dataclass(frozen=True)
class RuleEntry:
    """A routing rule as the rules book holds it."""

    category: str
    area: str
    unit: str
    due_days: int | None = None


class RuleBook(Protocol):
    """Where routing looks rules up: the database in service, a dict in unit tests."""

    def get(self, category: str, area: str) -> RuleEntry | None:
        """Return the rule of exactly this (category, area), wildcards included, or None."""


class MemoryRules:
    """Rules held in a dict (unit tests)."""

    def __init__(self, entries=()) -> None:
        self.entries = {(e.category, e.area): e for e in entries}

    def get(self, category: str, area: str) -> RuleEntry | None:
        return self.entries.get((category, area))


def specificity(category: str, area: str) -> list[tuple[str, str]]:
    """Return the rule keys that may route a case, the most specific first.

    Both named beats a category alone, which beats an area alone (a category names
    the responsible department; an area only where it sits), which beats ``*``/``*``.
    """
    return [(category, area), (category, ANY), (ANY, area), (ANY, ANY)]


def default_unit() -> str:
    """Return the unit that takes cases no rule claims (``ROUTING_DEFAULT_UNIT``)."""
    return os.environ.get("ROUTING_DEFAULT_UNIT", DEFAULT_UNIT)


def _available(directory: Directory, code: str | None) -> bool:
    unit = directory.get(code) if code else None
    return unit is not None and unit.active


def case_area(case: CaseFacts, directory: Directory) -> str:
    """Return the area a case belongs to: that of the unit that received it.

    The first-contact unit (首见责任制) is where the visitor lives or the trouble is;
    a case received by a city-level desk is the city's.
    """
    unit = directory.get(case.receiving_unit)
    return getattr(unit, "area", None) or CITY_AREA


def choose_unit(
    case: CaseFacts, directory: Directory, *, default: str, rules: RuleBook | None = None
) -> Choice:
    """Choose the responsible unit of a case that is not resolved on the spot."""
    if case.action == RESOLVED_ON_SPOT:
        raise ValueError("a case resolved on the spot is not routed")
    if case.action == SIGN_OVER and _available(directory, case.sign_over_unit):
        choice = Choice(case.sign_over_unit, SIGNED_OVER)
    elif case.action == SIGN_OVER:
        choice = _by_rules(case, directory, default, rules, fallback=SIGN_OVER_UNAVAILABLE)
    else:
        choice = _by_rules(case, directory, default, rules, fallback=DEFAULT_RULE)
    return apply_confidentiality(choice, case, directory)


def _by_rules(
    case: CaseFacts,
    directory: Directory,
    default: str,
    rules: RuleBook | None,
    *,
    fallback: str,
) -> Choice:
    if rules is not None:
        area = case_area(case, directory)
        for category, rule_area in specificity(case.category, area):
            rule = rules.get(category, rule_area)
            # A rule never names an inactive unit (the API refuses it); should the
            # directory change under it anyway, the next rule takes the case.
            if rule is not None and _available(directory, rule.unit):
                return Choice(rule.unit, f"{RULE} {category}/{rule_area}", due_days=rule.due_days)
    if not _available(directory, default):
        raise NoResponsibleUnitError(f"default unit {default!r} is not an active unit")
    return Choice(default, fallback)


def apply_confidentiality(
    choice: Choice, case: CaseFacts, directory: Directory, *, may_redirect: bool = True
) -> Choice:
    """Keep a complaint away from the unit it accuses and from that unit's sub-units.

    Every path that hands a case to a unit calls this. An excluded choice goes to the
    accused unit's nearest active superior outside the accused subtree, else to the
    discipline commission — or, when a person named the unit (``may_redirect`` False:
    a transfer, an arbitration), is refused with AccusedUnitError. Any case that
    accuses a unit or a person is marked confidential: the visitor's identity is
    withheld.
    """
    if not case.accused_unit and not case.accused_person:
        return choice
    choice = replace(choice, confidential=True)
    accused = case.accused_unit
    if not accused or may_take(directory, choice.unit, accused):
        return choice
    if not may_redirect:
        raise AccusedUnitError(
            f"the case accuses {accused!r}: it may not go to {choice.unit!r}, "
            "which is that unit or one of its sub-units"
        )
    return withheld_to(directory, accused)


def may_take(directory: Directory, code: str, accused: str) -> bool:
    """Return True if unit ``code`` may handle, or supervise, a complaint about ``accused``.

    No unit in the accused subtree may, but for the discipline commission when the
    accused has no active superior (the city itself): every unit is the city's, and
    complaints about officials are the commission's (纪委) to take. The directory marks
    no other oversight body, so the procuratorate is not one: it prosecutes crimes, it
    does not take complaints.
    """
    if not in_subtree(directory, code, accused):
        return True
    return (
        code == DISCIPLINE_UNIT
        and accused != DISCIPLINE_UNIT
        and not any(superior.active for superior in ancestors(directory, accused))
    )


def withheld_to(directory: Directory, accused: str) -> Choice:
    """Return where a complaint goes instead of the accused subtree.

    The accused unit's nearest active superior, else the discipline commission.
    """
    for superior in ancestors(directory, accused):
        if superior.active:
            return Choice(superior.code, WITHHELD_TO_SUPERIOR, confidential=True)
    # No active superior: the accused is the city itself, or everything above it is
    # retired. Complaints about officials are the discipline commission's (纪委) to take
    # even though it sits under the city; a complaint about itself it never takes.
    if accused == DISCIPLINE_UNIT or not _available(directory, DISCIPLINE_UNIT):
        raise NoResponsibleUnitError(f"no unit may take a complaint about {accused!r}")
    return Choice(DISCIPLINE_UNIT, WITHHELD_TO_DISCIPLINE, confidential=True)


def supervising_unit(
    directory: Directory, code: str, *, default: str, accused: str | None = None
) -> str | None:
    """Return the unit that supervises ``code``: its parent, or the city's office.

    A township's or a county department's supervisor is its county government; a
    city department or a county government answers to the city government office
    (the default unit), which itself answers to the city (the root unit).

    For a case that accuses a unit (``accused``), a supervisor in the accused subtree
    is passed over as a handler would be: the case goes to the accused unit's nearest
    active superior, else the discipline commission (a complaint about the city). None
    when the directory leaves no such unit: only an admin may then decide.
    """
    usual = _usual_supervisor(directory, code, default=default)
    if not accused or may_take(directory, usual, accused):
        return usual
    try:
        return withheld_to(directory, accused).unit
    except NoResponsibleUnitError:
        return None


def _usual_supervisor(directory: Directory, code: str, *, default: str) -> str:
    unit = directory.get(code)
    parent = directory.get(unit.parent) if unit is not None and unit.parent else None
    if parent is not None and parent.parent is not None and parent.active:
        return parent.code
    if code != default and _available(directory, default):
        return default
    root = [u for u in ancestors(directory, code) if u.parent is None]
    return root[0].code if root else default


def return_target(directory: Directory, case: CaseFacts, code: str, *, default: str) -> str | None:
    """Return the unit a case returned by unit ``code`` goes to, or None for arbitration.

    A return goes to the supervising unit, redirected away from the accused subtree.
    When that lands on the returning unit again (the discipline commission returning a
    complaint about the city, which no other unit may take), or on no unit at all, a
    return cannot move the case: it must be arbitrated.
    """
    supervising = supervising_unit(directory, code, default=default, accused=case.accused_unit)
    if supervising is None:
        return None
    try:
        target = apply_confidentiality(Choice(supervising, "return"), case, directory).unit
    except NoResponsibleUnitError:
        return None
    return None if target == code else target


def due_date(routed_at: dt.datetime, days: int | None = None) -> dt.datetime:
    """Return the due date of an assignment, in UTC: one calendar month after routing.

    The month is counted on the programme's calendar (``local_zone``), the one the
    visitor and the unit live by: a case routed on 1 March at 07:00 in Zhangzhou is
    due on 1 April at 07:00, though it is still 28 February in UTC (counted there, it
    was due on 29 March). The day is clamped to the end of a shorter month (routed on
    31 January, due on 28 or 29 February).
    """
    if days is None:
        return one_month_after(routed_at)
    if routed_at.tzinfo is None:
        raise ValueError("naive datetime: give instants with a time zone")
    # A rule's own deadline, in days: the same local time, whatever the clocks do.
    return (routed_at.astimezone(local_zone()) + dt.timedelta(days=days)).astimezone(dt.UTC)
