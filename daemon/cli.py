"""The ``elvwatch`` command line.

Exit codes: 0 success (for ``probe``: every check ok), 1 failure or a check not ok,
2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.config.resolved import Config
from elvwatch.daemon.links import read_token

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
STATE_ORDER = {"down": 0, "degraded": 1, "unknown": 2, "up": 3}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
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


def _parser() -> argparse.ArgumentParser:
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
    devices.set_defaults(func=lambda _args: _usage(devices))

    from elvwatch.daemon.cli_tickets import add_ticket_commands

    add_ticket_commands(sub)

    from elvwatch.daemon.cli_reports import add_report_commands

    add_report_commands(sub)

    from elvwatch.daemon.cli_links import add_link_command

    add_link_command(sub)
    return p


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _load(path: Path, *, secrets: bool = True) -> Config | None:
    """The config, or None after printing its errors.  ``secrets=False`` for commands
    that read the store or the daemon, never a device (see load_config)."""
    try:
        return load_config(path, secrets=secrets)
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {path}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_FAIL
    print(config.summary())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from elvwatch.daemon.app import run_daemon

    if _load(args.config) is None:
        return EXIT_FAIL
    return asyncio.run(run_daemon(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    from elvwatch.daemon.demo import run_demo

    return asyncio.run(run_demo(args.listen, args.dir, args.duration))


# -- status ------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args.config, secrets=False)
    if config is None:
        return EXIT_FAIL
    source, devices = _status_devices(config)
    if args.site:
        if args.site not in config.sites:
            print(f"unknown site {args.site!r}", file=sys.stderr)
            return EXIT_USAGE
        devices = [d for d in devices if d["site"] == args.site]
    if args.json:
        print(json.dumps({"source": source, "devices": devices}, ensure_ascii=False, indent=2))
        return EXIT_OK
    from elvwatch.exporters import terminal

    if source != "daemon":
        terminal.lines([terminal.Styled(
            f"(daemon not reachable; states as last stored in {source})", "yellow")])
    bad = sorted((d for d in devices if d["state"] != "up"),
                 key=lambda d: (STATE_ORDER.get(d["state"], 9), d["site"], d["id"]))
    now = time.time()
    rows = [[d["id"], d["site"], d["system"], d["kind"], terminal.state(d["state"]),
             _ago(d.get("since"), now), d.get("location") or "", (d.get("cause") or "")[:60]]
            for d in bad]
    per_site: dict[str, Counter[str]] = {}
    for d in devices:
        per_site.setdefault(d["site"], Counter())[d["state"]] += 1
    summary = terminal.table(
        ["SITE", "UP", "DEGRADED", "DOWN", "UNKNOWN", "TOTAL"],
        [[site, *(str(c[s]) for s in ("up", "degraded", "down", "unknown")),
          str(sum(c.values()))] for site, c in sorted(per_site.items())],
        right=range(1, 6))
    if rows:
        terminal.write([terminal.table(["DEVICE", "SITE", "SYSTEM", "KIND", "STATE", "SINCE",
                                        "LOCATION", "CAUSE"], rows), summary])
    else:
        terminal.lines([terminal.Styled("every device is up", "green"), ""])
        terminal.write([summary])
    return EXIT_OK


def _status_devices(config: Config) -> tuple[str, list[dict[str, Any]]]:
    http = config.model.http
    host = "127.0.0.1" if http.host in ("0.0.0.0", "") else http.host
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{http.port}/api/v1/devices"
    request = urllib.request.Request(url)
    token = read_token(http.token_file)
    if token:  # needed when the daemon keeps loopback reads closed (http.loopback_reads)
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as resp:
            data = json.load(resp)
        return "daemon", list(data["devices"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        pass
    return _stored_states(config)


def _stored_states(config: Config) -> tuple[str, list[dict[str, Any]]]:
    from elvwatch.tickets.store import Store

    async def read() -> dict[str, Any]:
        store = await Store.open(config.storage_url)
        try:
            return dict(await store.current_states())
        finally:
            await store.close()

    states = asyncio.run(read())
    out = []
    for device in config.devices.values():
        state, since, cause = states.get(device.id, ("unknown", None, ""))
        cfg = device.config
        out.append({"id": cfg.id, "name": cfg.name, "site": cfg.site,
                    "system": device.system.value, "kind": cfg.kind, "host": cfg.host,
                    "location": str(cfg.location) if cfg.location else None,
                    "state": str(state), "since": since, "cause": cause})
    from sqlalchemy.engine import make_url

    return make_url(config.storage_url).render_as_string(hide_password=True), out


def _ago(since: float | None, now: float) -> str:
    if not since:
        return "-"
    seconds = max(0, int(now - since))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


# -- probe -------------------------------------------------------------------------
def cmd_probe(args: argparse.Namespace) -> int:
    from elvwatch.daemon.adhoc import UsageError, parse_target, probe_all, probe_result

    if "://" in args.target:
        try:
            # A person's own shell: the ELVWATCH_* secrets of the README may come from it.
            adhoc = parse_target(args.target, args.kind, timeout=args.timeout, env=os.environ)
        except UsageError as exc:
            print(f"elvwatch probe: {exc}", file=sys.stderr)
            return EXIT_USAGE
        name, kind, target, checks = adhoc.url, adhoc.kind, adhoc.target, adhoc.checks
        plan = adhoc.plan
    else:
        if args.config is None:
            print("elvwatch probe: a device id needs -c CONFIG (or give a URL)", file=sys.stderr)
            return EXIT_USAGE
        config = _load(args.config)
        if config is None:
            return EXIT_FAIL
        device = config.devices.get(args.target)
        if device is None:
            print(f"elvwatch probe: no device {args.target!r} in {args.config}",
                  file=sys.stderr)
            return EXIT_USAGE
        name, kind, target, checks = device.id, device.config.kind, device.target, \
            device.checks
        plan = None
    observations = asyncio.run(probe_all(target, checks, plan))
    result = probe_result(name, kind, observations)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        from elvwatch.exporters import terminal

        rows: list[list[terminal.Cell]] = []
        for obs in observations:
            values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in obs.values.items())
            latency = f"{obs.latency * 1000:.1f}ms" if obs.latency is not None else "-"
            rows.append([obs.check, terminal.state(obs.status.value), latency, values,
                         obs.error or ""])
        info = result["info"]
        assert isinstance(info, dict)
        shown = [f"  {key:<13} {value}" for key, value in info.items() if value]
        terminal.lines([terminal.Styled(f"{name}  ({kind})  {result['status']}", "bold"),
                        *shown])
        terminal.write([terminal.table(["CHECK", "STATUS", "LATENCY", "VALUES", "ERROR"],
                                       rows, right=[2])])
    return EXIT_OK if result["status"] == "ok" else EXIT_FAIL


# -- devices -----------------------------------------------------------------------
def cmd_devices_import(args: argparse.Namespace) -> int:
    from elvwatch.config.inventory import InventoryError, devices_yaml, import_devices
    from elvwatch.exporters import terminal

    try:
        with terminal.Progress() as bars:   # a bar on a terminal's stderr, else silent
            result = import_devices(args.file, site=args.site,
                                    progress=bars.counter(args.file.name))
    except InventoryError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in result.warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    for error in result.errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    # The good rows are written even when some are rejected; the exit code tells scripts.
    text = devices_yaml(result.devices, source=args.file.name)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    print(f"imported {len(result.devices)} devices from {args.file}; "
          f"{len(result.errors)} rows with errors", file=sys.stderr)
    return EXIT_OK if not result.errors else EXIT_FAIL


def cmd_devices_export(args: argparse.Namespace) -> int:
    from elvwatch.config.inventory import export_devices

    config = _load(args.config, secrets=False)
    if config is None:
        return EXIT_FAIL
    if args.output:
        # The BOM makes Excel read the Chinese text right.
        with args.output.open("w", encoding="utf-8-sig", newline="") as out:
            count = export_devices(config, out, language=args.lang)
        print(f"exported {count} devices to {args.output}", file=sys.stderr)
    else:
        export_devices(config, sys.stdout, language=args.lang)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
