"""``/v1/ladder``: the escalation ladder's steps, kept as data and changed by admins."""

from __future__ import annotations

import datetime as dt

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from servicekit.auth import require
from supervision import models
from supervision.schemas import STEP_NAME, LadderOut, LadderStepIn, LadderStepOut, NoQuery

blp = Blueprint(
    "ladder",
    __name__,
    url_prefix="/v1/ladder",
    description="The escalation ladder (督办阶梯): when each step comes due and what it does.",
)


# What a step publishes. A clock's timers keep only when each step comes due, and past
# firings name their step: changing this under the step's name would have clocks started
# under the old ladder publish the new step's level or supervisor, and past agendas read
# old firings at the new level.
MEANING = ("event", "level", "supervised_by")


def _in_use(session, step: str) -> bool:
    """Return whether a running clock waits on the step or a clock ever fired it."""
    return any(
        session.scalar(select(exists().where(model.step == step)))
        for model in (models.ClockTimer, models.LadderFiring)
    )


@blp.route("")
class Ladder(MethodView):
    @require("supervisor", "admin")
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.response(200, LadderOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only supervisors and admins read the ladder.")
    def get(self, _query):
        """Read the ladder's steps in order (inactive ones too)."""
        with current_app.extensions["runtime"].reading() as session:
            steps = session.scalars(
                select(models.LadderStep).order_by(models.LadderStep.position)
            ).all()
            return {"steps": steps}


@blp.route("/<step>")
class LadderStep(MethodView):
    @require("admin")
    @blp.arguments(NoQuery(), location="query", unknown=RAISE)
    @blp.arguments(LadderStepIn())
    @blp.response(200, LadderStepOut)
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Only admins change the ladder.")
    @blp.alt_response(404, description="Not a step name.")
    @blp.alt_response(
        409,
        description="Another step holds that position, or the step is in use and the change"
        " would alter what it publishes.",
    )
    def put(self, _query, data, step: str):
        """Create or replace a ladder step; it governs clocks started or moved from now on.

        Turn a step off with ``active: false`` (steps are never deleted: the firings of
        past clocks name them). When a step comes due may change at any time; what it
        publishes (event, level, supervisor) only while no clock waits on it or fired it.
        """
        try:
            STEP_NAME(step)
        except Exception:  # noqa: BLE001 - any refusal of the slug is an unknown step
            abort(404, message="not a step name: lowercase letters, digits and dashes")
        with current_app.extensions["runtime"].sessions() as session:
            row = session.get(models.LadderStep, step, with_for_update=True)
            if row is None:
                row = models.LadderStep(step=step)
                session.add(row)
            else:
                changed = [key for key in MEANING if getattr(row, key) != data.get(key)]
                if changed and _in_use(session, step):
                    abort(
                        409,
                        message=(
                            f"step {step} is on running clocks or has fired: what it publishes"
                            " cannot change under its name; add a step under a new name and"
                            " turn this one off (active: false)"
                        ),
                        errors={"json": dict.fromkeys(changed, ["fixed while the step is in use"])},
                    )
            for key in (
                "position",
                "event",
                "level",
                "percent_of_term",
                "months_after_due",
                "days_after_due",
                "supervised_by",
                "active",
            ):
                setattr(row, key, data.get(key))
            row.updated_at = dt.datetime.now(dt.UTC)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                abort(
                    409,
                    message="another step holds that position",
                    errors={"json": {"position": ["taken by another step"]}},
                )
            return row
