"""The ``elvwatch`` command line.

Exit codes: 0 success (for ``probe``: every check ok), 1 failure or a check not ok,
2 usage error.

The command modules import what their work needs (the store, the probe libraries, the
report renderers) when a command runs, not when the parser is built: ``elvwatch
--help`` and ``elvwatch status`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, load_or_report, usage
from elvwatch.cli.config import add_config_command
from elvwatch.cli.devices import cmd_devices_export, cmd_devices_import
from elvwatch.cli.links import add_link_command
from elvwatch.cli.probe import cmd_probe
from elvwatch.cli.reports import add_report_commands
from elvwatch.cli.status import cmd_status
from elvwatch.cli.tickets import add_ticket_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Migrations announce every step at INFO; only their problems are news.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return EXIT_FAIL
    return result


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (the manual page is made from it)."""
    p = argparse.ArgumentParser(prog="elvwatch", description=__doc__.splitlines()[0] if __doc__
                                else None)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="monitor the devices of a config file")
    run.add_argument("-c", "--config", type=Path, required=True)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="check a config file; print every error")
    check.add_argument("-c", "--config", type=Path, required=True)
    check.set_defaults(func=cmd_check)

    status = sub.add_parser("status", help="devices that are not up, and a per-site summary")
    status.add_argument("-c", "--config", type=Path, required=True)
    status.add_argument("--site")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    probe = sub.add_parser("probe", help="run a device's checks now, or probe a URL")
    probe.add_argument("target", help="a device id from the config, or a URL: icmp://HOST, "
                                      "tcp://HOST:PORT")
    probe.add_argument("-c", "--config", type=Path)
    probe.add_argument("--kind", help="device kind of an ad-hoc URL")
    probe.add_argument("--timeout", type=float,
                       help="seconds per check of a URL (default 5; onvif:// 10, its least)")
    probe.add_argument("--json", action="store_true")
    probe.set_defaults(func=cmd_probe)

    demo = sub.add_parser("demo", help="serve a simulated community and monitor it")
    demo.add_argument("--listen", default="127.0.0.1:9780")
    demo.add_argument("--dir", type=Path, help="where to keep the demo's config and database")
    demo.add_argument("--duration", type=float, default=0.0,
                      help="stop after this many seconds (0: run until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)

    devices = sub.add_parser("devices", help="import or export the equipment archive")
    dsub = devices.add_subparsers(metavar="ACTION")
    imp = dsub.add_parser("import", help="CSV/XLSX spreadsheet → inventory YAML")
    imp.add_argument("file", type=Path)
    imp.add_argument("--site", help="site id for rows that name none")
    imp.add_argument("-o", "--output", type=Path, help="YAML file to write (default stdout)")
    imp.set_defaults(func=cmd_devices_import)
    exp = dsub.add_parser("export", help="the config's devices as CSV")
    exp.add_argument("-c", "--config", type=Path, required=True)
    exp.add_argument("-o", "--output", type=Path, help="CSV file to write (default stdout)")
    exp.add_argument("--lang", choices=["en", "zh-CN"], default="en")
    exp.set_defaults(func=cmd_devices_export)
    devices.set_defaults(func=lambda _args: usage(devices))

    add_ticket_commands(sub)
    add_report_commands(sub)
    add_link_command(sub)
    add_config_command(sub)
    return p


def cmd_check(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_FAIL
    print(config.summary())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from elvwatch.cli.run import run_daemon

    if load_or_report(args.config) is None:
        return EXIT_FAIL
    return asyncio.run(run_daemon(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from elvwatch.cli.demo import run_demo

    return asyncio.run(run_demo(args.listen, args.dir, args.duration))


if __name__ == "__main__":
    sys.exit(main())
