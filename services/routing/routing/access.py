"""Who may read which assignments: a partner its own unit's, a supervisor its jurisdiction.

A supervisor's jurisdiction is the area its unit governs (``servicekit.jurisdiction``, as
in the other services): a city-level unit the whole city, a county's government or
departments that county's units, a township itself and the units below it. Admins see
all. A token naming a unit routing does not know governs its own unit only.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select
from sqlalchemy.orm import Session, object_session

from routing import models
from servicekit.jurisdiction import governed_units, read_directory


def _governed(session: Session, principal) -> set[str] | None:
    """Return the units the supervisor governs (None: the whole city)."""
    return governed_units(read_directory(session, models.Unit), principal.unit)


def visible_assignments(session: Session, principal, query: Select) -> Select:
    """Narrow an assignment query to what the caller may see."""
    if principal.has("admin"):
        return query
    if principal.has("supervisor"):
        units = _governed(session, principal)
        return query if units is None else query.where(models.Assignment.unit.in_(sorted(units)))
    return query.where(models.Assignment.unit == principal.unit)


def ensure_can_read(principal, assignment: models.Assignment) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    if principal.has("admin") or assignment.unit == principal.unit:
        return
    session = object_session(assignment)
    if principal.has("supervisor") and session is not None:
        units = _governed(session, principal)
        if units is None or assignment.unit in units:
            return
    abort(404, message="no such assignment for your unit")
