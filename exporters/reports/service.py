"""Service records and receipts (服务记录 / 服务回执单), return-visit feedback
(用户回访反馈信息表) and the equipment archive (设备档案) of a site, from the store.

The plan's forms, as the store keeps them:

* 服务记录: every service record — who, when, the cause found, the work done, the parts
  with quantity, unit price and warranty coverage (a consumable is always charged);
* 服务回执单: one sheet per visit — arrival and departure, the records written during it,
  the checklist of a preventive work order, the charges, and the site representative's
  signature (or an empty line).  A record written with no visit recorded (from the
  command line, say) is a sheet of its own; a sign-off not made during a visit signs
  the ticket's last sheet;
* 用户回访反馈信息表: every return visit of the period, after a ticket or a periodic
  visit of the site (no ticket), with the plan's fields 是否工程质量问题, 处理方案, 处理结果.

A ticket belongs to a period's service report when one of its sheets is dated in the
period (arrival, else the first record, else the sign-off).  The archive includes
devices removed from the config (a handover lists everything that was maintained),
with warranty status as of a given day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.exporters.reports.labels import Label, site_labels
from elvwatch.exporters.reports.periods import Period
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.actions import coverage
from elvwatch.tickets.schema import FeedbackRow, TicketRow
from elvwatch.tickets.store import ArchiveEntry, Store


@dataclass(frozen=True, slots=True)
class Part:
    device: str | None
    part: str
    quantity: int
    coverage: str       # warranty | at_cost | unknown
    unit_price_cents: int | None = None
    consumable: bool = False

    @property
    def charge_cents(self) -> int | None:
        """What the site pays: nothing under warranty, quantity × price otherwise
        (None: not priced)."""
        if self.coverage == "warranty":
            return 0
        return None if self.unit_price_cents is None else self.quantity * self.unit_price_cents


@dataclass(frozen=True, slots=True)
class Record:
    """One service record (服务记录) with its parts."""

    at: float
    engineer: str
    work_done: str
    parts: tuple[Part, ...]
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    """The site representative's sign-off."""

    name: str
    at: float
    comment: str
    late: bool = False      # signed after the system closed the ticket for want of it


@dataclass(frozen=True, slots=True)
class Sheet:
    """One 服务回执单: one visit (or one record made without a visit)."""

    engineer: str
    arrived_at: float | None
    departed_at: float | None
    records: tuple[Record, ...]
    checklist: tuple[tuple[str, bool, str], ...]   # (item, ok, note)
    receipts: tuple[Receipt, ...]
    photos: int = 0

    @property
    def at(self) -> float:
        times = ([self.arrived_at] if self.arrived_at is not None else []) + \
            [r.at for r in self.records] + [r.at for r in self.receipts]
        return min(times) if times else 0.0

    @property
    def parts(self) -> tuple[Part, ...]:
        return tuple(p for r in self.records for p in r.parts)

    @property
    def charge_cents(self) -> int | None:
        """The sheet's total charge; None when a charged part has no price."""
        charges = [p.charge_cents for p in self.parts]
        return None if any(c is None for c in charges) else sum(c or 0 for c in charges)


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
    sheets: tuple[Sheet, ...]

    @property
    def records(self) -> tuple[Record, ...]:
        return tuple(r for s in self.sheets for r in s.records)

    @property
    def receipts(self) -> tuple[Receipt, ...]:
        return tuple(r for s in self.sheets for r in s.receipts)

    @property
    def checklist(self) -> tuple[tuple[str, bool, str], ...]:
        return tuple(c for s in self.sheets for c in s.checklist)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One line of 用户回访反馈信息表; ``number`` None: a periodic visit of the site."""

    number: str | None
    device: str | None
    title_zh: str
    title_en: str
    at: float
    rating: int
    comment: str
    recorded_by: str
    contact: str = ""
    quality_issue: bool | None = None   # 是否工程质量问题; None: not assessed
    solution: str = ""                  # 处理方案
    outcome: str = ""                   # 处理结果
    outcome_at: float | None = None


@dataclass(frozen=True, slots=True)
class ServiceReport:
    site: str
    period: Period
    entries: tuple[ServiceEntry, ...]
    feedback: tuple[Feedback, ...]
    labels: dict[str, Label] = field(default_factory=dict)


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


def _opt_num(value: object) -> float | None:
    return None if value is None else _num(value)


def _dicts(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _record(r: dict[str, object]) -> Record:
    return Record(_num(r["at"]), str(r["engineer"]), str(r["work_done"]), tuple(
        Part(None if p["device"] is None else str(p["device"]), str(p["part"]),
             int(_num(p["quantity"])), str(p["coverage"]),
             None if p.get("unit_price_cents") is None else int(_num(p["unit_price_cents"])),
             bool(p.get("consumable")))
        for p in _dicts(r["parts"])), str(r.get("cause") or ""))


def sheets_of(detail: ts.TicketDetail) -> list[Sheet]:
    """The ticket's 服务回执单, oldest first (see the module docstring)."""
    by_visit: dict[object, list[Record]] = {}
    loose: list[Record] = []
    for r in detail.service_records:
        if r.get("visit_id") is None:
            loose.append(_record(r))
        else:
            by_visit.setdefault(r["visit_id"], []).append(_record(r))
    signs: dict[object, list[Receipt]] = {}
    unsigned: list[Receipt] = []
    t = detail.ticket
    auto_closed = t.close_reason == "no_sign_off" and t.closed_at is not None
    for s in detail.sign_offs:
        receipt = Receipt(str(s["name"]), _num(s["at"]), str(s["comment"]),
                          auto_closed and _num(s["at"]) >= (t.closed_at or 0.0))
        if s.get("visit_id") is None:
            unsigned.append(receipt)
        else:
            signs.setdefault(s["visit_id"], []).append(receipt)
    photos: dict[object, int] = {}
    for p in detail.photos:
        photos[p.get("visit_id")] = photos.get(p.get("visit_id"), 0) + 1
    sheets: list[tuple[float, Sheet]] = []
    for v in detail.visits:
        sheet = Sheet(str(v["engineer"]), _num(v["arrived_at"]), _opt_num(v["departed_at"]),
                      tuple(by_visit.get(v["id"], ())), (), tuple(signs.get(v["id"], ())),
                      photos.get(v["id"], 0))
        sheets.append((sheet.at, sheet))
    for record in loose:
        sheets.append((record.at, Sheet(record.engineer, None, None, (record,), (), ())))
    sheets.sort(key=lambda pair: pair[0])
    out = [sheet for _, sheet in sheets]
    checklist = tuple((str(c["item"]), bool(c["ok"]), str(c["note"]))
                      for c in detail.checklist_results)
    if (unsigned or checklist or photos.get(None)) and not out:
        out.append(Sheet("", None, None, (), (), ()))
    if out:
        last = out[-1]
        out[-1] = Sheet(last.engineer, last.arrived_at, last.departed_at, last.records,
                        last.checklist + checklist, last.receipts + tuple(unsigned),
                        last.photos + photos.get(None, 0))
    return out


