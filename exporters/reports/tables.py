"""Reports as CSV for Excel, and the brief as terminal text.

CSV is UTF-8 with a byte-order mark (Excel on Chinese Windows reads BOM-less UTF-8 as
GBK and garbles it), headers in the site's language, one row per record, seconds as
plain decimal numbers (exact to the microsecond) and times as ISO 8601 with offset in
the site's time zone, so a script reading the file back gets the same figures.  Text
Excel would run as a formula gets a leading apostrophe (device strings are untrusted).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from exporters.reports.availability import AvailabilityReport
from exporters.reports.brief import Brief
from exporters.reports.service import ArchiveRow, ServiceReport
from exporters.reports.sla import SlaReport
from exporters.reports.words import hms, number, percent, when, word
from tickets.preventive import SYSTEM_NAMES

# Excel runs a cell starting with one of these as a formula; device-reported text (an
# ONVIF manufacturer "=HYPERLINK(...)") must stay text, so it gets a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")


def read_csv(data: bytes) -> list[dict[str, str]]:
    """Rows of a CSV written by ``write_csv`` (BOM stripped), keyed by header."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def iso(seconds: float | None, timezone: str) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, ZoneInfo(timezone)).isoformat()


def availability_csv(report: AvailabilityReport, language: str) -> bytes:
    keys = ("period", "device", "name", "system", "location", "availability", "downtime_s",
            "up_s", "degraded_s", "unknown_s", "not_in_service_s", "down_at_start", "faults",
            "fault_tickets", "tickets")
    return write_csv([word(k, language) for k in keys], (
        [r.period.label, r.device, r.name, r.system, r.location, percent(r.availability),
         number(r.down_s), number(r.up_s), number(r.degraded_s), number(r.unknown_s),
         number(r.not_in_service_s), word("yes" if r.down_at_start else "no", language),
         r.down_episodes, r.fault_tickets, " ".join(r.tickets)]
        for r in report.rows))


def sla_csv(report: SlaReport, language: str, timezone: str) -> bytes:
    """One row per fault ticket with its times and breaches (the summary is in HTML)."""
    keys = ("ticket", "severity", "state", "device", "location", "title", "opened",
            "response_s", "repair_s", "response_breaches", "resolve_breaches", "reason")
    breaches: dict[str, list[str]] = {}
    for b in report.breaches:
        breaches.setdefault(b.number, []).append(b.which)
    title = "title_zh" if language == "zh-CN" else "title_en"
    return write_csv([word(k, language) for k in keys], (
        [t.number, t.severity + (f" ({t.original_severity})" if t.original_severity else ""),
         t.state, t.device, t.location, getattr(t, title),
         iso(t.opened_at, timezone),
         "" if t.response_s is None else number(t.response_s),
         "" if t.repair_s is None else number(t.repair_s),
         breaches.get(t.number, []).count("response"),
         breaches.get(t.number, []).count("resolve"),
         "; ".join(f"{b.which} +{hms(b.late_s)}"
                   + (f" (replaced: {b.replaced_why})" if b.replaced_at else "")
                   for b in report.breaches if b.number == t.number)]
        for t in report.tickets))


def service_csv(report: ServiceReport, language: str, timezone: str) -> bytes:
    """服务记录 and 服务回执单 in one sheet: a row per service visit with the sign-off."""
    keys = ("ticket", "device", "location", "title", "at", "engineer", "work_done", "parts",
            "signed_by", "comment")
    title = "title_zh" if language == "zh-CN" else "title_en"
    rows: list[list[object]] = []
    for e in report.entries:
        signs = "; ".join(f"{r.name} {when(r.at, timezone)}" for r in e.receipts)
        comments = "; ".join(r.comment for r in e.receipts if r.comment)
        for v in e.visits or (None,):
            rows.append([e.number, e.device, e.location, getattr(e, title),
                         "" if v is None else iso(v.at, timezone),
                         "" if v is None else v.engineer, "" if v is None else v.work_done,
                         "" if v is None else "; ".join(
                             f"{p.part} x{p.quantity} {p.coverage}" for p in v.parts),
                         signs, comments])
    return write_csv([word(k, language) for k in keys], rows)


