"""Shape intake's records for responses."""

from __future__ import annotations

from typing import Any

from intake import events, models


def case_view(case: models.Case) -> dict[str, Any]:
    """Return a case as the API shows it (the event payload minus the visitor pseudonym)."""
    data = events.case_data(case)
    data.pop("visitor_ref", None)
    data["id"] = data.pop("case_id")
    data.update(
        # A repeat (重复来访): linked to an earlier open case of the same visitor, and how
        # many later visits came back about this one (explicit follow-ups and repeats).
        repeat=case.repeat_of is not None,
        repeat_count=case.repeat_count or 0,
        responsible_unit=case.responsible_unit,
        routed_at=events.iso(case.routed_at),
        resolved_at=events.iso(case.resolved_at),
        closed_at=events.iso(case.closed_at),
        reopened_at=events.iso(case.reopened_at),
    )
    return data
