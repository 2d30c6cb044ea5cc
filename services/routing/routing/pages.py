"""Cut a query into pages: ``page`` and ``page_size`` (at most 100), with the total."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def paginate(session: Session, query: Select, *, page: int, page_size: int) -> dict[str, Any]:
    """Return one page of a query's rows and the number of rows in all pages."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = session.scalars(query.limit(page_size).offset((page - 1) * page_size)).all()
    return {"items": items, "page": page, "page_size": page_size, "total": total}
