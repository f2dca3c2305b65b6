"""``elvwatch brief …`` and ``elvwatch report …``: the contract's records from the store.

``--from``/``--to`` are local dates of the site's time zone, both included.  Reports go
to ``-o FILE`` or stdout (bytes for CSV/PDF); a handover package needs ``-o`` or is
written to ``handover-SITE-FROM-TO.zip``.  Progress goes to stderr, so stdout stays
clean for a pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING
from zoneinfo import ZoneInfo

from daemon.config import Config, ConfigInvalid, load_config

if TYPE_CHECKING:  # the report modules load on use: other commands start faster
    from exporters.reports.render import SiteInfo

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
KINDS = ("availability", "sla", "service", "handover")


def add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``brief`` and ``report`` commands to the main parser's subparsers."""
    brief = sub.add_parser("brief", help="pre-visit brief of a site: what to fix, where, "
                                         "with which parts")
    brief.add_argument("-c", "--config", type=Path, required=True)
    brief.add_argument("--site", required=True)
    brief.add_argument("--html", type=Path, help="also write a printable HTML page here")
    brief.set_defaults(func=cmd_brief)

    report = sub.add_parser("report", help="equipment operation record, SLA, service "
                                           "records, contract handover package")
    report.add_argument("kind", choices=KINDS)
    report.add_argument("-c", "--config", type=Path, required=True)
    report.add_argument("--site", required=True)
    report.add_argument("--from", dest="first", type=date.fromisoformat, required=True,
                        metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="last", type=date.fromisoformat, required=True,
                        metavar="YYYY-MM-DD", help="last day included")
    report.add_argument("--format", choices=["html", "csv", "pdf"], default="html")
    report.add_argument("-o", "--output", type=Path)
    report.add_argument("--no-pdf", action="store_true",
                        help="handover: leave the PDF copies out")
    report.set_defaults(func=cmd_report)


class Progress:
    """``label done/total`` on stderr, redrawn in place on a terminal."""

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        # Off a terminal only every tenth of the way, not one line per device.
        step = max(1, total // 10)
        if not self.tty and done != total and done - self._last < step:
            return
        self._last = done
        end = "\r" if self.tty and done != total else "\n"
        print(f"{self.label}: {done}/{total} devices", end=end, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream, flush=True)


def _site(config: Config, site_id: str) -> SiteInfo:
    from daemon.terms import site_terms
    from exporters.reports.render import SiteInfo

    site = config.sites.get(site_id)
    if site is None:
        raise KeyError(f"no site {site_id!r} in {config.path} "
                       f"(sites: {', '.join(sorted(config.sites)) or 'none'})")
    terms = site_terms(config)[site_id]
    return SiteInfo(site_id, site.name, site.language, terms.timezone)


def _load(path: Path, site_id: str) -> tuple[Config, SiteInfo] | int:
    """The config and the site, or the exit code after saying what is wrong."""
    try:
        config = load_config(path)
        return config, _site(config, site_id)
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL
    except KeyError as exc:
        print(f"elvwatch: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE


def cmd_brief(args: argparse.Namespace) -> int:
    from exporters.reports.brief import Contact, build_brief
    from exporters.reports.render import brief_html
    from exporters.reports.tables import brief_text
    from tickets.store import Store, StoreError

    loaded = _load(args.config, args.site)
    if isinstance(loaded, int):
        return loaded
    config, info = loaded
    contacts = [Contact(c.name, c.role, c.phone, c.email)
                for c in config.sites[args.site].contacts]

    async def run() -> str:
        async with await Store.open(config.storage_url) as store:
            brief = await build_brief(store, info.site, site_name=info.name,
                                      language=info.language, contacts=contacts,
                                      now=time.time(), timezone=info.timezone)
        if args.html:
            args.html.write_text(brief_html(brief, info), encoding="utf-8")
        return brief_text(brief)

    try:
        sys.stdout.write(asyncio.run(run()))
    except (StoreError, OSError) as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from exporters.reports.render import PdfUnavailable
    from tickets.store import StoreError

    loaded = _load(args.config, args.site)
    if isinstance(loaded, int):
        return loaded
    config, info = loaded
    if args.last < args.first:
        print(f"elvwatch: --to {args.last} is before --from {args.first}", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = asyncio.run(_report(args, info, config.storage_url))
    except (StoreError, PdfUnavailable) as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL
    output = args.output
    if output is None and args.kind == "handover":
        output = Path(f"handover-{info.site}-{args.first}-{args.last}.zip")
    try:
        if output is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            output.write_bytes(data)
            print(f"wrote {output} ({len(data)} bytes)", file=sys.stderr)
    except OSError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


async def _report(args: argparse.Namespace, info: SiteInfo, url: str) -> bytes:
    from exporters.reports import handover, render, tables
    from exporters.reports.availability import availability_report
    from exporters.reports.periods import months, whole_range
    from exporters.reports.service import service_report
    from exporters.reports.sla import sla_report
    from tickets.store import Store

    zone, now = ZoneInfo(info.timezone), time.time()
    progress = Progress(args.kind)
    lang, tz = info.language, info.timezone
    async with await Store.open(url) as store:
        if args.kind == "handover":
            contents = await handover.collect(store, info, args.first, args.last, now,
                                              progress=progress)
            pdf = not args.no_pdf
            return handover.handover_zip(contents, info, now, pdf=pdf,
                                         on_file=lambda name: progress.note(f"rendering {name}"))
        period = whole_range(args.first, args.last, zone)
        if args.kind == "availability":
            report = await availability_report(store, info.site,
                                               months(args.first, args.last, zone),
                                               progress=progress)
            if args.format == "csv":
                return tables.availability_csv(report, lang)
            html = render.availability_html(report, info, now)
        elif args.kind == "sla":
            sla = await sla_report(store, info.site, period, as_of=now)
            if args.format == "csv":
                return tables.sla_csv(sla, lang, tz)
            html = render.sla_html(sla, info, now)
        else:
            service = await service_report(store, info.site, period)
            if args.format == "csv":
                return tables.service_csv(service, lang, tz)
            html = render.service_html(service, info, now)
    if args.format == "pdf":
        progress.note("rendering PDF")
        return render.to_pdf(html)
    return html.encode("utf-8")
