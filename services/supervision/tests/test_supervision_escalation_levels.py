"""Escalation levels on the case: the migration fills them from the firings recorded before."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from servicekit import migrations
from servicekit.db import make_engine
from supervision import models

BEFORE = "5f555bb37c8b"  # the revision before the levels were kept on the case
T0 = dt.datetime(2026, 12, 15, 8, 0, tzinfo=dt.UTC)


def _case(case_id: str) -> dict:
    return {
        "case_id": case_id,
        "case_number": f"city-org-20261115-{case_id}",
        "receiving_unit": "city-org",
        "responsible_unit": "lw-guokeng",
        "status": models.ROUTED,
        "registered": True,
        "updated_at": T0,
    }


def _firing(case_id: str, step: str, generation: int, fire_at: dt.datetime) -> dict:
    return {
        "case_id": case_id,
        "step": step,
        "generation": generation,
        "event_id": f"{case_id}-{step}-{generation}",
        "due_at": T0,
        "fire_at": fire_at,
        "fired_at": fire_at,
    }


def test_the_migration_fills_the_first_listing_at_each_level(make_database):
    url = make_database("levels")
    migrations.upgrade("supervision", "supervision", url, revision=BEFORE)
    engine = make_engine(url)
    cases = models.SupervisedCase.__table__
    try:
        with engine.begin() as conn:
            for case_id in ("0001", "0002"):
                conn.execute(insert(cases).values(_case(case_id)))
            conn.execute(
                insert(models.LadderFiring.__table__),
                [
                    _firing("0001", "warning", 1, T0 - dt.timedelta(days=5)),
                    _firing("0001", "unit-leader", 1, T0),
                    # A moved clock listed it again later: the first listing counts.
                    _firing("0001", "unit-leader", 2, T0 + dt.timedelta(days=40)),
                    _firing("0001", "city-leader", 2, T0 + dt.timedelta(days=90)),
                    _firing("0002", "overdue", 1, T0),
                ],
            )
        migrations.upgrade("supervision", "supervision", url)
        with Session(engine) as session:
            found = {
                row.case_id: (row.escalated_level_1_at, row.escalated_level_2_at)
                for row in session.scalars(select(models.SupervisedCase))
            }
    finally:
        engine.dispose()
    assert found == {
        "0001": (T0, T0 + dt.timedelta(days=90)),
        "0002": (None, None),
    }
