"""The programme's local time: case numbers, night-talk days and due dates follow it."""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta

DEFAULT_ZONE = "Asia/Shanghai"


def local_zone() -> ZoneInfo:
    """Return the programme's time zone (``NIGHTTALK_TIMEZONE``, default Asia/Shanghai).

    A name the time-zone database does not know raises ValueError naming the variable;
    the services that use it read it at start, so it stops them there rather than
    failing every registration or routing with a 500.
    """
    value = os.environ.get("NIGHTTALK_TIMEZONE", "").strip() or DEFAULT_ZONE
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Asia", a long name
        raise ValueError(
            f"NIGHTTALK_TIMEZONE={value!r} is not a time zone of the IANA database: "
            f"write one like {DEFAULT_ZONE}"
        ) from exc


def one_month_after(instant: dt.datetime) -> dt.datetime:
    """Return the same local time one calendar month later, in UTC.

    Counted on the programme's calendar, the one the visitor and the unit live by: 07:00
    on 1 March in Zhangzhou is still 28 February in UTC, where a month would have been
    28 days. The day is clamped to the end of a shorter month (31 January → 28 or 29
    February).
    """
    if instant.tzinfo is None:
        raise ValueError("naive datetime: give instants with a time zone")
    return (instant.astimezone(local_zone()) + relativedelta(months=1)).astimezone(dt.UTC)
