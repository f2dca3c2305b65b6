"""The camera's clock from an ONVIF GetSystemDateAndTime answer, and its offset.

Firmware quirks handled (from public issue threads of ONVIF clients):

* no ``UTCDateTime`` at all, only ``LocalDateTime`` plus a ``TimeZone/TZ`` string;
* that TZ string in POSIX form (``CST-8``, ``CST-8:00:00``: the sign is inverted, "-8"
  is UTC+8) or in the human ``GMT+08:00`` / ``UTC+8`` form (the sign as people write it);
* impossible dates (month 0, hour 25) from a camera whose RTC was never set.

The offset's sign is *camera minus daemon*: a camera running an hour fast reads +3600.
Cameras report whole seconds, so the camera time is taken as the middle of its second
(+0.5 s) and compared with the middle of our request; the result is good to about ±1 s.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

_HUMAN = re.compile(r"^(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_POSIX = re.compile(r"^[A-Za-z]{3,}([+-]?)(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?")


def tz_offset(tz: str) -> dt.timedelta | None:
    """East-of-UTC offset a camera's TZ string means, or None when it cannot be read."""
    text = tz.strip()
    human = _HUMAN.match(text)
    if human:
        sign = -1 if human.group(1) == "-" else 1
        return sign * dt.timedelta(hours=int(human.group(2)),
                                   minutes=int(human.group(3) or 0))
    posix = _POSIX.match(text)
    if posix:
        # POSIX counts hours *west* of UTC: "CST-8" is eight hours east.
        sign = 1 if posix.group(1) == "-" else -1
        return sign * dt.timedelta(hours=int(posix.group(2)),
                                   minutes=int(posix.group(3) or 0),
                                   seconds=int(posix.group(4) or 0))
    if text.upper() in ("UTC", "GMT", "Z", "UTC0", "GMT0"):
        return dt.timedelta(0)
    return None


def _datetime(value: object) -> dt.datetime | None:
    if not isinstance(value, Mapping):
        return None
    date, time = value.get("Date"), value.get("Time")
    if not isinstance(date, Mapping) or not isinstance(time, Mapping):
        return None
    try:
        return dt.datetime(int(date["Year"]), int(date["Month"]), int(date["Day"]),
                           int(time["Hour"]), int(time["Minute"]), int(time["Second"]),
                           tzinfo=dt.UTC)
    except (KeyError, TypeError, ValueError):
        return None


def camera_utc(answer: Mapping[str, object]) -> tuple[dt.datetime | None, str]:
    """(camera clock in UTC, how it was read) from a serialized SystemDateAndTime."""
    utc = _datetime(answer.get("UTCDateTime"))
    if utc is not None:
        return utc, "utc"
    local = _datetime(answer.get("LocalDateTime"))
    if local is None:
        return None, "no readable UTCDateTime or LocalDateTime"
    zone = answer.get("TimeZone")
    tz = zone.get("TZ") if isinstance(zone, Mapping) else None
    offset = tz_offset(tz) if isinstance(tz, str) else None
    if offset is None:
        return None, "LocalDateTime only, with an unreadable TimeZone"
    return local - offset, "local+tz"


def clock_offset(camera: dt.datetime, sent: float, received: float) -> float:
    """Seconds camera minus daemon; ``sent``/``received`` are our epoch times around
    the request."""
    middle = (sent + received) / 2
    return camera.timestamp() + 0.5 - middle
