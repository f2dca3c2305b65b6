"""Reports as tables for the terminal (``elvwatch report … --format text``).

The same figures as the HTML, in the site's language, as ``exporters.terminal``
tables: rich on a terminal, plain aligned text in a pipe.  Durations are H:MM:SS,
availability two decimals (the CSV and ``--json`` carry the exact numbers).
"""

from __future__ import annotations

from elvwatch.exporters.reports.availability import AvailabilityReport
from elvwatch.exporters.reports.labels import Labels
from elvwatch.exporters.reports.render import SiteInfo, breach_reason
from elvwatch.exporters.reports.service import ServiceReport
from elvwatch.exporters.reports.sla import SlaReport
from elvwatch.exporters.reports.tables import parts_text
from elvwatch.exporters.reports.words import hms, percent, when, word
from elvwatch.exporters.terminal import Cell, Styled, Table, table
from elvwatch.tickets.notes import person


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
        [w("severity"), w("count"), w("responded"), w("resolved_count"), w("response_median"),
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

    names = Labels(dict(report.labels), lang)
    rows: list[list[Cell]] = []
    for e in report.entries:
        title = names.title(e.title_zh, e.title_en, e.device)
        for sheet in e.sheets:
            signed: Cell = "; ".join(f"{r.name} {when(r.at, tz)}" for r in sheet.receipts) \
                or Styled(w("unsigned"), "yellow")
            for r in sheet.records or (None,):
                rows.append([e.number, names.name(e.device), title,
                             when(sheet.arrived_at if r is None else r.at, tz),
                             person(sheet.engineer if r is None else r.engineer, lang),
                             "" if r is None else r.work_done,
                             "" if r is None else parts_text(r.parts, lang),
                             signed])
    records = table([w("ticket"), w("device"), w("title"), w("at"), w("engineer"),
                     w("work_done"), w("parts"), w("signed_by")], rows,
                    title=_title("service_title", site, report.period.label))
    feedback = table(
        [w("ticket"), w("device"), w("at"), w("rating"), w("comment"), w("quality_issue"),
         w("outcome"), w("recorded_by")],
        [[f.number or w("periodic_visit"), names.name(f.device), when(f.at, tz),
          str(f.rating), f.comment,
          w("not_assessed" if f.quality_issue is None else "yes" if f.quality_issue else "no"),
          f.outcome, person(f.recorded_by, lang)]
         for f in report.feedback],
        title=w("feedback_title"), right=(3,))
    return [records, feedback]


def _count(n: int) -> Cell:
    return Styled(str(n), "bold red") if n else str(n)
