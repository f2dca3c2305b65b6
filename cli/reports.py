"""``elvwatch brief …`` and ``elvwatch report …``: the contract's records from the store.

``--from``/``--to`` are local dates of the site's time zone, both included.  Reports go
to ``-o FILE`` or stdout (bytes for CSV/PDF); a handover package needs ``-o`` or is
written to ``handover-SITE-FROM-TO.zip``.  Without ``--format`` a report printed to a
terminal is a table (``text``), anything else HTML; ``--json`` prints the document of
exporters/reports/documents.py (for ``handover``: the package's manifest).  Progress
bars go to stderr and only when it is a terminal, so a pipe or a log stays clean.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from elvwatch.config.resolved import (
        Config,  # the report modules load on use: other commands start faster
    )
    from elvwatch.exporters.reports.render import SiteInfo
    from elvwatch.exporters.terminal import Progress, Table

KINDS = ("availability", "sla", "service", "handover")  # catalog.KINDS and the package


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
    shape = report.add_mutually_exclusive_group()
    shape.add_argument("--format", choices=["html", "csv", "pdf", "text"],
                       help="default: text on a terminal, html otherwise")
    shape.add_argument("--json", action="store_true",
                       help="the report as one JSON document (handover: its manifest)")
    report.add_argument("-o", "--output", type=Path)
    report.add_argument("--no-pdf", action="store_true",
                        help="handover: leave the PDF copies out")
    report.set_defaults(func=cmd_report)


def _site(config: Config, site_id: str) -> SiteInfo:
    from elvwatch.config.terms import site_info

    if site_id not in config.sites:
        raise KeyError(f"no site {site_id!r} in {config.path} "
                       f"(sites: {', '.join(sorted(config.sites)) or 'none'})")
    return site_info(config, site_id)


def _load(path: Path, site_id: str) -> tuple[Config, SiteInfo] | int:
    """The config and the site, or the exit code after saying what is wrong."""
    from elvwatch.config.loading import ConfigInvalid, load_config

    try:
        config = load_config(path, secrets=False)  # the store is all a report reads
        return config, _site(config, site_id)
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL
    except KeyError as exc:
        print(f"elvwatch: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE


def cmd_brief(args: argparse.Namespace) -> int:
    import asyncio

    from elvwatch.exporters.reports.brief import Contact, build_brief
    from elvwatch.exporters.reports.render import brief_html
    from elvwatch.exporters.reports.tables import brief_text
    from elvwatch.tickets.store import Store, StoreError

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
                                      now=time.time(), timezone=info.timezone,
                                      address=info.address)
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
    import asyncio

    from elvwatch.exporters import terminal
    from elvwatch.exporters.reports.render import PdfUnavailable
    from elvwatch.tickets.store import StoreError

    loaded = _load(args.config, args.site)
    if isinstance(loaded, int):
        return loaded
    config, info = loaded
    if args.last < args.first:
        print(f"elvwatch: --to {args.last} is before --from {args.first}", file=sys.stderr)
        return EXIT_USAGE
    fmt = "json" if args.json else args.format or (
        "text" if args.output is None and terminal.is_terminal(sys.stdout) else "html")
    try:
        with terminal.Progress() as bars:
            data = asyncio.run(_report(args, info, config.storage_url, fmt, bars,
                                       config.photos_dir))
    except (StoreError, PdfUnavailable) as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL
    output = args.output
    if output is None and args.kind == "handover":
        output = Path(f"handover-{info.site}-{args.first}-{args.last}.zip")
    try:
        if isinstance(data, list):      # --format text
            if output is None:
                terminal.write(data)
            else:
                with output.open("w", encoding="utf-8") as out:
                    terminal.write(data, out, rich=False)
        elif output is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            output.write_bytes(data)
            print(f"wrote {output} ({len(data)} bytes)", file=sys.stderr)
    except OSError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.kind == "handover" and isinstance(data, bytes) and (
            fmt in ("json", "text") or terminal.is_terminal(sys.stdout)):
        _print_manifest(data, as_json=fmt == "json")
    return EXIT_OK


def _print_manifest(package: bytes, *, as_json: bool) -> None:
    """The handover package's manifest: as JSON, or as a table of its files."""
    from elvwatch.exporters import terminal

    with zipfile.ZipFile(io.BytesIO(package)) as z:
        manifest = json.loads(z.read("manifest.json"))
    if as_json:
        print(json.dumps(manifest, ensure_ascii=False, indent=2))
        return
    terminal.write([terminal.table(
        ["FILE", "TITLE", "BYTES", "SHA-256"],
        [[f["name"], f["title"], str(f["bytes"]), f["sha256"][:16]] for f in manifest["files"]],
        title=f"{manifest['site_name']} · {manifest['period']['label']}", right=(2,))])


async def _report(args: argparse.Namespace, info: SiteInfo, url: str, fmt: str,
                  bars: Progress, photos_dir: Path) -> bytes | list[Table]:
    """The report as the bytes of a file, or as tables for ``--format text``."""
    from elvwatch.exporters.reports import catalog, handover
    from elvwatch.tickets.store import Store

    now = time.time()
    async with await Store.open(url) as store:
        if args.kind == "handover":
            contents = await handover.collect(store, info, args.first, args.last, now,
                                              counter=bars.counter, photos_dir=photos_dir)
        else:
            report = await catalog.compute(store, args.kind, info, args.first, args.last, now,
                                           counter=bars.counter)
    if args.kind == "handover":
        return handover.handover_zip(contents, info, now, pdf=not args.no_pdf,
                                     progress=bars.counter("PDF"))
    if fmt == "text":
        return catalog.screen_tables(report, info)
    return catalog.encode(report, fmt, info, now)
