"""Who may read what in intake: a unit its own, a supervisor its jurisdiction, an admin all.

A supervisor's jurisdiction is its unit and every unit below it in routing's
directory (a city department the whole city, a county's departments that county),
read from intake's copy of that directory (``unit.changed`` events).
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake import models
from servicekit.auth import Principal

# Deeper than any real hierarchy (city → county → township → department); stops a
# corrupted directory with a cycle from looping.
MAX_DEPTH = 12


def subtree(session: Session, root: str) -> set[str]:
    """Return a unit and all the units below it in the local directory copy."""
    children: dict[str, list[str]] = {}
    for code, parent in session.execute(select(models.Unit.code, models.Unit.parent)):
        if parent:
            children.setdefault(parent, []).append(code)
    found, frontier = {root}, [root]
    for _ in range(MAX_DEPTH):
        frontier = [c for p in frontier for c in children.get(p, []) if c not in found]
        if not frontier:
            break
        found.update(frontier)
    return found


def visible_units(session: Session, principal: Principal) -> set[str] | None:
    """Return the receiving units whose records the caller may read (None: all of them)."""
    if principal.has("admin"):
        return None
    if principal.has("supervisor"):
        return subtree(session, principal.unit)
    return {principal.unit}


def ensure_can_read(session: Session, principal: Principal, unit: str) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    units = visible_units(session, principal)
    if units is None or unit in units:
        return
    abort(404, message="no such record for your unit")
