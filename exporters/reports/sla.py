"""SLA report per site and period: response and repair times, breaches with reasons.

Fault tickets opened in the period count (those the rule engine opened and those people
reported).  Times:

* response time = the first response by a person (acknowledging, or an engineer's
  resolution) minus opened.  A ticket nobody acknowledged has no response time, even
  when its fault cleared on its own: it counts as not responded, and as a breach once
  its response deadline has passed;
* repair time = resolved minus opened, for tickets resolved (a reopened ticket's
  resolution is its latest one).

A deadline is breached when the daemon recorded a breach (``*_breached_at``), or it
was met late, or it is still unmet at ``as_of`` (the moment the report is made) — so a
breach the daemon missed while it was stopped still shows.  A deadline replaced later
(renegotiated with the site representative, or by a reclassification) keeps its breach:
it is listed with when it was replaced, and the new deadline is judged from then on.
A repair deadline "to agree" (major faults) cannot be breached and is shown as such.
A reclassified ticket counts under its severity now and shows the one it opened with.

Preventive work orders opened in the period are listed apart, each one of: done in
time (completed by the end of its period), done late, late (its period is over and it
is not completed) or not yet due (its period is still running) — an order of the
running month is not counted against the contract before its time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from elvwatch.exporters.reports.labels import Label, site_labels
from elvwatch.exporters.reports.periods import Period
from elvwatch.tickets.schema import SupersededDeadlineRow, TicketRow
from elvwatch.tickets.store import Store

SEVERITIES = ("emergency", "major", "general")


@dataclass(frozen=True, slots=True)
class Breach:
    number: str
    severity: str           # the ticket's severity when the deadline applied
    which: str              # response | resolve
    due: float
    met_at: float | None    # None: not met by as_of (or before the deadline was replaced)
    late_s: float           # met_at (or as_of, or replaced_at) minus due
    recorded_at: float | None   # when the daemon escalated it, if it did
    replaced_at: float | None = None    # the deadline was renegotiated or reclassified
    replaced_why: str = ""              # e.g. "renegotiated: 需订购硬盘"


@dataclass(frozen=True, slots=True)
class TicketTimes:
    number: str
    severity: str
    state: str
    device: str | None
    location: str | None
    title_zh: str
    title_en: str
    opened_at: float
    response_due: float | None
    resolve_due: float | None
    resolve_to_agree: bool
    response_s: float | None    # None: nobody responded
    repair_s: float | None
    original_severity: str | None = None    # before a reclassification
    channel: str = "monitoring"             # how the ticket came in


@dataclass(frozen=True, slots=True)
class SeverityStats:
    severity: str
    tickets: int
    responded: int
    resolved: int
    response_median_s: float | None
    response_worst_s: float | None
    repair_median_s: float | None
    repair_worst_s: float | None
    response_breaches: int
    resolve_breaches: int


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A preventive work order and how it stands against its due time."""

    number: str
    system: str | None
    period: str | None
    due: float | None
    completed_at: float | None
    status: str     # done_in_time | done_late | late | not_yet_due
    follow_ups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SlaReport:
    site: str
    period: Period
    as_of: float
    tickets: tuple[TicketTimes, ...]
    by_severity: tuple[SeverityStats, ...]
    breaches: tuple[Breach, ...]
    preventive_due: int
    preventive_done_in_time: int
    work_orders: tuple[WorkOrder, ...] = ()
    labels: dict[str, Label] = field(default_factory=dict)

    def preventive(self, status: str) -> int:
        return sum(1 for w in self.work_orders if w.status == status)


def work_order_status(due: float | None, completed_at: float | None, as_of: float) -> str:
    if completed_at is not None:
        return "done_in_time" if due is None or completed_at <= due else "done_late"
    return "late" if due is not None and as_of >= due else "not_yet_due"


def ticket_times(row: TicketRow) -> TicketTimes:
    opened = row.opened_at.timestamp()
    responded = _ts(row.responded_at)
    return TicketTimes(
        row.number, row.severity, row.state, row.device, row.location, row.title_zh,
        row.title_en, opened, _ts(row.response_due), _ts(row.resolve_due),
        row.resolve_to_agree, None if responded is None else responded - opened,
        None if row.resolved_at is None else row.resolved_at.timestamp() - opened,
        row.original_severity, row.channel)


