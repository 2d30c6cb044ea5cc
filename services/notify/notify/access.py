"""Who may read which notifications.

Admins read every notification; a supervisor those of its jurisdiction: the cases
received in the area its unit governs (``servicekit.jurisdiction``: a city department the
whole city, a county's departments that county, a township itself), by notify's copy of
routing's directory (``unit_contacts``, from ``unit.changed``). A reception desk reads
those of the cases its unit received; for other cases it gets an empty list (by case
number) or 404 (by id), so it cannot even learn that they exist. Partners get 403:
notifications to visitors are none of their business.

A complaint is kept from the unit it accuses and from the units below it, whatever their
jurisdiction, as routing and supervision keep it (DESIGN: never the accused unit "or that
unit's own sub-units"): its notifications name the visitor, its letter in full. The desk
that received it still reads them (it took the complaint and knows the visitor), and so
does a unit it was handed to as lead (the discipline commission, below the city, taking a
complaint about the city itself). A complaint whose accused notify has not heard of yet
(``case.routed`` came before ``case.registered``) is kept from every other supervisor
until it has.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import Select, and_, exists, not_, or_, select
from sqlalchemy.orm import Session, object_session

from notify import models
from servicekit import jurisdiction as areas
from servicekit.auth import Principal

READERS = ("reception", "supervisor", "admin")


def _directory(session: Session) -> areas.Directory:
    """Return notify's copy of the directory, read once per session."""
    if "directory" not in session.info:
        session.info["directory"] = areas.read_directory(session, models.UnitContact)
    return session.info["directory"]


def _governed(session: Session, principal: Principal) -> set[str] | None:
    """Return the units the supervisor governs (None: the whole city)."""
    return areas.governed_units(_directory(session), principal.unit)


def _withheld(session: Session, principal: Principal) -> list[str]:
    """Return the units whose complaints are kept from the caller: its own and every unit
    above it (a complaint about one of them accuses the caller's unit or a unit it is in)."""
    return sorted(areas.unit_and_above(_directory(session), principal.unit))


def _kept_from(session: Session, principal: Principal):
    """Return the SQL condition of a notification whose case is kept from the caller."""
    n, secret, assigned = models.Notification, models.ConfidentialCase, models.CaseAssignment
    accuses_caller = exists(
        select(secret.case_id).where(
            secret.case_id == n.case_id,
            or_(
                secret.accused_known.is_(False),
                secret.accused_unit.in_(_withheld(session, principal)),
            ),
        )
    )
    handled_here = exists(
        select(assigned.assignment_id).where(
            assigned.case_id == n.case_id,
            assigned.unit == principal.unit,
            assigned.role == models.LEAD,
        )
    )
    return and_(n.unit != principal.unit, accuses_caller, not_(handled_here))


def visible(session: Session, query: Select, principal: Principal) -> Select:
    """Narrow a query on notifications to what the caller may read."""
    if principal.has("admin"):
        return query
    if principal.has("supervisor"):
        units = _governed(session, principal)
        if units is not None:
            query = query.where(models.Notification.unit.in_(sorted(units)))
        return query.where(not_(_kept_from(session, principal)))
    # A desk reads its own cases, a complaint about itself too.
    return query.where(models.Notification.unit == principal.unit)


def ensure_can_read(principal: Principal, notification: models.Notification) -> None:
    """Refuse with 404 a notification the caller may not see."""
    if principal.has("admin") or notification.unit == principal.unit:
        return
    session = object_session(notification)
    if principal.has("supervisor") and session is not None:
        units = _governed(session, principal)
        governed = units is None or notification.unit in units
        if governed and not _is_kept_from(session, principal, notification):
            return
    abort(404, message="no such notification")


def _is_kept_from(session: Session, principal: Principal, notification) -> bool:
    """Return True if the notification's case is a complaint kept from the caller."""
    n = models.Notification
    kept = session.scalar(
        select(n.id).where(n.id == notification.id, _kept_from(session, principal))
    )
    return kept is not None
