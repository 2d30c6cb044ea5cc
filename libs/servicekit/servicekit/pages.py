"""Count a list's rows for its ``total`` without counting a million of them.

A page of a list costs a few rows; counting every row the caller may see cost an admin's
case list 260 ms at 1,000,000 cases. Nobody pages through ten thousand cases: beyond that a
list says "10,000 or more" (``total`` = :data:`TOTAL_CAP`, ``total_exact`` false) and the
statistics give the exact figures. (The supervision board keeps its counts instead:
supervision/board_counts.py.)
"""

from __future__ import annotations

from marshmallow import Schema, fields
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

TOTAL_CAP = 10_000


def count_up_to(session: Session, rows: Select, cap: int = TOTAL_CAP) -> tuple[int, bool]:
    """Return how many rows a query has, counting at most ``cap``, and whether that is all."""
    counted = session.scalar(
        select(func.count()).select_from(rows.order_by(None).limit(cap + 1).subquery())
    )
    return min(counted, cap), counted <= cap


class CountedPage(Schema):
    """A page of a list: its number, size and how many rows all pages hold."""

    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer(
        metadata={
            "description": f"Rows in all pages, counted up to {TOTAL_CAP:,}: beyond that, "
            f"{TOTAL_CAP:,} with total_exact false."
        }
    )
    total_exact = fields.Boolean(
        metadata={"description": f"False when there are more than {TOTAL_CAP:,} rows."}
    )
