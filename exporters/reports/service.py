"""Service records and receipts (服务记录 / 服务回执单), return-visit feedback
(用户回访反馈信息表) and the equipment archive (设备档案) of a site, from the store.

A ticket belongs to a period's service report when a service record, a sign-off or
checklist result of it is dated in the period; the feedback form lists feedback dated
in the period.  The archive includes devices removed from the config (a handover
lists everything that was maintained), with warranty status as of a given day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select

from exporters.reports.periods import Period
from tickets import ticket_store as ts
from tickets.actions import coverage
from tickets.schema import TicketRow
from tickets.store import ArchiveEntry, Store


@dataclass(frozen=True, slots=True)
class Part:
    device: str | None
    part: str
    quantity: int
    coverage: str       # warranty | at_cost | unknown


@dataclass(frozen=True, slots=True)
class Visit:
    """One service record with its parts."""

    at: float
    engineer: str
    work_done: str
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Receipt:
    """The site representative's sign-off (服务回执单)."""

    name: str
    at: float
    comment: str


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    number: str
    kind: str
    state: str
    severity: str
    device: str | None
    location: str | None
    title_zh: str
    title_en: str
    opened_at: float
    resolved_at: float | None
    visits: tuple[Visit, ...]
    receipts: tuple[Receipt, ...]
    checklist: tuple[tuple[str, bool, str], ...]   # (item, ok, note)


@dataclass(frozen=True, slots=True)
class Feedback:
    number: str
    device: str | None
    title_zh: str
    title_en: str
    at: float
    rating: int
    comment: str
    recorded_by: str


@dataclass(frozen=True, slots=True)
class ServiceReport:
    site: str
    period: Period
    entries: tuple[ServiceEntry, ...]
    feedback: tuple[Feedback, ...]


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    entry: ArchiveEntry
    warranty: str       # warranty | at_cost | unknown, as of ``on``


def _in(period: Period, at: object) -> bool:
    return isinstance(at, int | float) and period.start <= at < period.end


def _num(value: object) -> float:
    # ticket_store.detail hands records out as plain dicts of JSON-like values.
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _dicts(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


async def service_report(store: Store, site: str, period: Period, *,
                         progress: Callable[[int, int], None] | None = None) -> ServiceReport:
    """``progress(done, total)`` is called after each of the site's tickets is read."""
    entries: list[ServiceEntry] = []
    feedback: list[Feedback] = []
    async with store.transaction("read service records") as session:
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.site == site,
                                    TicketRow.opened_at < datetime.fromtimestamp(period.end, UTC))
            .order_by(TicketRow.opened_at, TicketRow.id)))
        for done, row in enumerate(rows, 1):
            d = await ts.detail(session, row)
            t = d.ticket
            visits = tuple(
                Visit(_num(r["at"]), str(r["engineer"]), str(r["work_done"]),
                      tuple(Part(None if p["device"] is None else str(p["device"]),
                                 str(p["part"]), int(_num(p["quantity"])), str(p["coverage"]))
                            for p in _dicts(r["parts"])))
                for r in d.service_records if _in(period, r["at"]))
            receipts = tuple(Receipt(str(s["name"]), _num(s["at"]), str(s["comment"]))
                             for s in d.sign_offs if _in(period, s["at"]))
            checklist = tuple((str(c["item"]), bool(c["ok"]), str(c["note"]))
                              for c in d.checklist_results if _in(period, c["at"]))
            if visits or receipts or checklist:
                entries.append(ServiceEntry(
                    t.number, t.kind, t.state, t.severity, t.device, t.location, t.title_zh,
                    t.title_en, t.opened_at, t.resolved_at, visits, receipts, checklist))
            feedback.extend(
                Feedback(t.number, t.device, t.title_zh, t.title_en, _num(f["at"]),
                         int(_num(f["rating"])), str(f["comment"]), str(f["recorded_by"]))
                for f in d.feedback if _in(period, f["at"]))
            if progress is not None:
                progress(done, len(rows))
    # A service log reads in the order the work was done.
    entries.sort(key=lambda e: (min([v.at for v in e.visits] + [r.at for r in e.receipts]
                                    or [e.opened_at]), e.opened_at, e.number))
    feedback.sort(key=lambda f: (f.at, f.number))
    return ServiceReport(site, period, tuple(entries), tuple(feedback))


async def archive_rows(store: Store, site: str, on: date) -> list[ArchiveRow]:
    """The site's equipment archive, removed devices included, warranty as of ``on``."""
    return [ArchiveRow(e, coverage(e.warranty_until, on))
            for e in await store.archive(include_removed=True) if e.site == site]
