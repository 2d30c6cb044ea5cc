"""``/v1/cadre``: complaints per accused official and unit, for the cadre assessment (干部考核).

Only the organisation department (组织部) reads it: a supervisor of its unit, or an admin.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import case, exists, func, or_, select

from servicekit.auth import current_principal, require
from servicekit.localtime import local_zone
from supervision import access, models
from supervision.schemas import CadreOut, CadreQuery

blp = Blueprint(
    "cadre",
    __name__,
    url_prefix="/v1/cadre",
    description="The cadre assessment feed: complaints per accused official and unit.",
)


@blp.route("")
class CadreFeed(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(CadreQuery(), location="query", unknown=RAISE)
    @blp.response(200, CadreOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only the organisation department reads this feed.")
    def get(self, query):
        """Count the complaints received in a period per accused unit and official.

        ``from`` and ``to`` are days on the programme's calendar, both included; ``unit``
        narrows to an accused unit's subtree. Most complained-about first.
        """
        principal = current_principal()
        if not principal.has("admin") and principal.unit != access.ORGANISATION_DEPARTMENT:
            abort(403, message="only the organisation department reads the cadre feed")
        zone = local_zone()
        start = dt.datetime.combine(query["from_"], dt.time(), tzinfo=zone)
        end = dt.datetime.combine(query["to"] + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        c = models.SupervisedCase
        conditions = [
            c.registered.is_(True),
            # A complaint may name an official without a unit (intake takes either).
            or_(c.accused_unit.is_not(None), c.accused_person.is_not(None)),
            c.received_at >= start,
            c.received_at < end,
        ]
        with current_app.extensions["runtime"].reading() as session:
            if query.get("unit"):
                conditions.append(c.accused_unit.in_(access.subtree(session, query["unit"])))
            complaints = func.count().label("complaints")
            firing, step = models.LadderFiring, models.LadderStep
            escalated = exists().where(
                firing.case_id == c.case_id, firing.step == step.step, step.event == "escalated"
            )
            grouped = (
                select(
                    c.accused_unit,
                    c.accused_person,
                    complaints,
                    func.sum(
                        case(
                            (
                                c.status.in_(
                                    (models.RESOLVED_ON_SPOT, models.RESOLVED, models.CLOSED)
                                ),
                                1,
                            ),
                            else_=0,
                        )
                    ).label("resolved"),
                    func.sum(case((c.status.in_(models.UNRESOLVED), 1), else_=0)).label("open"),
                    func.sum(case((or_(escalated, c.major_since.is_not(None)), 1), else_=0)).label(
                        "escalated"
                    ),
                )
                .where(*conditions)
                .group_by(c.accused_unit, c.accused_person)
            )
            total = session.scalar(select(func.count()).select_from(grouped.subquery()))
            page, size = query["page"], query["page_size"]
            rows = session.execute(
                grouped.order_by(
                    complaints.desc(),
                    c.accused_unit.is_(None),
                    c.accused_unit,
                    c.accused_person.is_(None),
                    c.accused_person,
                )
                .offset((page - 1) * size)
                .limit(size)
            ).all()
        return {
            "rows": [
                {
                    "accused_unit": r.accused_unit,
                    "accused_person": r.accused_person,
                    "complaints": r.complaints,
                    "resolved": int(r.resolved or 0),
                    "open": int(r.open or 0),
                    "escalated": int(r.escalated or 0),
                }
                for r in rows
            ],
            "page": page,
            "page_size": size,
            "total": total,
        }
