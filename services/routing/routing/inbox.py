"""``/v1/inbox``: a unit with no integration reads its new (or accepted) assignments here.

Oldest first with an opaque cursor, so a partner polling it never misses one that
arrives between two pages.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import and_, or_, select

from routing import models
from routing.schemas import InboxOut, InboxQuery
from servicekit.auth import current_principal, require

blp = Blueprint(
    "inbox",
    __name__,
    url_prefix="/v1/inbox",
    description="A partner unit's inbox: its current assignments, oldest first.",
)


def _encode(assignment: models.Assignment) -> str:
    raw = json.dumps([assignment.routed_at.isoformat(), assignment.id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode(cursor: str) -> tuple[dt.datetime, str]:
    """Return the (routed_at, assignment id) a cursor holds; 422 for anything else.

    Only what ``_encode`` could have written passes: a moment within the years the
    database holds once in UTC (a year-1 moment east of Greenwich overflows), and an
    assignment id that is a UUID (PostgreSQL refuses a NUL in a string outright).
    """
    try:
        routed_at, assignment_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        moment = dt.datetime.fromisoformat(routed_at)
        if moment.tzinfo is None or not isinstance(assignment_id, str):
            raise ValueError("bad cursor")
        return moment.astimezone(dt.UTC), str(uuid.UUID(assignment_id))
    except (ValueError, TypeError, OverflowError):
        abort(422, message="invalid cursor", errors={"query": {"cursor": ["invalid cursor"]}})


@blp.route("")
class Inbox(MethodView):
    @require("partner")
    @blp.arguments(InboxQuery(), location="query", unknown=RAISE)
    @blp.response(200, InboxOut)
    @blp.alt_response(403, description="Not a partner.")
    def get(self, args):
        """List your unit's current assignments of a status (default: assigned, 待签收)."""
        unit = current_principal().unit
        query = select(models.Assignment).where(
            models.Assignment.unit == unit,
            models.Assignment.status == args["status"],
            models.Assignment.superseded_by.is_(None),
        )
        if "cursor" in args:
            after, after_id = _decode(args["cursor"])
            query = query.where(
                or_(
                    models.Assignment.routed_at > after,
                    and_(models.Assignment.routed_at == after, models.Assignment.id > after_id),
                )
            )
        query = query.order_by(models.Assignment.routed_at, models.Assignment.id)
        limit = args["limit"]
        with current_app.extensions["runtime"].reading() as session:
            rows = list(session.scalars(query.limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            return {"items": rows, "next_cursor": _encode(rows[-1]) if more else None}
