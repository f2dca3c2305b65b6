"""Preventive maintenance: which work order is due when, and what its checklist says.

Periods are calendar months (``2026-03``) or quarters (``2026-Q1``) in the site's time
zone, clipped to the contract period; a work order is due at the end of its period.
The period key makes the schedule idempotent: one work order per site, system and period,
however often (and across however many restarts) the schedule is evaluated.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from tickets.sla import SiteTerms


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    id: str
    zh: str
    en: str


CHECKLISTS: dict[str, tuple[ChecklistItem, ...]] = {
    "cctv": (
        ChecklistItem("clean_lens", "清洁镜头及防护罩", "clean lens and housing"),
        ChecklistItem("check_image", "检查图像质量", "check image quality"),
        ChecklistItem("check_time", "核对设备时间", "check device time"),
        ChecklistItem("check_recording", "检查录像及存储", "check recording and storage"),
    ),
    "access_control": (
        ChecklistItem("test_readers", "测试读卡器", "test card readers"),
        ChecklistItem("test_door_contacts", "测试门磁", "test door contacts"),
        ChecklistItem("test_backup_battery", "检查备用电池", "check backup battery"),
    ),
    "intercom": (
        ChecklistItem("call_test", "呼叫测试", "call test"),
    ),
    "alarm": (
        ChecklistItem("walk_test", "步测探测器", "walk test detectors"),
        ChecklistItem("test_battery", "检查蓄电池", "check battery"),
        ChecklistItem("test_communicator", "测试报警通讯", "test communicator"),
    ),
}
SYSTEM_NAMES = {"cctv": ("视频监控", "CCTV"), "access_control": ("门禁", "access control"),
                "intercom": ("楼宇对讲", "intercom"), "alarm": ("防盗报警", "alarm")}


@dataclass(frozen=True, slots=True)
class Period:
    key: str            # 2026-03 | 2026-Q1
    start: float        # epoch seconds, inclusive
    end: float          # epoch seconds, exclusive: the work order is due then


@dataclass(frozen=True, slots=True)
class WorkOrderDue:
    site: str
    system: str
    period: Period
    checklist: tuple[ChecklistItem, ...]

    @property
    def dedup_key(self) -> str:
        return f"preventive:{self.site}:{self.system}:{self.period.key}"

    @property
    def titles(self) -> tuple[str, str]:
        zh, en = SYSTEM_NAMES.get(self.system, (self.system, self.system))
        return (f"{zh}系统定期保养 {self.period.key}",
                f"Preventive maintenance, {en}, {self.period.key}")


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_at(now: float, frequency: str, zone: ZoneInfo) -> Period:
    """The calendar month or quarter, in ``zone``, that contains ``now``."""
    local = datetime.fromtimestamp(now, zone).date()
    if frequency == "monthly":
        first, months, key = local.replace(day=1), 1, f"{local.year}-{local.month:02d}"
    elif frequency == "quarterly":
        quarter = (local.month - 1) // 3
        first, months = date(local.year, quarter * 3 + 1, 1), 3
        key = f"{local.year}-Q{quarter + 1}"
    else:
        raise ValueError(f"unknown preventive frequency {frequency!r}")
    return Period(key, _midnight(first, zone), _midnight(_add_months(first, months), zone))


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def due_work_orders(terms: SiteTerms, now: float) -> list[WorkOrderDue]:
    """The work orders of the period containing ``now``, one per installed system that
    has a checklist; none outside the contract period or without a contract."""
    if terms.contract_start is None:
        return []
    zone = ZoneInfo(terms.timezone)
    start = _midnight(terms.contract_start, zone)
    first = _add_months(terms.contract_start, terms.contract_months)
    last_day = calendar.monthrange(first.year, first.month)[1]
    end = _midnight(first.replace(day=min(terms.contract_start.day, last_day)), zone)
    if not start <= now < end:
        return []
    orders = []
    for system in sorted(set(terms.systems)):
        checklist = CHECKLISTS.get(system)
        if not checklist:
            continue
        frequency = terms.preventive_by_system.get(system, terms.preventive)
        orders.append(WorkOrderDue(terms.site, system, period_at(now, frequency, zone),
                                   checklist))
    return orders
