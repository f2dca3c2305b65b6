"""The report kinds, computed from the store and written in each format.

What ``elvwatch report`` and the daemon's ``/api/v1/sites/{site}/reports/{kind}`` share,
so both give the same figures: :func:`compute` reads the store, :func:`encode` writes
HTML, CSV, PDF or JSON, :func:`screen_tables` the terminal tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from elvwatch.exporters.reports import documents, render, tables
from elvwatch.exporters.reports.availability import (
    AvailabilityReport,
    Progress,
    availability_report,
)
from elvwatch.exporters.reports.periods import months, whole_range
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.exporters.reports.service import ServiceReport, service_report
from elvwatch.exporters.reports.sla import SlaReport, sla_report
from elvwatch.tickets.store import Store

if TYPE_CHECKING:
    from elvwatch.exporters.terminal import Table

KINDS = ("availability", "sla", "service")
FORMATS = ("html", "csv", "pdf", "json")
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
               "pdf": "application/pdf", "json": "application/json"}
Report = AvailabilityReport | SlaReport | ServiceReport


async def compute(store: Store, kind: str, site: SiteInfo, first: date, last: date,
                  now: float, *, counter: Callable[[str], Progress] | None = None) -> Report:
    """The report ``kind`` of ``first`` .. ``last`` (local dates, both included), made at
    ``now``: time after it is not counted.  ``counter(stage)`` gives progress callbacks
    for the long stages ("devices", "tickets")."""
    zone = ZoneInfo(site.timezone)

    def stage(label: str) -> Progress | None:
        return None if counter is None else counter(label)

    if kind == "availability":
        return await availability_report(store, site.site, months(first, last, zone),
                                         progress=stage("devices"), as_of=now)
    period = whole_range(first, last, zone)
    if kind == "sla":
        return await sla_report(store, site.site, period, as_of=now)
    if kind == "service":
        return await service_report(store, site.site, period, progress=stage("tickets"))
    raise ValueError(f"unknown report {kind!r} (reports: {', '.join(KINDS)})")


def document(report: Report, site: SiteInfo, now: float) -> documents.Document:
    if isinstance(report, AvailabilityReport):
        return documents.availability_document(report, site, now)
    if isinstance(report, SlaReport):
        return documents.sla_document(report, site, now)
    return documents.service_document(report, site, now)


def html(report: Report, site: SiteInfo, now: float) -> str:
    if isinstance(report, AvailabilityReport):
        return render.availability_html(report, site, now)
    if isinstance(report, SlaReport):
        return render.sla_html(report, site, now)
    return render.service_html(report, site, now)


def encode(report: Report, fmt: str, site: SiteInfo, now: float) -> bytes:
    """The report as a file: ``html``, ``csv`` (Excel's UTF-8 with BOM), ``pdf`` (raises
    render.PdfUnavailable without weasyprint) or ``json``."""
    if fmt == "json":
        return (json.dumps(document(report, site, now), ensure_ascii=False, indent=2)
                + "\n").encode("utf-8")
    if fmt == "csv":
        if isinstance(report, AvailabilityReport):
            return tables.availability_csv(report, site.language)
        if isinstance(report, SlaReport):
            return tables.sla_csv(report, site.language, site.timezone)
        return tables.service_csv(report, site.language, site.timezone)
    if fmt == "pdf":
        return render.to_pdf(html(report, site, now))
    if fmt == "html":
        return html(report, site, now).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")


def screen_tables(report: Report, site: SiteInfo) -> list[Table]:
    from elvwatch.exporters.reports import screen  # rich: only the command line draws tables

    if isinstance(report, AvailabilityReport):
        return screen.availability_tables(report, site)
    if isinstance(report, SlaReport):
        return screen.sla_tables(report, site)
    return screen.service_tables(report, site)


def filename(kind: str, site: SiteInfo, first: date, last: date, fmt: str) -> str:
    """ASCII, like the handover zip's names (site ids are identifiers)."""
    return f"{kind}-{site.site}-{first.isoformat()}-{last.isoformat()}.{fmt}"
