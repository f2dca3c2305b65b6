"""``python -m elvwatch.lab serve`` — a lab fleet plus its control API until SIGINT/SIGTERM.

``python -m elvwatch.lab camera|snmp`` serve one protocol simulator
(``elvwatch.lab.servers``); ``python -m elvwatch.lab modbus|sip|mqtt ARGS`` run
``python -m elvwatch.lab.modbus|sip|mqtt ARGS``.

Once everything listens it prints one line (flushed), which tests and benchmarks wait
for::

    lab ready: http://127.0.0.1:9790 devices=50 hosts=127.1.0.1-127.1.0.50 ports=8080
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import yaml

from elvwatch.lab import servers
from elvwatch.lab.control import ControlServer, require_loopback
from elvwatch.lab.devices import DEFAULT_FIRST, LabError, LabFleet, lab_checks

READY_PREFIX = "lab ready:"


def _ports(text: str) -> list[int]:
    try:
        ports = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"ports must be numbers like 8080,8554: {text!r}") from None
    if not ports or any(not 1 <= p <= 65535 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be 1-65535: {text!r}")
    return ports


def _control(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--control must be HOST:PORT, not {text!r}")
    try:
        return require_loopback(host), int(port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m elvwatch.lab",
                                     description="Simulated devices for elvwatch.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a fleet and its control API")
    serve.add_argument("--count", type=int, default=10, help="number of devices")
    serve.add_argument("--first", default=DEFAULT_FIRST,
                       help="first loopback address (default %(default)s)")
    serve.add_argument("--ports", type=_ports, default=[8080],
                       help="TCP ports of every device, comma-separated")
    serve.add_argument("--control", type=_control, default=("127.0.0.1", 9790),
                       help="control API HOST:PORT, loopback only (port 0: any free)")
    serve.add_argument("--prefix", default="lab", help="device id prefix")
    serve.add_argument("--site", default="lab", help="site id in the written config")
    serve.add_argument("--kind", default="camera", help="kind in the written config")
    serve.add_argument("--write-config", type=Path, metavar="FILE",
                       help="write an elvwatch include file (devices:) for the fleet")
    serve.add_argument("--check", choices=("tcp", "icmp", "both"), default="tcp",
                       help="checks in the written config (tcp: the first port, "
                            "expecting the ELVLAB banner)")
    servers.add_commands(commands)
    return parser


def write_config(path: Path, fleet: LabFleet, site: str, kind: str, check: str) -> None:
    checks = lab_checks(check, fleet.ports[0])
    document = {"devices": fleet.config_devices(site, kind, checks)}
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None,
                          allow_unicode=True, width=120)
    path.write_text(text, encoding="utf-8")


async def serve(args: argparse.Namespace) -> int:
    fleet = LabFleet(args.count, args.first, args.ports, prefix=args.prefix)
    host, port = args.control
    control = ControlServer(fleet, host, port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await fleet.start()
        try:
            url = await control.start()
            if args.write_config is not None:
                write_config(args.write_config, fleet, args.site, args.kind, args.check)
            print(f"{READY_PREFIX} {url} devices={len(fleet)} "
                  f"hosts={fleet.first}-{fleet.last} "
                  f"ports={','.join(str(p) for p in fleet.ports)}", flush=True)
            await stopping.wait()
        finally:
            await control.stop()
            await fleet.stop()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("modbus", "sip", "mqtt"):
        return servers.delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    run = {"camera": servers.serve_camera, "snmp": servers.serve_snmp}.get(args.command, serve)
    try:
        return asyncio.run(run(args))
    except (LabError, OSError, ValueError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
