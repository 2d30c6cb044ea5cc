"""Who may read what in intake: a unit its own, a supervisor its jurisdiction, an admin all.

A supervisor's jurisdiction is the area its unit governs (``servicekit.jurisdiction``: a
city department the whole city, a county's departments that county, a township itself),
read from intake's copy of routing's directory (``unit.changed`` events).

A complaint is never shown to the unit it accuses nor to a unit below it, whatever their
jurisdiction, as in routing and supervision: its case, its visit (the visitor's masked
identity) and any list of them answer as for a record that does not exist. Two readers
keep it all the same: the unit that received it (its desk took the complaint from the
visitor and knows them), and the unit routing made responsible for it (the discipline
commission answering a complaint about the city, every unit being below the city).

A visit is kept from a reader from whom any complaint it is about is kept: one of its own
cases, a case it follows up or a case one of its cases repeats. Its visitor is that
complainant; the visit's other cases, which name no visitor, are still read and listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_smorest import abort
from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from intake import models
from servicekit.auth import Principal
from servicekit.jurisdiction import governed_units, read_directory, unit_and_above


@dataclass(frozen=True)
class Sight:
    """What a caller may read: its unit, the receiving units whose records it reads
    (None: every unit) and the accused units whose complaints are kept from it (None:
    none)."""

    unit: str
    units: set[str] | None
    withheld: set[str] | None


def sight(session: Session, principal: Principal) -> Sight:
    """Return what the caller may read (the directory copy is read once, for a supervisor)."""
    if principal.has("admin"):
        return Sight(principal.unit, None, None)
    if principal.has("supervisor"):
        directory = read_directory(session, models.Unit)
        return Sight(
            principal.unit,
            governed_units(directory, principal.unit),
            unit_and_above(directory, principal.unit),
        )
    # A desk or a partner reads the cases its own unit received, even one about itself.
    return Sight(principal.unit, {principal.unit}, None)


def visible_units(session: Session, principal: Principal) -> set[str] | None:
    """Return the receiving units whose records the caller may read (None: all of them)."""
    return sight(session, principal).units


def ensure_can_read(session: Session, principal: Principal, unit: str) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    units = visible_units(session, principal)
    if units is None or unit in units:
        return
    abort(404, message="no such record for your unit")


def kept_from(seen: Sight, case: models.Case) -> bool:
    """Return True if the case is a complaint kept from the caller (see the module)."""
    return (
        seen.withheld is not None
        and case.accused_unit in seen.withheld
        and seen.unit not in (case.unit, case.responsible_unit)
    )


def case_conditions(seen: Sight) -> list[ColumnElement[bool]]:
    """Return the SQL conditions of the cases the caller may list."""
    case = models.Case
    conditions: list[ColumnElement[bool]] = []
    if seen.units is not None:
        conditions.append(case.unit.in_(sorted(seen.units)))
    if seen.withheld is not None:
        conditions.append(
            or_(
                case.accused_unit.is_(None),
                case.accused_unit.not_in(sorted(seen.withheld)),
                case.unit == seen.unit,
                case.responsible_unit == seen.unit,
            )
        )
    return conditions or [true()]


def ensure_can_read_case(session: Session, principal: Principal, case: models.Case) -> None:
    """Refuse with the same 404 as an unknown case what the caller may not read."""
    seen = sight(session, principal)
    if (seen.units is not None and case.unit not in seen.units) or kept_from(seen, case):
        abort(404, message="no such case")


def ensure_can_read_visit(session: Session, principal: Principal, visit: models.Visit) -> None:
    """Refuse with the same 404 as an unknown visit what the caller may not read."""
    seen = sight(session, principal)
    if seen.units is not None and visit.unit not in seen.units:
        abort(404, message="no such visit")
    if seen.withheld is None or visit.unit == seen.unit:
        return  # nothing kept from the caller, or the desk that received the visitor
    if any(kept_from(seen, c) for c in visit.cases):
        abort(404, message="no such visit")
    numbers = list(visit.follow_ups or [])
    earlier = sorted({c.repeat_of for c in visit.cases if c.repeat_of})
    if not (numbers or earlier):
        return
    linked = session.scalars(
        select(models.Case).where(
            models.Case.accused_unit.in_(sorted(seen.withheld)),
            or_(models.Case.case_number.in_(numbers), models.Case.id.in_(earlier)),
        )
    )
    if any(kept_from(seen, c) for c in linked):
        abort(404, message="no such visit")
