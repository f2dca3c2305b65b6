"""Reports as HTML (Jinja2, autoescaped) and PDF (weasyprint) — pure functions.

The web pages call these too (``web/pages.py``): pass a computed report and the
site's :class:`SiteInfo`, get a complete HTML document (inline CSS, print-ready: each
month / section starts a new printed page).  Device-supplied text (vendor, model,
firmware) is escaped by autoescaping like everything else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from elvwatch.exporters.reports.availability import AvailabilityReport
from elvwatch.exporters.reports.brief import Brief
from elvwatch.exporters.reports.labels import Label, Labels
from elvwatch.exporters.reports.logs import Logs, cause_text
from elvwatch.exporters.reports.periods import Period
from elvwatch.exporters.reports.service import ArchiveRow, ServiceReport, total_charge
from elvwatch.exporters.reports.sla import Breach, SlaReport
from elvwatch.exporters.reports.words import hms, percent, when, word, yuan
from elvwatch.tickets.glossary import state_term, term
from elvwatch.tickets.notes import event_note, local_note, local_work, person
from elvwatch.tickets.preventive import item_names


class PdfUnavailable(RuntimeError):
    """weasyprint (or the system libraries it needs) is not installed."""


@dataclass(frozen=True, slots=True)
class SiteInfo:
    site: str
    name: str
    language: str = "zh-CN"          # zh-CN | en
    timezone: str = "Asia/Shanghai"
    address: str | None = None
    # Checklist item id -> (zh, en) for items beyond the built-in ones (the config's).
    checklist_items: Mapping[str, tuple[str, str]] = field(default_factory=dict)


_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _render(template: str, site: SiteInfo, generated_at: float,
            labels: Mapping[str, Label] | None = None, **values: Any) -> str:
    lang = site.language
    names = Labels(dict(labels or {}), lang)
    items = item_names(lang, site.checklist_items)

    def t(key: str) -> str:
        return word(key, lang)

    def at(seconds: float | None) -> str:
        return when(seconds, site.timezone)

    def item(item_id: str) -> str:
        return items.get(item_id) or item_id

    def cov(part: object) -> str:
        """A part's coverage (a consumable says so), or a coverage id's word."""
        coverage = term("coverage", str(getattr(part, "coverage", part)), lang)
        if getattr(part, "consumable", False):
            return f"{term('words', 'consumable', lang)} · {coverage}"
        return coverage

    helpers: dict[str, Callable[..., str]] = {
        "t": t, "at": at, "hms": hms, "pct": lambda v: percent(v, 2), "yuan": yuan,
        "reason": lambda b: breach_reason(b, site),
        "severity_label": lambda s, was=None: severity_text(s, was, lang),
        "system_name": lambda system: term("system", system, lang),
        "kind_name": lambda kind: term("device_kind", kind, lang),
        "sev": lambda severity: term("severity", severity, lang),
        "state": lambda state, kind="fault": state_term(state, kind, lang),
        "dstate": lambda state: term("device_state", state, lang),
        "ek": lambda kind: term("event", kind, lang),
        "cov": cov,
        "dev": names.name, "loc": names.location, "ttitle": names.title,
        "who": lambda actor: person(actor, lang),
        "note": lambda e: event_note(e.kind, e.actor, e.note, lang, site.timezone, item,
                                     names.name),
        "item": item,
        "yes_no": lambda flag: t("not_assessed") if flag is None else t(
            "yes" if flag else "no"),
        "total": lambda sheets: yuan(total_charge(sheets)),
        "money": lambda cents: t("not_priced") if cents is None else yuan(cents),
        "cause": lambda text: cause_text(text, lang),
        "channel": lambda channel: term("channel", channel, lang),
        "work": lambda text: local_work(text, lang)}
    return _ENV.get_template(template).render(
        site=site, generated=at(generated_at), lang=lang, **helpers, **values)


def breach_reason(breach: Breach, site: SiteInfo) -> str:
    which = word(breach.which, site.language)
    key = "reason_open" if breach.met_at is None else "reason_late"
    if breach.met_at is None and breach.replaced_at is not None:
        key = "reason_replaced"
    text = word(key, site.language).format(which=which, late=hms(breach.late_s))
    sep = "；" if site.language == "zh-CN" else "; "
    if breach.recorded_at is not None:
        text += sep + word("reason_recorded", site.language).format(
            at=when(breach.recorded_at, site.timezone))
    if breach.replaced_at is not None:
        text += sep + word("reason_superseded", site.language).format(
            at=when(breach.replaced_at, site.timezone),
            why=local_note(breach.replaced_why or "", site.language, site.timezone))
    return text


def severity_text(severity: str, original: str | None, language: str) -> str:
    """The severity, and the one a reclassified ticket opened with."""
    text = word(severity, language)
    if original:
        was = word(original, language)
        text += f"（原{was}）" if language == "zh-CN" else f" (was {was})"
    return text


def availability_html(report: AvailabilityReport, site: SiteInfo, generated_at: float) -> str:
    sections = [(p, report.for_period(p)) for p in report.periods]
    return _render("availability.html", site, generated_at, report.labels, sections=sections,
                   title=word("availability_title", site.language), period=_span(report))


def sla_html(report: SlaReport, site: SiteInfo, generated_at: float) -> str:
    return _render("sla.html", site, generated_at, report.labels, report=report,
                   period=report.period, title=word("sla_title", site.language),
                   devices={t.number: t.device for t in report.tickets})


def service_html(report: ServiceReport, site: SiteInfo, generated_at: float) -> str:
    return _render("service.html", site, generated_at, report.labels, report=report,
                   period=report.period, title=word("service_title", site.language))


def archive_html(rows: list[ArchiveRow], site: SiteInfo, generated_at: float) -> str:
    return _render("archive.html", site, generated_at, rows=rows, period=None,
                   title=word("archive_title", site.language))


def audit_html(logs: Logs, site: SiteInfo, generated_at: float) -> str:
    return _render("audit.html", site, generated_at, logs.labels, logs=logs,
                   period=logs.period, title=word("audit_title", site.language))


def state_log_html(logs: Logs, site: SiteInfo, generated_at: float) -> str:
    return _render("statelog.html", site, generated_at, logs.labels, logs=logs,
                   period=logs.period, title=word("state_log_title", site.language))


@dataclass(frozen=True, slots=True)
class CoverLine:
    title: str
    files: tuple[str, ...]
    count: int


def cover_html(contents: list[CoverLine], site: SiteInfo, period: Period,
               generated_at: float, notes: Sequence[str] = ()) -> str:
    """The handover's cover: what the package holds (``notes``: what it leaves out), and
    room for both parties to sign."""
    return _render("cover.html", site, generated_at, contents=contents, period=period,
                   title=word("cover_title", site.language), notes=notes)


def brief_html(brief: Brief, site: SiteInfo) -> str:
    """The brief as a page: every ticket and device links to its page (relative links:
    the daemon serves it), phone numbers dial."""
    return _render("brief.html", site, brief.generated_at, brief.labels, brief=brief,
                   period=None, title=word("brief_title", site.language))


def to_pdf(html: str) -> bytes:
    """The HTML as PDF; CJK text needs a CJK font installed (Debian fonts-noto-cjk)."""
    try:
        # Imported on use: it is optional, and loads pango/harfbuzz when imported.
        weasyprint = importlib.import_module("weasyprint")
    except (ImportError, OSError) as exc:  # OSError: pango/harfbuzz libraries missing
        raise PdfUnavailable(f"PDF needs weasyprint: {exc}") from exc
    pdf = weasyprint.HTML(string=html).write_pdf()
    if not isinstance(pdf, bytes):
        raise PdfUnavailable("weasyprint returned no PDF")
    return pdf


def _span(report: AvailabilityReport) -> Period | None:
    if not report.periods:
        return None
    first, last = report.periods[0], report.periods[-1]
    return Period(f"{first.label} – {last.label}", first.start, last.end)
