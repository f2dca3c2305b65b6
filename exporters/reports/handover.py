"""The contract handover package: every record of a site and contract period in one zip.

At the end of the contract the maintenance company hands the property company all
records (维护方案 3.3: "提交所有相关记录，包括项目服务记录和服务回执单").  The zip holds
each report as HTML and CSV (and PDF when weasyprint works), the equipment archive,
and ``manifest.json`` listing every file with its size and SHA-256 so the receiving
side can check nothing was lost or altered.  File names are ASCII (zip tools on
Windows still mangle UTF-8 names); the manifest gives each file's title in the site's
language.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from exporters.reports import render, tables
from exporters.reports.availability import AvailabilityReport, Progress, availability_report
from exporters.reports.periods import Period, months, whole_range
from exporters.reports.render import SiteInfo
from exporters.reports.service import ArchiveRow, ServiceReport, archive_rows, service_report
from exporters.reports.sla import SlaReport, sla_report
from exporters.reports.words import word
from tickets.store import Store


@dataclass(frozen=True, slots=True)
class HandoverContents:
    period: Period
    availability: AvailabilityReport
    sla: SlaReport
    service: ServiceReport
    archive: tuple[ArchiveRow, ...]


async def collect(store: Store, site: SiteInfo, first: date, last: date, now: float, *,
                  counter: Callable[[str], Progress] | None = None) -> HandoverContents:
    """Every record of the period; ``counter(stage)`` gives a ``(done, total)`` progress
    callback for the long stages ("devices": availability, "tickets": service records)."""
    zone = ZoneInfo(site.timezone)
    period = whole_range(first, last, zone)

    def stage(label: str) -> Progress | None:
        return None if counter is None else counter(label)

    return HandoverContents(
        period,
        await availability_report(store, site.site, months(first, last, zone),
                                  progress=stage("devices"), as_of=now),
        await sla_report(store, site.site, period, as_of=now),
        await service_report(store, site.site, period, progress=stage("tickets")),
        tuple(await archive_rows(store, site.site, last)))


def handover_zip(contents: HandoverContents, site: SiteInfo, generated_at: float, *,
                 pdf: bool, progress: Progress | None = None) -> bytes:
    """The package as zip bytes; ``pdf`` False leaves the PDF copies out.  The PDFs take
    most of the time: ``progress(done, total)`` counts them."""
    lang, tz = site.language, site.timezone
    html = {
        "01-availability": ("availability_title",
                            render.availability_html(contents.availability, site,
                                                     generated_at)),
        "02-sla": ("sla_title", render.sla_html(contents.sla, site, generated_at)),
        "03-service": ("service_title",
                       render.service_html(contents.service, site, generated_at)),
        "04-archive": ("archive_title",
                       render.archive_html(list(contents.archive), site, generated_at)),
    }
    csv = {
        "01-availability.csv": ("availability_title",
                                tables.availability_csv(contents.availability, lang)),
        "02-sla.csv": ("sla_title", tables.sla_csv(contents.sla, lang, tz)),
        "03-service.csv": ("service_title", tables.service_csv(contents.service, lang, tz)),
        "03-feedback.csv": ("feedback_title",
                            tables.feedback_csv(contents.service, lang, tz)),
        "04-archive.csv": ("archive_title", tables.archive_csv(contents.archive, lang)),
    }
    files: dict[str, tuple[str, bytes]] = {}
    for done, (stem, (key, text)) in enumerate(html.items(), 1):
        files[f"{stem}.html"] = (key, text.encode("utf-8"))
        if pdf:
            files[f"{stem}.pdf"] = (key, render.to_pdf(text))
            if progress is not None:
                progress(done, len(html))
    files.update(csv)
    manifest = {
        "site": site.site, "site_name": site.name, "language": lang,
        "period": {"label": contents.period.label,
                   "start": datetime.fromtimestamp(contents.period.start,
                                                   ZoneInfo(tz)).isoformat(),
                   "end": datetime.fromtimestamp(contents.period.end, ZoneInfo(tz)).isoformat()},
        "generated_at": datetime.fromtimestamp(generated_at, ZoneInfo(tz)).isoformat(),
        "counts": {"devices": len(contents.archive),
                   "fault_tickets": len(contents.sla.tickets),
                   "breaches": len(contents.sla.breaches),
                   "service_entries": len(contents.service.entries),
                   "feedback": len(contents.service.feedback)},
        "files": [{"name": name, "title": word(key, lang), "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest()}
                  for name, (key, data) in sorted(files.items())],
    }
    stamp = datetime.fromtimestamp(generated_at, ZoneInfo(tz)).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (_, data) in sorted(files.items()):
            archive.writestr(zipfile.ZipInfo(name, stamp), data, zipfile.ZIP_DEFLATED)
        archive.writestr(zipfile.ZipInfo("manifest.json", stamp),
                         json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"),
                         zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
