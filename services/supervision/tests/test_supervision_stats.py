"""Statistics over a period whose true figures are known, figure by figure, in JSON and CSV.

December 2026 on the city's calendar:

- city-org, night talk, 15 Dec: a batch of 5 raising c1 (routed, resolved on time, the
  visitor satisfied on 19 Dec) and c2 (resolved on the spot); a batch of 2 raising nothing new (a
  follow-up of an older case).
- lw-org, daily reception, 20 Dec: a batch of 1 raising c3 (routed, due 25 Dec, never
  resolved: overdue, listed for the unit leader on 25 Jan, a named supervisor) and c4 (a
  repeat, resolved late, the visitor unsatisfied on 29 Dec: reopened, so overdue again).
- lw-org, letters, 1 Dec 00:30 in the city (30 Nov in UTC): a batch of 3, no issue.
- Outside the period: a batch and its case on 30 Nov, a batch on 1 Jan 00:30 in the city.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
from supervision_samples import (
    ADMIN,
    CST,
    assignment_event,
    bearer,
    case_registered,
    case_resolved_on_spot,
    case_routed,
    consume,
    new_case,
    visit_registered,
)

from supervision import ladder, usecases

DAY_15 = dt.datetime(2026, 12, 15, 20, 0, tzinfo=CST)
DAY_20 = dt.datetime(2026, 12, 20, 10, 0, tzinfo=CST)


def visit(rt, unit: str, channel: str, at: dt.datetime, headcount: int, case_ids, **extra):
    consume(
        rt,
        visit_registered(
            str(uuid.uuid4()),
            case_ids,
            unit=unit,
            channel=channel,
            received_at=at.isoformat(),
            headcount=headcount,
            **extra,
        ),
    )


def register(rt, unit, channel, at, category, **extra):
    case_id, number = new_case(unit)
    status = extra.pop("status", "open")
    consume(
        rt,
        case_registered(
            case_id,
            number,
            unit=unit,
            status=status,
            channel=channel,
            received_at=at.isoformat(),
            category=category,
            **extra,
        ),
    )
    return case_id, number


def route_and_resolve(rt, case_id, number, *, due, resolved_at=None):
    assignment_id = str(uuid.uuid4())
    consume(
        rt,
        case_routed(
            case_id,
            number,
            unit="lw-buwen",
            routed_at=due - dt.timedelta(days=30),
            due_at=due,
            assignment_id=assignment_id,
        ),
    )
    if resolved_at is not None:
        consume(
            rt,
            assignment_event(
                "assignment.resolved", case_id, number, assignment_id, occurred_at=resolved_at
            ),
        )


def feedback(rt, case_id, satisfied, *, at, monkeypatch):
    """Record the visitor's answer as given at ``at`` (the statistics count it then)."""
    monkeypatch.setattr(usecases, "now", lambda: at)
    with rt.unit_of_work() as uow:
        usecases.record_feedback(uow, case_id, satisfied=satisfied, comment=None)
        uow.commit()


@pytest.fixture
def december(rt, directory, monkeypatch):
    c1 = register(rt, "city-org", "night_talk", DAY_15, "demolition_compensation")
    c2 = register(
        rt, "city-org", "night_talk", DAY_15, "land_acquisition", status="resolved_on_spot"
    )
    consume(rt, case_resolved_on_spot(*c2, unit="city-org", resolved_at=DAY_15.isoformat()))
    visit(rt, "city-org", "night_talk", DAY_15, 5, [c1[0], c2[0]], follow_ups=[])
    visit(rt, "city-org", "night_talk", DAY_15, 2, [], follow_ups=["city-org-20261115-0042"])
    route_and_resolve(
        rt, *c1, due=dt.datetime(2027, 1, 15, tzinfo=CST), resolved_at=DAY_15 + dt.timedelta(days=3)
    )
    feedback(rt, c1[0], True, at=DAY_15 + dt.timedelta(days=4), monkeypatch=monkeypatch)

    c3 = register(rt, "lw-org", "daily", DAY_20, "demolition_compensation")
    c4 = register(rt, "lw-org", "daily", DAY_20, "land_acquisition", repeat_of=str(uuid.uuid4()))
    visit(rt, "lw-org", "daily", DAY_20, 1, [c3[0], c4[0]], follow_ups=[])
    route_and_resolve(rt, *c3, due=dt.datetime(2026, 12, 25, 9, 0, tzinfo=CST))
    route_and_resolve(
        rt,
        *c4,
        due=dt.datetime(2026, 12, 22, tzinfo=CST),
        resolved_at=dt.datetime(2026, 12, 28, tzinfo=CST),
    )
    feedback(rt, c4[0], False, at=dt.datetime(2026, 12, 29, tzinfo=CST), monkeypatch=monkeypatch)
    with rt.unit_of_work() as uow:
        usecases.name_supervisor(uow, c3[0], supervisor="李副市长", supervisor_unit="city")
        uow.commit()
    visit(
        rt,
        "lw-org",
        "letter",
        dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC),
        3,
        [],
        follow_ups=[],
    )

    early = register(rt, "city-org", "night_talk", dt.datetime(2026, 11, 30, 20, tzinfo=CST), "x")
    visit(rt, "city-org", "night_talk", dt.datetime(2026, 11, 30, 20, tzinfo=CST), 4, [early[0]])
    visit(
        rt,
        "lw-org",
        "letter",
        dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.UTC),
        6,
        [],
        follow_ups=[],
    )
    ladder.sweep(rt, dt.datetime(2027, 1, 26, tzinfo=CST))
    # Read the figures as of the sweep's day, after the period: what was due in it is late.
    monkeypatch.setattr(usecases, "now", lambda: dt.datetime(2027, 1, 26, tzinfo=CST))


