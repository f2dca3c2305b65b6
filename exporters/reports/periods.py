"""Report ranges: inclusive local dates → half-open UTC intervals, split into months.

A contract speaks of local days ("1 March to 31 May"), so ``--from``/``--to`` are local
dates in the site's time zone, both included; the interval ends at local midnight after
``--to``.  Monthly records (设备运行情况记录 is kept per month) split the range at local
month starts; the first and last month are clipped to the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Period:
    label: str      # 2026-03, or 2026-03-15..2026-03-31 when clipped
    start: float    # epoch seconds, inclusive
    end: float      # epoch seconds, exclusive

    @property
    def seconds(self) -> float:
        return self.end - self.start


def local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def whole_range(first: date, last: date, zone: ZoneInfo) -> Period:
    """``first`` .. ``last`` (both included) as one period."""
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    label = f"{first.isoformat()}..{last.isoformat()}"
    return Period(label, local_midnight(first, zone),
                  local_midnight(last + timedelta(days=1), zone))


def months(first: date, last: date, zone: ZoneInfo) -> list[Period]:
    """The local calendar months touching ``first`` .. ``last``, clipped to the range."""
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    out: list[Period] = []
    day = first
    while day <= last:
        next_month = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        until = min(last, next_month - timedelta(days=1))
        whole = day.day == 1 and until == next_month - timedelta(days=1)
        label = (f"{day.year}-{day.month:02d}" if whole
                 else f"{day.isoformat()}..{until.isoformat()}")
        out.append(Period(label, local_midnight(day, zone),
                          local_midnight(until + timedelta(days=1), zone)))
        day = next_month
    return out
