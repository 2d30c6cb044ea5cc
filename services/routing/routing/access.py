"""Who may read which assignments: a partner its own unit's, a supervisor its jurisdiction.

A supervisor's jurisdiction is the area its unit governs (``servicekit.jurisdiction``, as
in the other services): a city-level unit the whole city, a county's government or
departments that county's units, a township itself and the units below it. Admins see
all. A token naming a unit routing does not know governs its own unit only.

A complaint is never shown to the unit it accuses nor to a unit below it, whatever their
jurisdiction: routing keeps it from them as handlers (``rules.apply_confidentiality``),
and the same rule keeps it from their supervisors, who would otherwise read, arbitrate or
decide the extensions of a complaint about themselves. The one exception is an
assignment handed to the caller's own unit (the discipline commission taking a complaint
about the city itself, every unit being below the city).
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select, or_
from sqlalchemy.orm import Session, object_session

from routing import models
from servicekit.jurisdiction import governed_units, read_directory, unit_and_above


def visible_assignments(session: Session, principal, query: Select) -> Select:
    """Narrow an assignment query to what the caller may see."""
    if principal.has("admin"):
        return query
    if not principal.has("supervisor"):
        return query.where(models.Assignment.unit == principal.unit)
    directory = read_directory(session, models.Unit)
    units = governed_units(directory, principal.unit)
    if units is not None:
        query = query.where(models.Assignment.unit.in_(sorted(units)))
    withheld = unit_and_above(directory, principal.unit)
    return query.where(
        or_(
            models.Assignment.accused_unit.is_(None),
            models.Assignment.accused_unit.not_in(sorted(withheld)),
            models.Assignment.unit == principal.unit,
        )
    )


def ensure_can_read(principal, assignment: models.Assignment) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    if principal.has("admin") or assignment.unit == principal.unit:
        return
    session = object_session(assignment)
    if principal.has("supervisor") and session is not None:
        directory = read_directory(session, models.Unit)
        accused = assignment.accused_unit
        if accused is not None and accused in unit_and_above(directory, principal.unit):
            abort(404, message="no such assignment for your unit")
        units = governed_units(directory, principal.unit)
        if units is None or assignment.unit in units:
            return
    abort(404, message="no such assignment for your unit")
