"""Who may read which notifications.

Admins read every notification; a supervisor those of its jurisdiction: the cases
received by its unit or a unit below it in notify's copy of routing's directory
(``unit_contacts``, from ``unit.changed``), every unit for a city-level unit, as the
design's "a city department the whole city". A reception desk reads those of the cases
its unit received; for other cases it gets an empty list (by case number) or 404 (by
id), so it cannot even learn that they exist. Partners get 403: notifications to
visitors are none of their business.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select, exists, literal, select
from sqlalchemy.orm import object_session

from notify import models
from servicekit.auth import Principal

READERS = ("reception", "supervisor", "admin")


def _units_governed(principal: Principal):
    """Return a subquery of the supervisor's unit and every unit below it (recursive CTE)."""
    contact = models.UnitContact
    tree = select(literal(principal.unit).label("code")).cte("jurisdiction", recursive=True)
    # UNION (not UNION ALL) drops repeated codes, so a loop in the directory ends.
    tree = tree.union(select(contact.code).where(contact.parent == tree.c.code))
    return select(tree.c.code)


def _city_level(principal: Principal):
    contact = models.UnitContact
    return exists().where(contact.code == principal.unit, contact.level == "city")


def visible(query: Select, principal: Principal) -> Select:
    """Narrow a query on notifications to what the caller may read."""
    if principal.has("admin"):
        return query
    if principal.has("supervisor"):
        return query.where(
            _city_level(principal) | models.Notification.unit.in_(_units_governed(principal))
        )
    return query.where(models.Notification.unit == principal.unit)


def ensure_can_read(principal: Principal, notification: models.Notification) -> None:
    """Refuse with 404 a notification the caller may not see."""
    if principal.has("admin") or notification.unit == principal.unit:
        return
    if principal.has("supervisor"):
        session = object_session(notification)
        query = visible(
            select(models.Notification.id).where(models.Notification.id == notification.id),
            principal,
        )
        if session is not None and session.scalar(query) is not None:
            return
    abort(404, message="no such notification")
