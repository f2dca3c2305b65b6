"""``elvwatch devices import|export``: the equipment archive (设备档案) as spreadsheets."""

from __future__ import annotations

import argparse
import sys

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, load_or_report


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

    config = load_or_report(args.config, secrets=False)
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
