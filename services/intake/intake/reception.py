"""Reception sessions: when a night-talk visit may be registered.

The night-talk day (夜谈日) is the 15th of every month, 16:00 to 23:00 local time
(both ends included); ``NIGHTTALK_NIGHT_TALK_DAY`` (1–28) and
``NIGHTTALK_NIGHT_TALK_HOURS`` (``HH:MM-HH:MM``, the end ``24:00`` at the latest)
change it, ``NIGHTTALK_TIMEZONE`` names the zone. A unit may open extra night-talk
sessions (e.g. a roving night in a village); other channels (daily, roving, letter,
phone, online) need no session.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake import models
from servicekit.localtime import local_zone

NIGHT_TALK = "night_talk"
DEFAULT_DAY = "15"
DEFAULT_HOURS = "16:00-23:00"
HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
MIDNIGHT = dt.timedelta(days=1)


@dataclass(frozen=True)
class Schedule:
    """The monthly night-talk day: which day of the month, from when to when.

    ``opens`` and ``closes`` are times after the day's midnight; ``closes`` may be a whole
    day, midnight at the day's end (``24:00``), which an operator naturally writes for a
    session that runs to the end of the evening.
    """

    day: int
    opens: dt.timedelta
    closes: dt.timedelta

    def describe(self) -> str:
        """Say the schedule as a clerk would read it."""
        return (
            f"the {self.day}th of the month, {_clock(self.opens)}–{_clock(self.closes)} "
            f"({local_zone().key})"
        )


def _clock(after_midnight: dt.timedelta) -> str:
    minutes = int(after_midnight.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def schedule() -> Schedule:
    """Return the configured night-talk day; a bad setting raises ValueError naming it.

    The app and intake's processes read it at start (:func:`check_settings`), so a bad
    value stops them there instead of failing every night-talk registration with a 500.
    """
    day_setting = os.environ.get("NIGHTTALK_NIGHT_TALK_DAY", "").strip() or DEFAULT_DAY
    day = int(day_setting) if day_setting.isdecimal() else 0
    if not 1 <= day <= 28:
        raise ValueError(
            f"NIGHTTALK_NIGHT_TALK_DAY={day_setting!r} is not a day from 1 to 28 "
            "(the day of every month that night-talk sessions are held)"
        )
    hours = os.environ.get("NIGHTTALK_NIGHT_TALK_HOURS", "").strip() or DEFAULT_HOURS
    opens, closes = _hours(hours)
    return Schedule(day, opens, closes)


def _hours(setting: str) -> tuple[dt.timedelta, dt.timedelta]:
    def refuse(problem: str) -> ValueError:
        return ValueError(
            f"NIGHTTALK_NIGHT_TALK_HOURS={setting!r} {problem}: write HH:MM-HH:MM in local "
            "time, e.g. 16:00-23:00 (24:00 for midnight at the end of the day)"
        )

    match = HOURS.fullmatch(setting)
    if match is None:
        raise refuse("is not HH:MM-HH:MM")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59:
        raise refuse("holds an hour past 23 (or 24:00) or a minute past 59")
    if end_h == 24 and end_m:
        raise refuse("goes past 24:00")
    opens = dt.timedelta(hours=start_h, minutes=start_m)
    closes = dt.timedelta(hours=end_h, minutes=end_m)
    if closes <= opens:
        raise refuse("must end after it starts, on the same day")
    return opens, closes


def check_settings() -> None:
    """Read the schedule and the time zone now, so that a bad setting stops the process."""
    local_zone()
    schedule()


def regular_window(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Return the night-talk window of the month containing ``month``."""
    plan, zone = schedule(), local_zone()
    day = month.replace(day=plan.day)
    return _at(day, plan.opens, zone), _at(day, plan.closes, zone)


def _at(day: dt.date, after_midnight: dt.timedelta, zone: dt.tzinfo) -> dt.datetime:
    # Arithmetic on the wall clock of that day: 24:00 is the next day's 00:00.
    return dt.datetime.combine(day, dt.time(), tzinfo=zone) + after_midnight


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