def feedback_line(f: FeedbackRow, row: TicketRow | None) -> Feedback:
    return Feedback(
        None if row is None else row.number, None if row is None else row.device,
        "" if row is None else row.title_zh, "" if row is None else row.title_en,
        ts.epoch(f.at) or 0.0, f.rating, f.comment, f.recorded_by, f.contact or "",
        f.quality_issue, f.solution or "", f.outcome or "", ts.epoch(f.outcome_at))


async def service_report(store: Store, site: str, period: Period, *,
                         progress: Callable[[int, int], None] | None = None) -> ServiceReport:
    """``progress(done, total)`` is called after each of the site's tickets is read."""
    entries: list[ServiceEntry] = []
    async with store.transaction("read service records") as session:
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.site == site,
                                    TicketRow.opened_at < datetime.fromtimestamp(period.end, UTC))
            .order_by(TicketRow.opened_at, TicketRow.id)))
        for done, row in enumerate(rows, 1):
            d = await ts.detail(session, row)
            t = d.ticket
            sheets = tuple(s for s in sheets_of(d) if _in(period, s.at))
            if sheets:
                entries.append(ServiceEntry(
                    t.number, t.kind, t.state, t.severity, t.device, t.location, t.title_zh,
                    t.title_en, t.opened_at, t.resolved_at, sheets))
            if progress is not None:
                progress(done, len(rows))
        feedback = await _feedback(session, site, period)
        labels = await site_labels(session, site)
    # A service log reads in the order the work was done.
    entries.sort(key=lambda e: (e.sheets[0].at, e.opened_at, e.number))
    return ServiceReport(site, period, tuple(entries), tuple(feedback), labels)


async def _feedback(session: AsyncSession, site: str, period: Period) -> list[Feedback]:
    # Feedback on a ticket is the ticket's site's, whether or not its row names the site.
    rows = await session.execute(
        select(FeedbackRow, TicketRow)
        .outerjoin(TicketRow, FeedbackRow.ticket_id == TicketRow.id)
        .where(or_(FeedbackRow.site == site, TicketRow.site == site),
               FeedbackRow.at >= datetime.fromtimestamp(period.start, UTC),
               FeedbackRow.at < datetime.fromtimestamp(period.end, UTC))
        .order_by(FeedbackRow.at, FeedbackRow.id))
    return [feedback_line(f, row) for f, row in rows.all()]


def total_charge(sheets: Sequence[Sheet]) -> int | None:
    charges = [s.charge_cents for s in sheets]
    return None if any(c is None for c in charges) else sum(c or 0 for c in charges)


async def archive_rows(store: Store, site: str, on: date) -> list[ArchiveRow]:
    """The site's equipment archive, removed devices included, warranty as of ``on``."""
    return [ArchiveRow(e, coverage(e.warranty_until, on))
            for e in await store.archive(include_removed=True) if e.site == site]
