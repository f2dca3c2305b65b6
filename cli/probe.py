"""``elvwatch probe``: run a device's checks now, or probe a URL."""

from __future__ import annotations

import argparse
import json
import os
import sys

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, load_or_report


def cmd_probe(args: argparse.Namespace) -> int:
    import asyncio

    from elvwatch.probes.adhoc import UsageError, parse_target, probe_all, probe_result

    if "://" in args.target:
        try:
            # A person's own shell: the ELVWATCH_* secrets docs/commands.md names may come from it.
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
        config = load_or_report(args.config)
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
