"""Who may read which notifications.

Admins and supervisors read every notification. A reception desk reads those of
the cases its unit received; for other cases it gets an empty list (by case
number) or 404 (by id), so it cannot even learn that they exist. Partners get 403:
notifications to visitors are none of their business.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select

from notify import models
from servicekit.auth import Principal

READERS = ("reception", "supervisor", "admin")


def sees_all(principal: Principal) -> bool:
    """Return True for callers who read every unit's notifications."""
    return principal.has("admin", "supervisor")


def visible(query: Select, principal: Principal) -> Select:
    """Narrow a query on notifications to what the caller may read."""
    if sees_all(principal):
        return query
    return query.where(models.Notification.unit == principal.unit)


def ensure_can_read(principal: Principal, notification: models.Notification) -> None:
    """Refuse with 404 a notification the caller may not see."""
    if sees_all(principal) or notification.unit == principal.unit:
        return
    abort(404, message="no such notification")
