"""``elvwatch config schema``: the JSON Schema of a config file, for editors
(``# yaml-language-server: $schema=…``) and the configuration reference."""

from __future__ import annotations

import argparse
import sys

from elvwatch.cli.common import EXIT_OK, usage


def add_config_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``config`` command to the main parser's subparsers."""
    config = sub.add_parser("config", help="about config files: their JSON Schema")
    csub = config.add_subparsers(metavar="ACTION")
    schema = csub.add_parser("schema", help="print the JSON Schema of a config file")
    schema.set_defaults(func=cmd_schema)
    config.set_defaults(func=lambda _args: usage(config))


def cmd_schema(args: argparse.Namespace) -> int:
    # Imported here: the schema reads every probe's options model, which `elvwatch
    # --help` and `status` should not pay for.
    from elvwatch.config.json_schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK
