"""``/v1/stats``: the figures the city reports, for any period and grouping, in JSON or CSV.

Every figure is counted in SQL over the period's receptions, grouped by the receiving
unit, the category, the month (on the programme's calendar, ``NIGHTTALK_TIMEZONE``) or
the channel:

- batches (批次), person-visits (人次) and follow-up visits (a batch coming back about a
  case already registered) from intake's ``visit.registered``;
- issues raised and everything about them from the cases received in the period;
- the visitors' answers (回访) given in the period, every one (``feedback_answers``), grouped
  by their case's receiving unit, category and channel, and by the month they were given;
- rows add up to the totals exactly (a batch has no category: by category, batches and
  person-visits are reported in the totals only).

Definitions where the source is silent: *resolved* = resolved on the spot, resolved by the
unit, or closed after resolution; *resolved on time* = resolved by the unit by its due
date; *overdue open* = not resolved and due before the end of the period (before now, for
a period not yet ended); *escalated by
level* = cases that reached a level of listed supervision (1, 2) or got a named supervisor
(major); *repeat visits* = issues registered as a repeat of an open case of the same
visitor and category; *satisfaction rate* = satisfied answers / answers given in the
period (a case answered unsatisfied, then satisfied, counts two answers); *first-contact
resolution rate* = issues resolved on the spot / issues raised.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE
from sqlalchemy import DateTime, and_, case, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from servicekit.auth import current_principal, require
from servicekit.localtime import local_zone
from supervision import access, models, usecases
from supervision.schemas import StatsQuery

blp = Blueprint(
    "stats",
    __name__,
    url_prefix="/v1/stats",
    description="Statistics (统计): batches, person-visits, issues and how they were handled.",
)

COUNTS = (
    "batches",
    "person_visits",
    "follow_up_visits",
    "issues",
    "resolved",
    "resolved_on_spot",
    "resolved_on_time",
    "overdue_open",
    "escalated_level_1",
    "escalated_level_2",
    "escalated_major",
    "repeat_visits",
    "feedback_answers",
    "satisfied",
)
RATES = ("satisfaction_rate", "first_contact_resolution_rate")
COLUMNS = ("group", *COUNTS, *RATES)


def _month_starts(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Return the first instant of each local month that ``[start, end)`` touches.

    Local: on the programme's calendar (``NIGHTTALK_TIMEZONE``), read once per query.
    """
    zone = local_zone()
    local = start.astimezone(zone)
    month = dt.datetime(local.year, local.month, 1, tzinfo=zone)
    starts = []
    while month < end:
        starts.append(month)
        # A wall time: each month starts at its own midnight, whatever the clocks did.
        month = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
    return starts


def _month(session: Session, column, start: dt.datetime, end: dt.datetime):
    """Return the SQL of a timestamp's month on the programme's calendar, and its labels.

    The month is found among the period's month starts, computed here on the programme's
    calendar, so that it follows the zone's changes of the clocks (SQLite's and a fixed
    offset cannot). On PostgreSQL it is the bucket the timestamp falls in (``width_bucket``,
    a binary search): converting every row to the local calendar and formatting it cost as
    much as the rest of a year's statistics together. On SQLite it is a CASE over the
    month starts (the rows are within the period already).
    """
    local_starts = _month_starts(start, end)
    labels = [month.strftime("%Y-%m") for month in local_starts]
    starts = [month.astimezone(dt.UTC) for month in local_starts]
    if session.get_bind().dialect.name == "postgresql":
        boundaries = literal(starts, ARRAY(DateTime(timezone=True)))
        return func.width_bucket(column, boundaries), dict(enumerate(labels, start=1)).get
    reached = [(column >= month, label) for month, label in zip(starts, labels, strict=True)]
    if not reached:
        return literal(None), None  # an empty period: no row to group
    # A row's month is the last one whose start it has reached: the latest is tried first.
    return case(*reversed(reached)), None


def _key(session: Session, by: str, *, unit, category, channel, received_at, start, end):
    """Return the SQL of the grouping key, and what turns its values into labels (or None).

    ``received_at`` is the instant whose month groups a row: a reception's, an answer's.
    """
    if by == "unit":
        return unit, None
    if by == "category":
        return category, None
    if by == "channel":
        return channel, None
    return _month(session, received_at, start, end)


