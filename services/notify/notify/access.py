"""Who may read which notifications.

Admins read every notification; a supervisor those of its jurisdiction: the cases
received in the area its unit governs (``servicekit.jurisdiction``: a city department the
whole city, a county's departments that county, a township itself), by notify's copy of
routing's directory (``unit_contacts``, from ``unit.changed``). A reception desk reads
those of the cases its unit received; for other cases it gets an empty list (by case
number) or 404 (by id), so it cannot even learn that they exist. Partners get 403:
notifications to visitors are none of their business.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select
from sqlalchemy.orm import Session, object_session

from notify import models
from servicekit.auth import Principal
from servicekit.jurisdiction import governed_units, read_directory

READERS = ("reception", "supervisor", "admin")


def _governed(session: Session, principal: Principal) -> set[str] | None:
    """Return the units the supervisor governs (None: the whole city)."""
    return governed_units(read_directory(session, models.UnitContact), principal.unit)


def visible(session: Session, query: Select, principal: Principal) -> Select:
    """Narrow a query on notifications to what the caller may read."""
    if principal.has("admin"):
        return query
    if principal.has("supervisor"):
        units = _governed(session, principal)
        return query if units is None else query.where(models.Notification.unit.in_(sorted(units)))
    return query.where(models.Notification.unit == principal.unit)


def ensure_can_read(principal: Principal, notification: models.Notification) -> None:
    """Refuse with 404 a notification the caller may not see."""
    if principal.has("admin") or notification.unit == principal.unit:
        return
    session = object_session(notification)
    if principal.has("supervisor") and session is not None:
        units = _governed(session, principal)
        if units is None or notification.unit in units:
            return
    abort(404, message="no such notification")