COUNTS_CITY_ORG = {
    "batches": 2,
    "person_visits": 7,
    "follow_up_visits": 1,
    "issues": 2,
    "resolved": 2,
    "resolved_on_spot": 1,
    "resolved_on_time": 1,
    "overdue_open": 0,
    "escalated_level_1": 0,
    "escalated_level_2": 0,
    "escalated_major": 0,
    "repeat_visits": 0,
    "feedback_answers": 1,
    "satisfied": 1,
    "satisfaction_rate": 1.0,
    "first_contact_resolution_rate": 0.5,
}
COUNTS_LW_ORG = {
    "batches": 2,
    "person_visits": 4,
    "follow_up_visits": 0,
    "issues": 2,
    "resolved": 0,
    "resolved_on_spot": 0,
    "resolved_on_time": 0,
    "overdue_open": 2,
    "escalated_level_1": 1,
    "escalated_level_2": 0,
    "escalated_major": 1,
    "repeat_visits": 1,
    "feedback_answers": 1,
    "satisfied": 0,
    "satisfaction_rate": 0.0,
    "first_contact_resolution_rate": 0.0,
}
TOTALS = {
    "batches": 4,
    "person_visits": 11,
    "follow_up_visits": 1,
    "issues": 4,
    "resolved": 2,
    "resolved_on_spot": 1,
    "resolved_on_time": 1,
    "overdue_open": 2,
    "escalated_level_1": 1,
    "escalated_level_2": 0,
    "escalated_major": 1,
    "repeat_visits": 1,
    "feedback_answers": 2,
    "satisfied": 1,
    "satisfaction_rate": 0.5,
    "first_contact_resolution_rate": 0.25,
}


def test_every_figure_of_a_known_month_by_unit(client, december):
    response = client.get("/v1/stats?from=2026-12-01&to=2026-12-31&by=unit", headers=ADMIN)

    assert response.status_code == 200, response.json
    body = response.json
    assert body["rows"] == [
        {"group": "city-org", **COUNTS_CITY_ORG},
        {"group": "lw-org", **COUNTS_LW_ORG},
    ]
    assert body["totals"] == TOTALS


def test_rows_add_up_to_the_totals_whatever_the_grouping(client, december):
    for by in ("unit", "month", "channel", "category"):
        body = client.get(f"/v1/stats?from=2026-12-01&to=2026-12-31&by={by}", headers=ADMIN).json
        assert body["totals"] == TOTALS, by
        summed_from = ("issues",) if by == "category" else ("batches", "person_visits", "issues")
        for figure in (*summed_from, "resolved", "overdue_open", "escalated_level_1"):
            assert sum(row[figure] for row in body["rows"]) == TOTALS[figure], (by, figure)
    by_month = client.get("/v1/stats?from=2026-12-01&to=2026-12-31&by=month", headers=ADMIN).json
    assert [row["group"] for row in by_month["rows"]] == ["2026-12"]
    by_channel = client.get(
        "/v1/stats?from=2026-12-01&to=2026-12-31&by=channel", headers=ADMIN
    ).json
    assert {row["group"]: row["batches"] for row in by_channel["rows"]} == {
        "daily": 1,
        "letter": 1,
        "night_talk": 2,
    }


