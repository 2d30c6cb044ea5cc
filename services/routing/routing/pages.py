"""Cut a query into pages: ``page`` and ``page_size`` (at most 100), with the total."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from servicekit.pages import count_up_to


def paginate(session: Session, query: Select, *, page: int, page_size: int) -> dict[str, Any]:
    """Return one page of a query's rows and how many rows all pages hold (up to a cap)."""
    total, exact = count_up_to(session, query)
    items = session.scalars(query.limit(page_size).offset((page - 1) * page_size)).all()
    return {
        "items": items,
        "page": page,
        "page_size": page_size,
        "total": total,
        "total_exact": exact,
    }
