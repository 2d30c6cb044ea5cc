"""Who may read what in intake: a unit its own, an admin everything."""

from __future__ import annotations

from flask_smorest import abort

from servicekit.auth import Principal


def ensure_can_read(principal: Principal, unit: str) -> None:
    """Refuse with 404 what the caller may not see (so ids of other units leak nothing)."""
    if principal.has("admin"):
        return
    # Supervisors' jurisdictions (a unit's subtree) arrive with the directory events of
    # routing; until intake keeps that copy, a supervisor reads its own unit's records.
    if principal.unit == unit:
        return
    abort(404, message="no such record for your unit")