def compute(
    session: Session,
    *,
    start: dt.datetime,
    end: dt.datetime,
    by: str,
    units: set[str] | None,
    category: str | None = None,
) -> dict[str, Any]:
    """Return the figures of the receptions in ``[start, end)``, grouped ``by``."""
    visit, c = models.VisitRecord, models.SupervisedCase
    rows: dict[Any, dict[str, int]] = {}

    def add(key, figure: str, value) -> None:
        row = rows.setdefault(key, dict.fromkeys(COUNTS, 0))
        row[figure] += int(value or 0)

    totals = dict.fromkeys(COUNTS, 0)
    # Batches and person-visits: intake's visits of the period.
    visit_conditions = [visit.received_at >= start, visit.received_at < end]
    if units is not None:
        visit_conditions.append(visit.unit.in_(units))
    if category is None:
        visit_key, visit_label = (
            (None, None)
            if by == "category"
            else _key(
                session,
                by,
                unit=visit.unit,
                category=None,
                channel=visit.channel,
                received_at=visit.received_at,
                start=start,
                end=end,
            )
        )
        columns = [
            func.count(),
            func.coalesce(func.sum(visit.headcount), 0),
            func.coalesce(func.sum(visit.follow_ups), 0),
        ]
        stmt = select(*([visit_key] if visit_key is not None else []), *columns).where(
            *visit_conditions
        )
        if visit_key is not None:
            stmt = stmt.group_by(visit_key)
        for result in session.execute(stmt):
            *key, batches, people, follow_ups = result
            totals["batches"] += batches
            totals["person_visits"] += people
            totals["follow_up_visits"] += follow_ups
            if visit_key is not None:
                group = visit_label(key[0]) if visit_label else key[0]
                add(group, "batches", batches)
                add(group, "person_visits", people)
                add(group, "follow_up_visits", follow_ups)

    # Issues: the cases intake registered in the period.
    conditions = [c.registered.is_(True), c.received_at >= start, c.received_at < end]
    if units is not None:
        conditions.append(c.receiving_unit.in_(units))
    if category is not None:
        conditions.append(c.category == category)
    key, label = _key(
        session,
        by,
        unit=c.receiving_unit,
        category=c.category,
        channel=c.channel,
        received_at=c.received_at,
        start=start,
        end=end,
    )
    resolved = c.status.in_(models.RESOLVED_STATES)
    by_unit = c.status.in_((models.RESOLVED, models.CLOSED))

    def count_if(condition):
        return func.sum(case((condition, 1), else_=0))

    figures = {
        "issues": func.count(),
        "resolved": count_if(resolved),
        # Answered on the spot and standing: closed after a satisfied visitor included.
        "resolved_on_spot": count_if(and_(resolved, c.answered_on_spot.is_(True))),
        "resolved_on_time": count_if(
            and_(
                by_unit,
                c.resolved_at.is_not(None),
                c.due_at.is_not(None),
                c.resolved_at <= c.due_at,
            )
        ),
        # Due before the period ended, or before now while it runs: a case due later this
        # month is not overdue yet.
        "overdue_open": count_if(
            and_(
                c.status.in_(models.UNRESOLVED),
                c.due_at.is_not(None),
                c.due_at < min(end, usecases.now()),
            )
        ),
        # Listed for supervision at each level, on any clock (ladder.py notes when).
        "escalated_level_1": count_if(c.escalated_level_1_at.is_not(None)),
        "escalated_level_2": count_if(c.escalated_level_2_at.is_not(None)),
        "escalated_major": count_if(c.major_since.is_not(None)),
        "repeat_visits": count_if(c.repeat_of.is_not(None)),
    }
    for result in session.execute(select(key, *figures.values()).where(*conditions).group_by(key)):
        group, *values = result
        group = label(group) if label else group
        for figure, value in zip(figures, values, strict=True):
            add(group, figure, value)
            totals[figure] += int(value or 0)

    # The visitors' answers given in the period, every one: by index on answered_at.
    answer = models.FeedbackAnswer
    answer_conditions = [answer.answered_at >= start, answer.answered_at < end]
    if units is not None:
        answer_conditions.append(answer.receiving_unit.in_(units))
    if category is not None:
        answer_conditions.append(answer.category == category)
    answer_key, answer_label = _key(
        session,
        by,
        unit=answer.receiving_unit,
        category=answer.category,
        channel=answer.channel,
        received_at=answer.answered_at,
        start=start,
        end=end,
    )
    answers = {"feedback_answers": func.count(), "satisfied": count_if(answer.satisfied.is_(True))}
    for result in session.execute(
        select(answer_key, *answers.values()).where(*answer_conditions).group_by(answer_key)
    ):
        group, *values = result
        group = answer_label(group) if answer_label else group
        for figure, value in zip(answers, values, strict=True):
            add(group, figure, value)
            totals[figure] += int(value or 0)

    if category is not None:
        # A batch has no category: within one category, batches cannot be counted.
        totals["batches"] = totals["person_visits"] = totals["follow_up_visits"] = None
    ordered = sorted(rows.items(), key=lambda item: (item[0] is None, str(item[0])))
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "by": by,
        "rows": [{"group": group, **figures, **_rates(figures)} for group, figures in ordered],
        "totals": {**totals, **_rates(totals)},
    }


