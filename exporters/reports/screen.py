"""Reports as tables for the terminal (``elvwatch report … --format text``).

The same figures as the HTML, in the site's language, as ``exporters.terminal``
tables: rich on a terminal, plain aligned text in a pipe.  Durations are H:MM:SS,
availability two decimals (the CSV and ``--json`` carry the exact numbers).
"""

from __future__ import annotations

from exporters.reports.availability import AvailabilityReport
from exporters.reports.render import SiteInfo, breach_reason
from exporters.reports.service import ServiceReport
from exporters.reports.sla import SlaReport
from exporters.reports.words import hms, percent, when, word
from exporters.terminal import Cell, Styled, Table, table


def _title(key: str, site: SiteInfo, label: str) -> str:
    return f"{word(key, site.language)} · {site.name} ({site.site}) · {label}"


def _availability_cell(value: float | None) -> Cell:
    text = percent(value, 2)
    if value is None or value >= 99.0:
        return text
    return Styled(text, "bold red" if value < 95.0 else "yellow")


def availability_tables(report: AvailabilityReport, site: SiteInfo) -> list[Table]:
    """One table per month: availability, downtime, faults and tickets per device."""
    lang = site.language

    def w(key: str) -> str:
        return word(key, lang)

    out = []
    for period in report.periods:
        rows = report.for_period(period)
        out.append(table(
            [w("device"), w("name"), w("location"), w("availability"), w("downtime"),
             w("faults"), w("fault_tickets"), w("tickets")],
            [[r.device, r.name or "", r.location or "", _availability_cell(r.availability),
              hms(r.down_s), str(r.down_episodes), str(r.fault_tickets), " ".join(r.tickets)]
             for r in rows],
            title=_title("availability_title", site, period.label), right=(3, 4, 5, 6),
            note=w("availability_note")))
    return out


def sla_tables(report: SlaReport, site: SiteInfo) -> list[Table]:
    """Per severity, then the breaches with their reasons."""
    lang, tz = site.language, site.timezone

    def w(key: str) -> str:
        return word(key, lang)

    summary = table(
        [w("severity"), w("count"), w("responded"), w("resolved"), w("response_median"),
         w("response_worst"), w("repair_median"), w("repair_worst"), w("response_breaches"),
         w("resolve_breaches")],
        [[w(s.severity), str(s.tickets), str(s.responded), str(s.resolved),
          hms(s.response_median_s), hms(s.response_worst_s), hms(s.repair_median_s),
          hms(s.repair_worst_s), _count(s.response_breaches), _count(s.resolve_breaches)]
         for s in report.by_severity],
        title=_title("sla_title", site, report.period.label), right=range(1, 10),
        note=w("preventive_summary").format(due=report.preventive_due,
                                            done=report.preventive_done_in_time))
    titles = {t.number: (t.device, t.title_zh if lang == "zh-CN" else t.title_en)
              for t in report.tickets}
    breaches = table(
        [w("ticket"), w("severity"), w("device"), w("title"), w("which"), w("due"),
         w("late_by"), w("reason")],
        [[b.number, w(b.severity), titles.get(b.number, (None, ""))[0] or "",
          titles.get(b.number, (None, ""))[1], w(b.which), when(b.due, tz),
          Styled(hms(b.late_s), "bold red"), breach_reason(b, site)]
         for b in report.breaches],
        title=w("breaches"), right=(6,))
    return [summary, breaches]


def service_tables(report: ServiceReport, site: SiteInfo) -> list[Table]:
    """服务记录 with the sign-offs (服务回执单), then 用户回访反馈信息表."""
    lang, tz = site.language, site.timezone

    def w(key: str) -> str:
        return word(key, lang)

    rows: list[list[Cell]] = []
    for e in report.entries:
        signed: Cell = "; ".join(f"{r.name} {when(r.at, tz)}" for r in e.receipts) or \
            Styled(w("unsigned"), "yellow")
        title = e.title_zh if lang == "zh-CN" else e.title_en
        for v in e.visits or (None,):
            rows.append([e.number, e.device or "", title,
                         "" if v is None else when(v.at, tz),
                         "" if v is None else v.engineer,
                         "" if v is None else v.work_done,
                         "" if v is None else "; ".join(
                             f"{p.part} x{p.quantity} {w('cov_' + p.coverage)}"
                             for p in v.parts),
                         signed])
    records = table([w("ticket"), w("device"), w("title"), w("at"), w("engineer"),
                     w("work_done"), w("parts"), w("signed_by")], rows,
                    title=_title("service_title", site, report.period.label))
    feedback = table(
        [w("ticket"), w("device"), w("at"), w("rating"), w("comment"), w("recorded_by")],
        [[f.number, f.device or "", when(f.at, tz), str(f.rating), f.comment, f.recorded_by]
         for f in report.feedback],
        title=w("feedback_title"), right=(3,))
    return [records, feedback]


def _count(n: int) -> Cell:
    return Styled(str(n), "bold red") if n else str(n)
