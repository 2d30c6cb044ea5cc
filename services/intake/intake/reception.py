"""Reception sessions: when a night-talk visit may be registered.

The night-talk day (夜谈日) is the 15th of every month, 16:00 to 23:00 local time
(both ends included); ``NIGHTTALK_NIGHT_TALK_DAY`` (1–28) and
``NIGHTTALK_NIGHT_TALK_HOURS`` (``HH:MM-HH:MM``) change it, ``NIGHTTALK_TIMEZONE``
names the zone. A unit may open extra night-talk sessions (e.g. a roving night in
a village); other channels (daily, roving, letter, phone, online) need no session.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake import models
from intake.localtime import local_zone

NIGHT_TALK = "night_talk"


@dataclass(frozen=True)
class Schedule:
    """The monthly night-talk day: which day of the month, from when to when."""

    day: int
    opens: dt.time
    closes: dt.time

    def describe(self) -> str:
        """Say the schedule as a clerk would read it."""
        return (
            f"the {self.day}th of the month, {self.opens:%H:%M}–{self.closes:%H:%M} "
            f"({local_zone().key})"
        )


def schedule() -> Schedule:
    """Return the configured night-talk day; a bad setting fails loudly, not silently."""
    day = int(os.environ.get("NIGHTTALK_NIGHT_TALK_DAY", "15"))
    if not 1 <= day <= 28:
        raise ValueError("NIGHTTALK_NIGHT_TALK_DAY must be a day from 1 to 28")
    opens, _, closes = os.environ.get("NIGHTTALK_NIGHT_TALK_HOURS", "16:00-23:00").partition("-")
    start, end = dt.time.fromisoformat(opens.strip()), dt.time.fromisoformat(closes.strip())
    if end <= start:
        raise ValueError("NIGHTTALK_NIGHT_TALK_HOURS must be HH:MM-HH:MM, the end after the start")
    return Schedule(day, start, end)


def regular_window(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Return the night-talk window of the month containing ``month``."""
    plan, zone = schedule(), local_zone()
    day = month.replace(day=plan.day)
    return (
        dt.datetime.combine(day, plan.opens, tzinfo=zone),
        dt.datetime.combine(day, plan.closes, tzinfo=zone),
    )


def in_session(session: Session, unit: str, when: dt.datetime) -> bool:
    """Return True if a night-talk session of the unit is open at ``when``."""
    opens, closes = regular_window(when.astimezone(local_zone()).date())
    if opens <= when <= closes:
        return True
    extra = session.scalars(
        select(models.ReceptionSession.id)
        .where(
            models.ReceptionSession.unit == unit,
            models.ReceptionSession.opens_at <= when,
            models.ReceptionSession.closes_at >= when,
        )
        .limit(1)
    ).first()
    return extra is not None


def regular_windows(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Return the night-talk windows that overlap the period [start, end)."""
    month = start.astimezone(local_zone()).date().replace(day=1)
    windows = []
    while True:
        opens, closes = regular_window(month)
        if opens >= end:
            return windows
        if closes > start:
            windows.append((opens, closes))
        month = (month + dt.timedelta(days=32)).replace(day=1)
