"""Reports as HTML (Jinja2, autoescaped) and PDF (weasyprint) — pure functions.

The web pages call these too (``daemon/pages.py``): pass a computed report and the
site's :class:`SiteInfo`, get a complete HTML document (inline CSS, print-ready: each
month / section starts a new printed page).  Device-supplied text (vendor, model,
firmware) is escaped by autoescaping like everything else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from exporters.reports.availability import AvailabilityReport
from exporters.reports.brief import Brief
from exporters.reports.periods import Period
from exporters.reports.service import ArchiveRow, ServiceReport
from exporters.reports.sla import Breach, SlaReport
from exporters.reports.words import hms, percent, when, word
from tickets.preventive import SYSTEM_NAMES


class PdfUnavailable(RuntimeError):
    """weasyprint (or the system libraries it needs) is not installed."""


@dataclass(frozen=True, slots=True)
class SiteInfo:
    site: str
    name: str
    language: str = "zh-CN"          # zh-CN | en
    timezone: str = "Asia/Shanghai"


_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _render(template: str, site: SiteInfo, generated_at: float, **values: Any) -> str:
    def t(key: str) -> str:
        return word(key, site.language)

    def at(seconds: float | None) -> str:
        return when(seconds, site.timezone)

    def system_name(system: str | None) -> str:
        zh, en = SYSTEM_NAMES.get(system or "", (system or "", system or ""))
        return zh if site.language == "zh-CN" else en

    helpers: dict[str, Callable[..., str]] = {
        "t": t, "at": at, "hms": hms, "pct": lambda v: percent(v, 2),
        "reason": lambda b: breach_reason(b, site), "system_name": system_name,
        "severity_label": lambda s, was=None: severity_text(s, was, site.language)}
    return _ENV.get_template(template).render(
        site=site, generated=at(generated_at), lang=site.language, **helpers, **values)


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
            at=when(breach.replaced_at, site.timezone), why=breach.replaced_why)
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
    return _render("availability.html", site, generated_at, sections=sections,
                   title=word("availability_title", site.language), period=_span(report))


def sla_html(report: SlaReport, site: SiteInfo, generated_at: float) -> str:
    return _render("sla.html", site, generated_at, report=report, period=report.period,
                   title=word("sla_title", site.language))


def service_html(report: ServiceReport, site: SiteInfo, generated_at: float) -> str:
    return _render("service.html", site, generated_at, report=report, period=report.period,
                   title=word("service_title", site.language))


def archive_html(rows: list[ArchiveRow], site: SiteInfo, generated_at: float) -> str:
    return _render("archive.html", site, generated_at, rows=rows, period=None,
                   title=word("archive_title", site.language))


def brief_html(brief: Brief, site: SiteInfo) -> str:
    return _render("brief.html", site, brief.generated_at, brief=brief, period=None,
                   title=word("brief_title", site.language))


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
