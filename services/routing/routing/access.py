"""Who may read which assignments: a partner its own unit's, supervisors and admins all."""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select

from routing import models
from servicekit.auth import Principal

# Supervisors read everything until their jurisdiction (the area their unit governs)
# is enforced here; the directory's ``area`` is what it will be expressed in.
SEES_ALL = ("admin", "supervisor")


def visible_assignments(principal: Principal, query: Select) -> Select:
    """Narrow an assignment query to what the caller may see."""
    if principal.has(*SEES_ALL):
        return query
    return query.where(models.Assignment.unit == principal.unit)


def ensure_can_read(principal: Principal, assignment: models.Assignment) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    if principal.has(*SEES_ALL) or assignment.unit == principal.unit:
        return
    abort(404, message="no such assignment for your unit")
