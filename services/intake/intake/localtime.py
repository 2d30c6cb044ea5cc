"""The programme's local time: case numbers and night-talk days follow it."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo


def local_zone() -> ZoneInfo:
    """Return the programme's time zone (``NIGHTTALK_TIMEZONE``, default Asia/Shanghai)."""
    return ZoneInfo(os.environ.get("NIGHTTALK_TIMEZONE", "Asia/Shanghai"))
