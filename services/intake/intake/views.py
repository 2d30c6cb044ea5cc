"""Shape intake's records for responses."""

from __future__ import annotations

from typing import Any

from intake import events, models


def case_view(case: models.Case) -> dict[str, Any]:
    """Return a case as the API shows it (the event payload minus the visitor pseudonym)."""
    data = events.case_data(case)
    data.pop("visitor_ref", None)
    data["id"] = data.pop("case_id")
    return data
