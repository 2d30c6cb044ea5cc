"""Who may read what in intake: a unit its own, a supervisor its jurisdiction, an admin all.

A supervisor's jurisdiction is the area its unit governs (``servicekit.jurisdiction``: a
city department the whole city, a county's departments that county, a township itself),
read from intake's copy of routing's directory (``unit.changed`` events).
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy.orm import Session

from intake import models
from servicekit.auth import Principal
from servicekit.jurisdiction import governed_units, read_directory


def visible_units(session: Session, principal: Principal) -> set[str] | None:
    """Return the receiving units whose records the caller may read (None: all of them)."""
    if principal.has("admin"):
        return None
    if principal.has("supervisor"):
        return governed_units(read_directory(session, models.Unit), principal.unit)
    return {principal.unit}


def ensure_can_read(session: Session, principal: Principal, unit: str) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    units = visible_units(session, principal)
    if units is None or unit in units:
        return
    abort(404, message="no such record for your unit")