def test_every_answer_counts_in_the_period_it_was_given(client, rt, monkeypatch):
    # Unsatisfied in December (reopened, answered again), satisfied in January: two answers.
    case_id, number = register(rt, "city-org", "night_talk", DAY_15, "demolition_compensation")
    route_and_resolve(
        rt,
        case_id,
        number,
        due=dt.datetime(2027, 1, 15, tzinfo=CST),
        resolved_at=DAY_15 + dt.timedelta(days=3),
    )
    feedback(rt, case_id, False, at=dt.datetime(2026, 12, 20, tzinfo=CST), monkeypatch=monkeypatch)
    route_and_resolve(
        rt,
        case_id,
        number,
        due=dt.datetime(2027, 1, 21, tzinfo=CST),
        resolved_at=dt.datetime(2027, 1, 5, tzinfo=CST),
    )
    feedback(rt, case_id, True, at=dt.datetime(2027, 1, 10, tzinfo=CST), monkeypatch=monkeypatch)
    monkeypatch.setattr(usecases, "now", lambda: dt.datetime(2027, 2, 1, tzinfo=CST))

    def figures(query):
        body = client.get(f"/v1/stats?{query}", headers=ADMIN).json
        rows = {
            row["group"]: (row["feedback_answers"], row["satisfied"], row["satisfaction_rate"])
            for row in body["rows"]
        }
        totals = body["totals"]
        return rows, (totals["feedback_answers"], totals["satisfied"], totals["satisfaction_rate"])

    assert figures("from=2026-12-01&to=2026-12-31") == ({"city-org": (1, 0, 0.0)}, (1, 0, 0.0))
    # January received nothing, yet its answer counts there: given in January.
    assert figures("from=2027-01-01&to=2027-01-31") == ({"city-org": (1, 1, 1.0)}, (1, 1, 1.0))
    assert figures("from=2026-12-01&to=2027-01-31&by=month") == (
        {"2026-12": (1, 0, 0.0), "2027-01": (1, 1, 1.0)},
        (2, 1, 0.5),
    )
    for by in ("category", "channel"):
        rows, totals = figures(f"from=2026-12-01&to=2027-01-31&by={by}")
        assert (list(rows.values()), totals) == ([(2, 1, 0.5)], (2, 1, 0.5)), by


def test_overdue_open_counts_what_was_due_before_the_period_ended(client, december):
    # To 21 December: c3 (due 25 Dec) and c4 (due 22 Dec, 00:00) were not yet overdue.
    body = client.get("/v1/stats?from=2026-12-01&to=2026-12-21", headers=ADMIN).json
    assert body["totals"]["overdue_open"] == 0
    assert body["totals"]["issues"] == 4


def test_overdue_open_counts_only_what_is_past_due_when_read_before_the_period_ends(
    client, december, monkeypatch
):
    # Read on 23 December: c4 (due 22 Dec) is overdue, c3 (due 25 Dec) not yet.
    monkeypatch.setattr(usecases, "now", lambda: dt.datetime(2026, 12, 23, 12, tzinfo=CST))
    body = client.get("/v1/stats?from=2026-12-01&to=2026-12-31", headers=ADMIN).json
    assert body["totals"]["overdue_open"] == 1


def test_within_one_category_batches_are_not_counted(client, december):
    body = client.get(
        "/v1/stats?from=2026-12-01&to=2026-12-31&category=land_acquisition", headers=ADMIN
    ).json
    assert body["totals"]["batches"] is body["totals"]["person_visits"] is None
    assert (body["totals"]["issues"], body["totals"]["resolved_on_spot"]) == (2, 1)


def test_the_same_figures_as_csv(client, december):
    for request in (
        {"path": "/v1/stats?from=2026-12-01&to=2026-12-31&format=csv", "headers": ADMIN},
        {
            "path": "/v1/stats?from=2026-12-01&to=2026-12-31",
            "headers": {**ADMIN, "Accept": "text/csv"},
        },
    ):
        response = client.get(request["path"], headers=request["headers"])
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        lines = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert [line["group"] for line in lines] == ["city-org", "lw-org", "total"]
        assert lines[-1]["person_visits"] == "11"
        assert lines[-1]["satisfaction_rate"] == "0.5"
        assert lines[0]["first_contact_resolution_rate"] == "0.5"


def test_a_supervisor_sees_its_jurisdiction_and_a_desk_its_own_unit(client, december):
    own = client.get(
        "/v1/stats?from=2026-12-01&to=2026-12-31", headers=bearer("lw-org", "reception")
    ).json
    assert [row["group"] for row in own["rows"]] == ["lw-org"]
    assert own["totals"]["issues"] == 2

    for roles in (["reception"], ["partner"]):
        response = client.get(
            "/v1/stats?from=2026-12-01&to=2026-12-31&unit=city-org",
            headers=bearer("lw-org", *roles),
        )
        assert response.status_code == 403
        assert response.json["errors"] == {"query": {"unit": ["outside your jurisdiction"]}}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("to=2026-12-31", "from"),
        ("from=2026-12-01", "to"),
        ("from=2026-13-01&to=2026-12-31", "from"),
        ("from=2026-12-31&to=2026-12-01", "to"),
        ("from=2000-01-01&to=2026-12-01", "to"),
        ("from=0001-01-01&to=0001-01-01", "from"),  # found by the bad-input proof: a 500
        ("from=2026-12-01&to=9999-12-31", "to"),
        ("from=2026-12-01&to=2026-12-31&by=weather", "by"),
        ("from=2026-12-01&to=2026-12-31&format=xlsx", "format"),
        ("from=2026-12-01&to=2026-12-31&limit=5", "limit"),
    ],
)
def test_bad_statistics_queries_are_refused_field_by_field(client, query, field):
    response = client.get(f"/v1/stats?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert list(response.json["errors"]["query"]) == [field]