def ticket_breaches(row: TicketRow, as_of: float,
                    superseded: Sequence[SupersededDeadlineRow] = ()) -> list[Breach]:
    """The ticket's breached deadlines: those replaced (with their breach) in the order
    they were replaced, then the current ones."""
    out: list[Breach] = []
    met = {"response": _ts(row.responded_at), "resolve": _ts(row.resolved_at)}
    for old in superseded:
        due, replaced = old.due.timestamp(), old.replaced_at.timestamp()
        done = met[old.which]
        met_at = done if done is not None and done <= replaced else None
        until = replaced if met_at is None else met_at
        if until > due or old.breached_at is not None:
            out.append(Breach(row.number, old.severity, old.which, due, met_at,
                              max(0.0, until - due), _ts(old.breached_at), replaced,
                              old.reason))
    checks = (("response", row.response_due, row.response_breached_at),
              ("resolve", row.resolve_due, row.resolve_breached_at))
    for which, due_dt, recorded in checks:
        if due_dt is None:
            continue
        due, done = due_dt.timestamp(), met[which]
        until = as_of if done is None else done
        if until > due or recorded is not None:
            out.append(Breach(row.number, row.severity, which, due, done,
                              max(0.0, until - due), _ts(recorded)))
    return out


def summarise(severity: str, times: Sequence[TicketTimes],
              breaches: Sequence[Breach]) -> SeverityStats:
    responses = [t.response_s for t in times if t.response_s is not None]
    repairs = [t.repair_s for t in times if t.repair_s is not None]
    return SeverityStats(
        severity, len(times), len(responses), len(repairs),
        statistics.median(responses) if responses else None, max(responses, default=None),
        statistics.median(repairs) if repairs else None, max(repairs, default=None),
        sum(1 for b in breaches if b.which == "response"),
        sum(1 for b in breaches if b.which == "resolve"))


async def sla_report(store: Store, site: str, period: Period, as_of: float) -> SlaReport:
    async with store.transaction("read tickets") as session:
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.site == site,
                                    TicketRow.opened_at >= _dt(period.start),
                                    TicketRow.opened_at < _dt(period.end))
            .order_by(TicketRow.opened_at, TicketRow.id)))
        replaced: dict[int, list[SupersededDeadlineRow]] = {}
        for old in await session.scalars(
                select(SupersededDeadlineRow)
                .where(SupersededDeadlineRow.ticket_id.in_([r.id for r in rows]))
                .order_by(SupersededDeadlineRow.id)):
            replaced.setdefault(old.ticket_id, []).append(old)
        faults = [r for r in rows if r.kind == "fault"]
        preventive = [r for r in rows if r.kind == "preventive"]
        follow_ups: dict[str, list[str]] = {}
        if preventive:
            for number, origin in (await session.execute(
                    select(TicketRow.number, TicketRow.follow_up_of).where(
                        TicketRow.follow_up_of.in_([r.number for r in preventive]))
                    .order_by(TicketRow.id))).all():
                follow_ups.setdefault(origin or "", []).append(number)
        labels = await site_labels(session, site)
    times = [ticket_times(r) for r in faults]
    breaches = [b for r in faults for b in ticket_breaches(r, as_of, replaced.get(r.id, ()))]
    present = [s for s in SEVERITIES if any(t.severity == s for t in times)]
    present += sorted({t.severity for t in times} - set(SEVERITIES))
    stats = tuple(summarise(s, [t for t in times if t.severity == s],
                            [b for b in breaches if b.severity == s]) for s in present)
    orders = tuple(WorkOrder(
        r.number, r.system, r.period, _ts(r.resolve_due), _ts(r.resolved_at),
        work_order_status(_ts(r.resolve_due), _ts(r.resolved_at), as_of),
        tuple(follow_ups.get(r.number, ()))) for r in preventive)
    done = sum(1 for w in orders if w.status == "done_in_time")
    return SlaReport(site, period, as_of, tuple(times), stats, tuple(breaches),
                     len(preventive), done, orders, labels)


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
