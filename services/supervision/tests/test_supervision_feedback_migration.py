"""Feedback migrations: every answer kept (copied from the timelines), answered on the spot kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from servicekit import migrations
from servicekit.db import make_engine
from supervision import models

BEFORE = "e6a4c9f3b7d2"  # the revision before every answer was kept
T0 = dt.datetime(2026, 12, 15, 8, 0, tzinfo=dt.UTC)


def _case(case_id: str, **extra) -> dict:
    return {
        "case_id": case_id,
        "case_number": f"city-org-20261115-{case_id}",
        "receiving_unit": "city-org",
        "responsible_unit": "lw-guokeng",
        "category": "land",
        "channel": "night_talk",
        "status": models.CLOSED,
        "registered": True,
        "updated_at": T0,
        **extra,
    }


def _entry(event_id: str, case_id: str, event_type: str, at: dt.datetime, **summary) -> dict:
    return {
        "event_id": event_id,
        "case_id": case_id,
        "event_type": event_type,
        "occurred_at": at,
        "recorded_at": at,
        "summary": {"case_number": f"city-org-20261115-{case_id}", **summary},
    }


def test_the_migration_keeps_every_answer_given_before(make_database):
    url = make_database("answers")
    migrations.upgrade("supervision", "supervision", url, revision=BEFORE)
    engine = make_engine(url)
    later = T0 + dt.timedelta(days=20)
    try:
        with engine.begin() as conn:
            conn.execute(insert(models.SupervisedCase.__table__).values(_case("0001")))
            conn.execute(
                insert(models.SupervisedCase.__table__).values(
                    _case("0002", receiving_unit="lw-org", category=None, channel="daily")
                )
            )
            conn.execute(
                insert(models.TimelineEntry.__table__),
                [
                    # Unsatisfied (reopened), then satisfied: the case kept only the last.
                    _entry("e1", "0001", "case.feedback_received", T0, satisfied=False),
                    _entry("e2", "0001", "case.reopened", T0, unit="lw-guokeng"),
                    _entry("e3", "0001", "case.feedback_received", later, satisfied=True),
                    _entry("e4", "0002", "case.feedback_received", T0, satisfied=True),
                    _entry("e5", "0002", "case.closed", T0, outcome="satisfied"),
                ],
            )
        migrations.upgrade("supervision", "supervision", url)
        with Session(engine) as session:
            found = {
                row.event_id: (
                    row.case_id,
                    row.answered_at,
                    row.satisfied,
                    row.receiving_unit,
                    row.category,
                    row.channel,
                )
                for row in session.scalars(select(models.FeedbackAnswer))
            }
    finally:
        engine.dispose()
    assert found == {
        "e1": ("0001", T0, False, "city-org", "land", "night_talk"),
        "e3": ("0001", later, True, "city-org", "land", "night_talk"),
        "e4": ("0002", T0, True, "lw-org", None, "daily"),
    }


def test_the_migration_marks_the_cases_answered_on_the_spot(make_database):
    url = make_database("on_spot")
    migrations.upgrade("supervision", "supervision", url, revision="f7b5d0a4c8e3")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for case_id, status in (
                ("0001", models.RESOLVED_ON_SPOT),
                ("0002", models.ROUTED),
                ("0003", models.CLOSED),
            ):
                conn.execute(
                    insert(models.SupervisedCase.__table__).values(_case(case_id, status=status))
                )
        migrations.upgrade("supervision", "supervision", url)
        with Session(engine) as session:
            found = {
                row.case_id: row.answered_on_spot
                for row in session.scalars(select(models.SupervisedCase))
            }
    finally:
        engine.dispose()
    assert found == {"0001": True, "0002": False, "0003": False}
