"""The contract handover package: every record of a site and contract period in one zip.

At the end of the contract the maintenance company hands the property company all
records (维护方案 3.3: "提交所有相关记录，包括项目服务记录和服务回执单").  The zip holds

* ``00-cover``: the cover page (维护资料移交清单) listing what the package holds, with
  room for both parties' signatures;
* ``01-availability`` 设备运行情况记录, ``02-sla`` 服务水平报告, ``03-service`` 服务记录 with
  one 服务回执单 per visit and 用户回访反馈信息表 (also ``03-feedback.csv``), ``04-archive``
  设备档案, ``05-audit`` every ticket's audit trail (工单处理记录), ``06-state-log`` every
  device state change (设备状态变化记录) — each as HTML and CSV (and PDF when
  weasyprint works; the cover as HTML and PDF);
* ``07-photos/``: the photos taken on the site's tickets in the period, up to a total
  size (exporters/reports/handover_photos.py: the rest are listed, not included);
* ``manifest.json`` listing every file with its size and SHA-256 so the receiving side
  can check nothing was lost or altered, and every photo with its ticket, caption and
  who took it when (``name`` in the zip, or ``omitted`` with the reason).

File names are ASCII (zip tools on Windows still mangle UTF-8 names); the manifest and
the cover give each file's title in the site's language.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from elvwatch.exporters.reports import render, tables
from elvwatch.exporters.reports.availability import (
    AvailabilityReport,
    Progress,
    availability_report,
)
from elvwatch.exporters.reports.handover_photos import (
    MAX_BYTES,
    HandoverPhoto,
    read_photos,
    site_photos,
)
from elvwatch.exporters.reports.logs import Logs, site_logs
from elvwatch.exporters.reports.periods import Period, months, whole_range
from elvwatch.exporters.reports.render import CoverLine, SiteInfo
from elvwatch.exporters.reports.service import (
    ArchiveRow,
    ServiceReport,
    archive_rows,
    service_report,
)
from elvwatch.exporters.reports.sla import SlaReport, sla_report
from elvwatch.exporters.reports.words import word
from elvwatch.tickets.store import Store


@dataclass(frozen=True, slots=True)
class HandoverContents:
    period: Period
    availability: AvailabilityReport
    sla: SlaReport
    service: ServiceReport
    archive: tuple[ArchiveRow, ...]
    logs: Logs
    photos: tuple[HandoverPhoto, ...] = ()


async def collect(store: Store, site: SiteInfo, first: date, last: date, now: float, *,
                  counter: Callable[[str], Progress] | None = None,
                  photos_dir: Path | None = None) -> HandoverContents:
    """Every record of the period; ``counter(stage)`` gives a ``(done, total)`` progress
    callback for the long stages ("devices": availability, "tickets": service records).
    The ticket photos are read from ``photos_dir`` (None: listed, not included)."""
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
        tuple(await archive_rows(store, site.site, last)),
        await site_logs(store, site.site, period),
        await asyncio.to_thread(read_photos, await site_photos(store, site.site, period),
                                photos_dir))


def handover_zip(contents: HandoverContents, site: SiteInfo, generated_at: float, *,
                 pdf: bool, progress: Progress | None = None) -> bytes:
    """The package as zip bytes; ``pdf`` False leaves the PDF copies out.  The PDFs take
    most of the time: ``progress(done, total)`` counts them."""
    lang, tz, c = site.language, site.timezone, contents
    sheets = sum(len(e.sheets) for e in c.service.entries)
    documents = {   # stem: (title key, HTML, CSV files, records)
        "01-availability": ("availability_title",
                            render.availability_html(c.availability, site, generated_at),
                            {"01-availability.csv": tables.availability_csv(c.availability,
                                                                            lang)},
                            len(c.availability.rows)),
        "02-sla": ("sla_title", render.sla_html(c.sla, site, generated_at),
                   {"02-sla.csv": tables.sla_csv(c.sla, lang, tz)},
                   len(c.sla.tickets) + len(c.sla.work_orders)),
        "03-service": ("service_forms_title",
                       render.service_html(c.service, site, generated_at),
                       {"03-service.csv": tables.service_csv(c.service, lang, tz),
                        "03-feedback.csv": tables.feedback_csv(c.service, lang, tz)},
                       sheets + len(c.service.feedback)),
        "04-archive": ("archive_title",
                       render.archive_html(list(c.archive), site, generated_at),
                       {"04-archive.csv": tables.archive_csv(c.archive, lang)},
                       len(c.archive)),
        "05-audit": ("audit_title", render.audit_html(c.logs, site, generated_at),
                     {"05-audit.csv": tables.audit_csv(c.logs, lang, tz,
                                                       site.checklist_items)},
                     sum(len(t.events) for t in c.logs.trails)),
        "06-state-log": ("state_log_title", render.state_log_html(c.logs, site, generated_at),
                         {"06-state-log.csv": tables.state_log_csv(c.logs, lang, tz)},
                         len(c.logs.changes)),
    }
    kinds = ("html", "pdf") if pdf else ("html",)
    lines = [CoverLine(word(key, lang),
                       tuple(f"{stem}.{k}" for k in kinds) + tuple(sorted(csv)), count)
             for stem, (key, _, csv, count) in documents.items()]
    kept = [p for p in c.photos if p.data is not None]
    lines.append(CoverLine(word("photos_title", lang), ("07-photos/",), len(kept)))
    left_out = len(c.photos) - len(kept)
    notes = [word("photos_omitted", lang).format(n=left_out, mb=MAX_BYTES // 2**20)] \
        if left_out else []
    pages = {"00-cover": ("cover_title",
                          render.cover_html(lines, site, c.period, generated_at, notes))}
    pages.update({stem: (key, html) for stem, (key, html, _, _) in documents.items()})
    files: dict[str, tuple[str, bytes]] = {}
    for done, (stem, (key, text)) in enumerate(pages.items(), 1):
        files[f"{stem}.html"] = (key, text.encode("utf-8"))
        if pdf:
            files[f"{stem}.pdf"] = (key, render.to_pdf(text))
            if progress is not None:
                progress(done, len(pages))
    for _, (key, _, csv, _) in documents.items():
        files.update({name: (key if name != "03-feedback.csv" else "feedback_title", data)
                      for name, data in csv.items()})
    files.update({p.name: ("photos_title", p.data) for p in kept if p.data is not None})
    zone = ZoneInfo(tz)
    manifest = {
        "site": site.site, "site_name": site.name, "language": lang,
        "period": {"label": c.period.label,
                   "start": datetime.fromtimestamp(c.period.start, zone).isoformat(),
                   "end": datetime.fromtimestamp(c.period.end, zone).isoformat()},
        "generated_at": datetime.fromtimestamp(generated_at, zone).isoformat(),
        "counts": {"devices": len(c.archive),
                   "fault_tickets": len(c.sla.tickets),
                   "breaches": len(c.sla.breaches),
                   "work_orders": len(c.sla.work_orders),
                   "service_entries": len(c.service.entries),
                   "service_receipts": sheets,
                   "feedback": len(c.service.feedback),
                   "audit_events": sum(len(t.events) for t in c.logs.trails),
                   "state_changes": len(c.logs.changes),
                   "photos": len(kept), "photos_omitted": left_out},
        "files": [{"name": name, "title": word(key, lang), "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest()}
                  for name, (key, data) in sorted(files.items())],
        "photos": [p.manifest(tz) for p in c.photos],
    }
    stamp = datetime.fromtimestamp(generated_at, zone).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (_, data) in sorted(files.items()):
            # A JPEG or PNG is compressed already: stored as it is.
            method = zipfile.ZIP_STORED if name.startswith("07-photos/") \
                else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(name, stamp), data, method)
        archive.writestr(zipfile.ZipInfo("manifest.json", stamp),
                         json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"),
                         zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
