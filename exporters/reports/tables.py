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
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from elvwatch.exporters.reports.availability import AvailabilityReport
from elvwatch.exporters.reports.brief import Brief
from elvwatch.exporters.reports.labels import Labels
from elvwatch.exporters.reports.logs import Logs, cause_text
from elvwatch.exporters.reports.service import ArchiveRow, Part, ServiceReport
from elvwatch.exporters.reports.sla import SlaReport
from elvwatch.exporters.reports.words import hms, number, percent, when, word, yuan
from elvwatch.tickets.glossary import state_term, term
from elvwatch.tickets.notes import event_note, local_note, local_work, person
from elvwatch.tickets.preventive import item_names

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
    keys = ("period", "device_id", "name", "system", "location", "availability",
            "downtime_s", "up_s", "degraded_s", "unknown_s", "not_in_service_s",
            "down_at_start", "faults", "fault_tickets", "tickets")
    names = Labels(dict(report.labels), language)
    return write_csv([word(k, language) for k in keys], (
        [r.period.label, r.device, names.name(r.device), term("system", r.system, language),
         r.location, percent(r.availability), number(r.down_s), number(r.up_s),
         number(r.degraded_s), number(r.unknown_s), number(r.not_in_service_s),
         word("yes" if r.down_at_start else "no", language), r.down_episodes,
         r.fault_tickets, " ".join(r.tickets)]
        for r in report.rows))


def sla_csv(report: SlaReport, language: str, timezone: str) -> bytes:
    """One row per fault ticket with its times and breaches (the summary is in HTML)."""
    keys = ("ticket", "severity", "state", "device_id", "device", "location", "title",
            "opened", "response_s", "repair_s", "response_breaches", "resolve_breaches",
            "reason")
    breaches: dict[str, list[str]] = {}
    for b in report.breaches:
        breaches.setdefault(b.number, []).append(b.which)
    names = Labels(dict(report.labels), language)
    return write_csv([word(k, language) for k in keys], (
        [t.number, term("severity", t.severity, language) + (
            f" ({term('severity', t.original_severity, language)})"
            if t.original_severity else ""),
         state_term(t.state, "fault", language), t.device, names.name(t.device), t.location,
         names.title(t.title_zh, t.title_en, t.device), iso(t.opened_at, timezone),
         "" if t.response_s is None else number(t.response_s),
         "" if t.repair_s is None else number(t.repair_s),
         breaches.get(t.number, []).count("response"),
         breaches.get(t.number, []).count("resolve"),
         "; ".join(f"{word(b.which, language)} +{hms(b.late_s)}"
                   + (f" ({local_note(b.replaced_why or '', language, timezone)})"
                      if b.replaced_at else "")
                   for b in report.breaches if b.number == t.number)]
        for t in report.tickets))


def parts_text(parts: Sequence[Part], language: str) -> str:
    """Parts in one cell: "12V 电源 ×1 保修索赔; 网线 ×20 耗材 · 按成本收费 1.50"."""
    out = []
    for p in parts:
        cover = term("coverage", p.coverage, language)
        if p.consumable:
            cover = f"{term('words', 'consumable', language)} · {cover}"
        price = "" if p.unit_price_cents is None else f" {yuan(p.unit_price_cents)}"
        out.append(f"{p.part} ×{p.quantity} {cover}{price}")
    return "; ".join(out)


def service_csv(report: ServiceReport, language: str, timezone: str) -> bytes:
    """服务记录 and 服务回执单 in one sheet: a row per service receipt (visit) and record,
    with the parts, the charges and the sign-off."""
    keys = ("ticket", "device_id", "device", "location", "title", "arrived", "departed",
            "at", "engineer", "cause", "work_done", "parts", "charges", "signed_by", "comment")
    names = Labels(dict(report.labels), language)
    rows: list[list[object]] = []
    for e in report.entries:
        title = names.title(e.title_zh, e.title_en, e.device)
        for sheet in e.sheets:
            signs = "; ".join(f"{r.name} {when(r.at, timezone)}"
                              + (word("signed_after_close", language) if r.late else "")
                              for r in sheet.receipts)
            comments = "; ".join(r.comment for r in sheet.receipts if r.comment)
            for r in sheet.records or (None,):
                rows.append([
                    e.number, e.device, names.name(e.device), e.location, title,
                    iso(sheet.arrived_at, timezone), iso(sheet.departed_at, timezone),
                    "" if r is None else iso(r.at, timezone),
                    person(r.engineer if r is not None else sheet.engineer, language),
                    "" if r is None else r.cause,
                    "" if r is None else local_work(r.work_done, language),
                    "" if r is None else parts_text(r.parts, language),
                    yuan(sheet.charge_cents), signs, comments])
    return write_csv([word(k, language) for k in keys], rows)