def feedback_csv(report: ServiceReport, language: str, timezone: str) -> bytes:
    keys = ("ticket", "device", "title", "at", "rating", "comment", "recorded_by")
    title = "title_zh" if language == "zh-CN" else "title_en"
    return write_csv([word(k, language) for k in keys], (
        [f.number, f.device, getattr(f, title), iso(f.at, timezone), f.rating, f.comment,
         f.recorded_by] for f in report.feedback))


def archive_csv(rows: Sequence[ArchiveRow], language: str) -> bytes:
    keys = ("device", "name", "system", "kind", "location", "vendor", "model", "serial",
            "firmware", "host", "installed", "warranty_until", "warranty", "removed_at")
    return write_csv([word(k, language) for k in keys], (
        [r.entry.id, r.entry.name, r.entry.system, r.entry.kind, r.entry.location,
         r.entry.vendor, r.entry.model, r.entry.serial, r.entry.firmware, r.entry.host,
         r.entry.installed, r.entry.warranty_until, r.warranty,
         r.entry.removed_at.isoformat() if r.entry.removed_at else None] for r in rows))


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal columns (CJK characters take two)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


def brief_text(brief: Brief) -> str:
    """The brief for a terminal: plain lines, most urgent first."""
    lang, tz = brief.language, brief.timezone

    def t(key: str) -> str:
        return word(key, lang)

    lines = [f"{t('brief_title')} · {brief.site_name} ({brief.site}) · "
             f"{when(brief.generated_at, tz)}", "", f"== {t('open_tickets')}"]
    for tk in brief.tickets:
        due = (f"{t(tk.deadline_kind)} {when(tk.deadline, tz)}" if tk.deadline is not None
               else t("to_agree") if tk.deadline_kind == "to_agree" else "-")
        flag = f" {t('overdue')}" if tk.overdue else ""
        title = tk.title_zh if lang == "zh-CN" else tk.title_en
        lines.append(f"  {tk.number}  {pad(t(tk.severity), 9)} {due}{flag}  "
                     f"{tk.device or '-'}  {tk.location or ''}  {title}")
    if not brief.tickets:
        lines.append(f"  {t('none')}")
    lines += ["", f"== {t('to_visit')}"]
    for g in brief.groups:
        lines.append(f"  [{g.building or t('no_location')}{' / ' + g.floor if g.floor else ''}]")
        for d in g.devices:
            e = d.entry
            lines.append(f"    {e.id:<16} {pad(t(d.state), 9)} {t('since')} {when(d.since, tz)}  "
                         f"{e.location or ''}  {e.vendor or ''} {e.model or ''} "
                         f"{e.firmware or ''}  {t('cov_' + d.warranty)}  {' '.join(d.tickets)}")
    if not brief.groups:
        lines.append(f"  {t('none')}")
    lines += ["", f"== {t('parts_needed')}"]
    for p in brief.parts:
        lines.append(f"  {p.vendor or '?'} {p.model or '?'} x{len(p.devices)}  "
                     f"{t('cov_' + p.warranty)}  ({', '.join(p.devices)})")
    if not brief.parts:
        lines.append(f"  {t('none')}")
    lines += ["", f"== {t('preventive_due')}"]
    for w in brief.preventive:
        zh, en = SYSTEM_NAMES.get(w.system or "", (w.system or "", w.system or ""))
        lines.append(f"  {w.number} {zh if lang == 'zh-CN' else en} {w.period or ''}  {t('due')} "
                     f"{when(w.due, tz)}")
        lines += [f"    [ ] {item.zh if lang == 'zh-CN' else item.en}" for item in w.items]
    if not brief.preventive:
        lines.append(f"  {t('none')}")
    if brief.awaiting_sign_off:
        lines += ["", f"== {t('awaiting_sign_off')}"]
        lines += [f"  {tk.number} {tk.device or ''} "
                  f"{tk.title_zh if lang == 'zh-CN' else tk.title_en}"
                  for tk in brief.awaiting_sign_off]
    lines += ["", f"== {t('contacts')}"]
    lines += [f"  {c.name}  {c.role or ''}  {c.phone or ''}  {c.email or ''}"
              for c in brief.contacts] or [f"  {t('none')}"]
    return "\n".join(lines) + "\n"
