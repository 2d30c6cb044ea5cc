"""``/v1/board``: the open cases of a jurisdiction by ladder step, the furthest along first."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import bindparam, select

from servicekit.auth import current_principal, require
from supervision import access, board_counts, models
from supervision.schemas import BoardOut, BoardQuery

# The statuses as literals in the SQL, not parameters: the planner then matches them to the
# board's partial index even in a generic plan (psycopg prepares a query it sees often).
UNRESOLVED_LITERALLY = bindparam(
    "unresolved", list(models.UNRESOLVED), expanding=True, literal_execute=True
)

# What a board row shows (``schemas.BoardCaseOut``), read as plain columns: loading whole
# cases through the ORM (some forty columns each, fifty to a page) was a quarter of the
# page query's time at 1,000,000 cases.
_case = models.SupervisedCase
BOARD_COLUMNS = (
    _case.case_id,
    _case.case_number,
    _case.responsible_unit,
    _case.receiving_unit,
    _case.category,
    _case.status,
    _case.received_at,
    _case.due_at,
    _case.ladder_step,
    _case.ladder_position,
    _case.major_supervisor,
)

blp = Blueprint(
    "board",
    __name__,
    url_prefix="/v1/board",
    description="The supervision board (督办看板): what is late, and who owns it.",
)


@blp.route("")
class Board(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(BoardQuery(), location="query", unknown=RAISE)
    @blp.response(200, BoardOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only supervisors and admins read the board.")
    def get(self, query):
        """List unresolved cases by ladder step (furthest first), oldest first within a step.

        A supervisor sees its jurisdiction (its unit and the units below it); an admin
        sees every unit. ``unit`` narrows to a unit's subtree, ``category`` and ``step``
        to one of each. ``levels`` counts the cases at each step for the same filters.
        """
        principal = current_principal()
        case = models.SupervisedCase
        with current_app.extensions["runtime"].reading() as session:
            conditions = [case.status.in_(UNRESOLVED_LITERALLY)]
            units = access.jurisdiction(session, principal)
            if query.get("unit"):
                wanted = access.subtree(session, query["unit"])
                if units is not None and query["unit"] not in units:
                    abort(
                        403,
                        message="that unit is outside your jurisdiction",
                        errors={"query": {"unit": ["outside your jurisdiction"]}},
                    )
                units = wanted if units is None else units & wanted
            # A complaint is kept from the unit it accuses and the units below it.
            withheld = access.accused_above(session, principal)
            conditions.append(
                access.in_units(session, units, withheld=withheld, own=principal.unit)
            )
            if query.get("category"):
                conditions.append(case.category == query["category"])
            # Counted as cases move (board_counts.py), not by reading every open case.
            levels = board_counts.levels(
                session,
                units=units,
                category=query.get("category"),
                withheld=withheld,
                own=principal.unit,
            )
            total = sum(n for _, step, n in levels if query.get("step") in (None, step))
            if query.get("step"):
                conditions.append(case.ladder_step == query["step"])
            page, size = query["page"], query["page_size"]
            items = (
                session.execute(
                    select(*BOARD_COLUMNS)
                    .where(*conditions)
                    .order_by(
                        case.ladder_position.desc(),
                        case.received_at.asc(),
                        case.case_number.asc(),
                    )
                    .offset((page - 1) * size)
                    .limit(size)
                )
                .mappings()
                .all()
            )
            return {
                "levels": [
                    {"position": position, "step": step, "count": count}
                    for position, step, count in levels
                ],
                "items": items,
                "page": page,
                "page_size": size,
                "total": total,
                "total_exact": True,
            }