def _rates(figures: dict[str, int]) -> dict[str, float | None]:
    """Return the rates of a row of counts (None where nothing was there to count)."""
    return {
        "satisfaction_rate": (
            round(figures["satisfied"] / figures["feedback_answers"], 4)
            if figures["feedback_answers"]
            else None
        ),
        "first_contact_resolution_rate": (
            round(figures["resolved_on_spot"] / figures["issues"], 4) if figures["issues"] else None
        ),
    }


def as_csv(report: dict[str, Any]) -> str:
    """Return the report as CSV: one line per group, then the totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in report["rows"]:
        writer.writerow([_cell(row.get(col)) for col in COLUMNS])
    writer.writerow(["total", *(_cell(report["totals"][col]) for col in COLUMNS[1:])])
    return out.getvalue()


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting like a formula is quoted so a spreadsheet never runs it.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@blp.route("")
class Stats(MethodView):
    @require()
    @blp.arguments(StatsQuery(), location="query", unknown=RAISE)
    @blp.alt_response(200, description="The figures, as JSON or (Accept: text/csv) CSV.")
    @blp.alt_response(401, description="No valid bearer token.")
    @blp.alt_response(403, description="Another unit's statistics.")
    def get(self, query):
        """Count the period's batches, person-visits and issues, grouped ``by``.

        ``from`` and ``to`` are days on the programme's calendar, both included. An admin sees
        every unit, a supervisor its jurisdiction, a reception desk or partner its own unit.
        CSV with ``Accept: text/csv`` or ``format=csv``.
        """
        principal = current_principal()
        zone = local_zone()
        start = dt.datetime.combine(query["from_"], dt.time(), tzinfo=zone)
        end = dt.datetime.combine(query["to"] + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        with current_app.extensions["runtime"].reading() as session:
            if principal.has("admin", "supervisor"):
                units = access.jurisdiction(session, principal)
            else:
                units = {principal.unit}
            if query.get("unit"):
                if units is not None and query["unit"] not in units:
                    abort(
                        403,
                        message="that unit's statistics are not yours to read",
                        errors={"query": {"unit": ["outside your jurisdiction"]}},
                    )
                wanted = access.subtree(session, query["unit"])
                units = wanted if units is None else units & wanted
            report = compute(
                session,
                start=start.astimezone(dt.UTC),
                end=end.astimezone(dt.UTC),
                by=query["by"],
                units=units,
                category=query.get("category"),
            )
        wants_csv = query.get("format") == "csv" or (
            query.get("format") is None
            and request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
        )
        if wants_csv:
            return Response(
                as_csv(report),
                mimetype="text/csv",
                headers={"Content-Disposition": 'attachment; filename="nighttalk-stats.csv"'},
            )
        return jsonify(report)
