"""Preventive maintenance: which work order is due when, and what its checklist says.

Periods are calendar months (``2026-03``) or quarters (``2026-Q1``) in the site's time
zone, clipped to the contract period; a work order is due at the end of its period.
The period key makes the schedule idempotent: one work order per site, system and period,
however often (and across however many restarts) the schedule is evaluated.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from zoneinfo import ZoneInfo

import yaml

from elvwatch.tickets.glossary import term
from elvwatch.tickets.sla import SiteTerms


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    id: str
    zh: str
    en: str


Items = tuple[ChecklistItem, ...]


@dataclass(frozen=True, slots=True)
class Checklists:
    """Checklist items per system and per device kind (tickets/checklists.yaml, with a
    config's replacements laid over)."""

    systems: Mapping[str, Items]
    kinds: Mapping[str, Items]

    def for_system(self, system: str, kinds: Iterable[str] = ()) -> Items:
        """The system's items, then those of each installed kind, each id once."""
        seen: dict[str, ChecklistItem] = {}
        for item in (*self.systems.get(system, ()),
                     *(i for kind in sorted(set(kinds)) for i in self.kinds.get(kind, ()))):
            seen.setdefault(item.id, item)
        return tuple(seen.values())

    def replaced(self, systems: Mapping[str, Items], kinds: Mapping[str, Items]) -> Checklists:
        return Checklists({**self.systems, **systems}, {**self.kinds, **kinds})

    def names(self, language: str) -> dict[str, str]:
        """Item id → its words in ``language``."""
        return {item.id: item.zh if language == "zh-CN" else item.en
                for items in (*self.systems.values(), *self.kinds.values()) for item in items}


def _items(raw: object) -> Items:
    if not isinstance(raw, list):
        raise ValueError("a checklist is a list of {id, zh, en}")
    return tuple(ChecklistItem(str(i["id"]), str(i["zh"]), str(i["en"])) for i in raw)


@functools.cache
def builtin_checklists() -> Checklists:
    text = resources.files("elvwatch.tickets").joinpath("checklists.yaml").read_text(
        encoding="utf-8")
    raw = yaml.safe_load(text)
    return Checklists({k: _items(v) for k, v in raw["systems"].items()},
                      {k: _items(v) for k, v in raw["kinds"].items()})


# The built-in items per system (the brief and the pages name items by them).
CHECKLISTS: Mapping[str, Items] = builtin_checklists().systems


def item_names(language: str, extra: Mapping[str, tuple[str, str]] | None = None
               ) -> dict[str, str]:
    """Checklist item id → words in ``language``: the built-in items and ``extra``
    (id → (zh, en), a config's own)."""
    names = builtin_checklists().names(language)
    for item_id, (zh, en) in (extra or {}).items():
        names[item_id] = zh if language == "zh-CN" else en
    return names


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
        zh, en = term("system", self.system, "zh-CN"), term("system", self.system, "en")
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
    has a checklist (``terms.checklists``, composed by the daemon from the config, else
    the built-in one); none outside the contract period or without a contract."""
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
        composed = terms.checklists.get(system)
        checklist = (tuple(ChecklistItem(*item) for item in composed) if composed is not None
                     else CHECKLISTS.get(system, ()))
        if not checklist:
            continue
        frequency = terms.preventive_by_system.get(system, terms.preventive)
        orders.append(WorkOrderDue(terms.site, system, period_at(now, frequency, zone),
                                   checklist))
    return orders
