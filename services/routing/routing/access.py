"""Who may read which assignments: a partner its own unit's, a supervisor its jurisdiction.

A supervisor's jurisdiction is the area its unit governs: a city-level unit the whole
city, a county's government or departments that county's units. Admins see all. A
token naming a unit routing does not know governs nothing.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import object_session

from routing import models
from routing.models import CITY_AREA


def _supervisor_area(principal):
    return select(models.Unit.area).where(models.Unit.code == principal.unit).scalar_subquery()


def visible_assignments(principal, query: Select) -> Select:
    """Narrow an assignment query to what the caller may see."""
    if principal.has("admin"):
        return query
    if principal.has("supervisor"):
        area = _supervisor_area(principal)
        in_area = select(models.Unit.code).where(models.Unit.area == area)
        return query.where(
            or_(
                area == CITY_AREA,
                models.Assignment.unit.in_(in_area),
                models.Assignment.unit == principal.unit,
            )
        )
    return query.where(models.Assignment.unit == principal.unit)


def ensure_can_read(principal, assignment: models.Assignment) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    if principal.has("admin") or assignment.unit == principal.unit:
        return
    if principal.has("supervisor"):
        session = object_session(assignment)
        query = visible_assignments(
            principal, select(models.Assignment.id).where(models.Assignment.id == assignment.id)
        )
        if session.scalar(query) is not None:
            return
    abort(404, message="no such assignment for your unit")
