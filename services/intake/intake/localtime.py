"""The programme's local time: case numbers and night-talk days follow it."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Shanghai"


def local_zone() -> ZoneInfo:
    """Return the programme's time zone (``NIGHTTALK_TIMEZONE``, default Asia/Shanghai).

    A name the time-zone database does not know raises ValueError naming the variable;
    the app and intake's processes read it at start, so it stops them there rather than
    failing every registration with a 500.
    """
    value = os.environ.get("NIGHTTALK_TIMEZONE", "").strip() or DEFAULT_ZONE
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Asia", a long name
        raise ValueError(
            f"NIGHTTALK_TIMEZONE={value!r} is not a time zone of the IANA database: "
            f"write one like {DEFAULT_ZONE}"
        ) from exc
