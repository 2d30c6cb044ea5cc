"""Who may read which supervised case: a unit its own cases, a supervisor its jurisdiction.

A supervisor's jurisdiction is the area its unit governs (``servicekit.jurisdiction``: a
city department the whole city, a county's departments that county, a township itself),
read from supervision's copy of routing's unit directory; an admin sees every case.
Reception desks follow the cases they received, partners those they must resolve.
"""

from __future__ import annotations

from flask_smorest import abort
from sqlalchemy import and_, not_, or_, true
from sqlalchemy.orm import Session

from servicekit import jurisdiction as areas
from servicekit.auth import Principal
from servicekit.db import one_of
from supervision import models

# The organisation department (组织部): the only unit whose supervisors read the cadre feed.
ORGANISATION_DEPARTMENT = "city-org"


def _directory(session: Session) -> areas.Directory:
    """Return the directory copy, read once per session (a request asks for its
    jurisdiction and a unit's subtree: one read serves both)."""
    if "directory" not in session.info:
        session.info["directory"] = areas.read_directory(session, models.Unit)
    return session.info["directory"]


def subtree(session: Session, unit: str) -> set[str]:
    """Return the unit and every unit below it in the directory."""
    return areas.subtree(_directory(session), unit)


def jurisdiction(session: Session, principal: Principal) -> set[str] | None:
    """Return the units whose cases the caller supervises; None means every unit."""
    if principal.has("admin"):
        return None
    return areas.governed_units(_directory(session), principal.unit)


def accused_above(session: Session, principal: Principal) -> set[str] | None:
    """Return the units whose complaints are kept from the caller; None for an admin.

    A complaint is never handed to the unit it accuses nor to a unit below it (routing's
    rule, DESIGN: "or that unit's own sub-units"), so it is kept from the caller's unit
    and from every unit above it in the directory: the accused may govern the county the
    case is supervised in, but it does not read, list or act on a complaint about itself.
    """
    if principal.has("admin"):
        return None
    return areas.unit_and_above(_directory(session), principal.unit)


def accuses(case: models.SupervisedCase, principal: Principal, withheld: set[str] | None) -> bool:
    """Return True if the case accuses one of the ``withheld`` units, and is not the
    caller's own to resolve (routing's last resort sends a complaint about the city itself
    to the discipline commission, a unit below it)."""
    return (
        withheld is not None
        and case.accused_unit in withheld
        and case.responsible_unit != principal.unit
    )


def in_units(
    session: Session, units: set[str] | None, *, withheld: set[str] | None, own: str | None
):
    """Return the SQL condition of a case the given units are responsible for (or received),
    that accuses none of the ``withheld`` units (:func:`accused_above`) unless ``own`` unit
    must resolve it.

    ``units`` None means every unit. One array parameter each on PostgreSQL
    (``servicekit.db.one_of``): the board's statements read the same whatever the
    supervisor's jurisdiction.
    """
    case = models.SupervisedCase
    conditions = []
    if units is not None:
        conditions.append(
            or_(
                one_of(session, case.responsible_unit, units),
                and_(case.responsible_unit.is_(None), one_of(session, case.receiving_unit, units)),
            )
        )
    if withheld is not None:
        conditions.append(
            or_(
                case.accused_unit.is_(None),
                not_(one_of(session, case.accused_unit, withheld)),
                case.responsible_unit == own,
            )
        )
    return and_(true(), *conditions)


def can_read(session: Session, principal: Principal, case: models.SupervisedCase) -> bool:
    """Return True if the caller may read the case and its timeline."""
    if principal.has("admin"):
        return True
    # A reception desk follows the cases it received (even one about itself: it took the
    # complaint and knows the visitor), a partner those it must resolve.
    if principal.unit in (case.receiving_unit, case.responsible_unit):
        return True
    if accuses(case, principal, accused_above(session, principal)):
        return False
    if principal.has("supervisor"):
        units = jurisdiction(session, principal)
        return units is None or (case.responsible_unit or case.receiving_unit) in units
    return False


def ensure_can_read(session: Session, principal: Principal, case: models.SupervisedCase) -> None:
    """Refuse with the same 404 as an unknown case, so other units' case numbers leak nothing."""
    if not can_read(session, principal, case):
        abort(404, message="no such case")


def ensure_supervises(session: Session, principal: Principal, case: models.SupervisedCase) -> None:
    """Refuse (404, as for an unknown case) a case outside the supervisor's jurisdiction."""
    units = jurisdiction(session, principal)
    if units is not None and (case.responsible_unit or case.receiving_unit) not in units:
        abort(404, message="no such case")
    if accuses(case, principal, accused_above(session, principal)):
        abort(404, message="no such case")  # a complaint about the caller's own unit


def ensure_not_its_own_assessment(principal: Principal, case: models.SupervisedCase) -> None:
    """Refuse (403) the unit responsible for the case an act that assesses it.

    The unit under assessment does not grade itself: its supervisor records no visitor's
    feedback on its own case nor a joint meeting's decision on it (an extension of its own
    deadline). An admin may; so may the desk that received the visitor, which records the
    visitor's word (``cases.CaseFeedback``). A case answered on the spot was answered by the
    unit that received it: that unit answers for it.
    """
    answered_by = case.responsible_unit
    if answered_by is None and case.status == models.RESOLVED_ON_SPOT:
        answered_by = case.receiving_unit
    if not principal.has("admin") and principal.unit == answered_by:
        abort(403, message="the unit responsible for a case does not assess it itself")
