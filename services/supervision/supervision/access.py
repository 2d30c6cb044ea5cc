"""Who may read which supervised case."""

from __future__ import annotations

from flask_smorest import abort

from servicekit.auth import Principal
from supervision.models import SupervisedCase

# Supervisors will see their jurisdiction (their unit's area) once supervision keeps a
# copy of routing's unit directory; until then they see every case, as admins do.
SEE_EVERY_CASE = ("supervisor", "admin")


def can_read(principal: Principal, case: SupervisedCase) -> bool:
    """Return True if the caller may read the case and its timeline."""
    if principal.has(*SEE_EVERY_CASE):
        return True
    # A reception desk follows the cases it received, a partner those it must resolve.
    return principal.unit in (case.receiving_unit, case.responsible_unit)


def ensure_can_read(principal: Principal, case: SupervisedCase) -> None:
    """Refuse with the same 404 as an unknown case, so other units' case numbers leak nothing."""
    if not can_read(principal, case):
        abort(404, message="no such case")
