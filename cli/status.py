"""``elvwatch status``: devices that are not up and a per-site summary, from the running
daemon's API or, when it cannot be reached, as last stored."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, load_or_report

if TYPE_CHECKING:
    from elvwatch.config.resolved import Config

STATE_ORDER = {"down": 0, "degraded": 1, "unknown": 2, "up": 3}


def cmd_status(args: argparse.Namespace) -> int:
    config = load_or_report(args.config, secrets=False)
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
    import urllib.error
    import urllib.request

    http = config.model.http
    host = "127.0.0.1" if http.host in ("0.0.0.0", "") else http.host
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{http.port}/api/v1/devices"
    request = urllib.request.Request(url)
    from elvwatch.web.links import read_token

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
    import asyncio

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