def feedback_csv(report: ServiceReport, language: str, timezone: str) -> bytes:
    """用户回访反馈信息表: a row per return visit, with the plan's fields."""
    keys = ("ticket", "device", "title", "at", "contact", "rating", "comment",
            "quality_issue", "solution", "outcome", "recorded_by")
    names = Labels(dict(report.labels), language)
    return write_csv([word(k, language) for k in keys], (
        [f.number or word("periodic_visit", language), names.name(f.device),
         names.title(f.title_zh, f.title_en, f.device), iso(f.at, timezone), f.contact,
         f.rating, f.comment,
         word("not_assessed" if f.quality_issue is None else
              "yes" if f.quality_issue else "no", language),
         f.solution, f.outcome, person(f.recorded_by, language)] for f in report.feedback))


def audit_csv(logs: Logs, language: str, timezone: str,
              items: Mapping[str, tuple[str, str]] | None = None) -> bytes:
    """Every audit event of the period's tickets, a row each, in the site's words
    (``items``: the config's own checklist items, id → (zh, en))."""
    keys = ("ticket", "title", "at", "event", "from_state", "to_state", "actor", "note")
    names = Labels(dict(logs.labels), language)
    item = item_names(language, items)
    return write_csv([word(k, language) for k in keys], (
        [tr.number, names.title(tr.title_zh, tr.title_en, tr.device), iso(e.at, timezone),
         term("event", e.kind, language),
         state_term(e.from_state, tr.kind, language) if e.from_state else "",
         state_term(e.to_state, tr.kind, language), person(e.actor, language),
         event_note(e.kind, e.actor, e.note, language, timezone,
                    lambda i: item.get(i) or i, names.name)]
        for tr in logs.trails for e in tr.events))


def state_log_csv(logs: Logs, language: str, timezone: str) -> bytes:
    keys = ("at", "device_id", "device", "location", "from_state", "to_state", "reason")
    names = Labels(dict(logs.labels), language)
    return write_csv([word(k, language) for k in keys], (
        [iso(c.at, timezone), c.device, names.name(c.device), names.location(c.device),
         term("device_state", c.previous, language), term("device_state", c.state, language),
         cause_text(c.cause, language)] for c in logs.changes))


def archive_csv(rows: Sequence[ArchiveRow], language: str) -> bytes:
    keys = ("device_id", "name", "system", "kind", "location", "vendor", "model", "serial",
            "firmware", "host", "installed", "warranty_until", "warranty", "removed_at")
    return write_csv([word(k, language) for k in keys], (
        [r.entry.id, r.entry.name, term("system", r.entry.system, language),
         term("device_kind", r.entry.kind, language), r.entry.location,
         r.entry.vendor, r.entry.model, r.entry.serial, r.entry.firmware, r.entry.host,
         r.entry.installed, r.entry.warranty_until, term("coverage", r.warranty, language),
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
        if tk.assignee:
            eta = f" · {t('eta')} {when(tk.eta, tz)}" if tk.eta is not None else ""
            lines.append(f"    {t('dispatch')}: {tk.assignee}{eta}  {tk.solution or ''}")
        if tk.reporter:
            lines.append(f"    {term('channel', tk.channel, lang)} · {tk.reporter}  "
                         f"{tk.reporter_contact or ''}")
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
            for r in d.history[:3]:
                lines.append(f"      {when(r.opened_at, tz)} {r.number} "
                             f"{local_work(r.work_done, lang) or '-'}"
                             + (f" ({t('cause')}: {r.cause})" if r.cause else ""))
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
        lines.append(f"  {w.number} {term('system', w.system, lang)} {w.period or ''}  {t('due')} "
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
