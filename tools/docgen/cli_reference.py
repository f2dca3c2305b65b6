"""The command-line reference and the man page, both from the ``elvwatch`` argparse parser.

``python -m tools.docgen.cli_reference --man [-o elvwatch.1]`` writes the man page
(argparse-manpage renders the parser as roff); without ``--man`` it prints the Markdown
reference page the docs build also generates.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from elvwatch.cli.main import build_parser
from tools.docgen import output

PROG = "elvwatch"
SUMMARY = ("monitoring for the weak-current (ELV) systems of residential communities")
EXIT_STATUS = """\
.TP
.B 0
success; for \\fBprobe\\fR: every check ok
.TP
.B 1
failure, or a check not ok
.TP
.B 2
usage error
"""
ENVIRONMENT = """\
Secrets never go on the command line or into the config file. The config names the
environment variables (or files) its credentials come from; \\fBelvwatch probe\\fR with
a URL reads
.BR ELVWATCH_SNMP_COMMUNITY ,
.BR ELVWATCH_SNMP_AUTH_KEY ,
.BR ELVWATCH_SNMP_PRIV_KEY ,
.BR ELVWATCH_ONVIF_PASSWORD ,
.B ELVWATCH_RTSP_PASSWORD
and
.BR ELVWATCH_MQTT_PASSWORD .
"""
DESCRIPTION = (
    "elvwatch watches CCTV cameras and NVRs, access control, intercom, alarm panels, PoE "
    "switches and UPSes over ICMP, TCP, SNMP, ONVIF, RTSP, Modbus TCP, SIP and MQTT, opens "
    "maintenance tickets with the deadlines of the maintenance contract, notifies, serves "
    "pages and reports, and exports Prometheus metrics. The commands below run the daemon "
    "(run, demo), check a config (check), ask devices now (probe), read the running daemon "
    "or its store (status, tickets, silence, report, brief) and make links for phones (link).")
SIGNALS = """\
\\fBelvwatch run\\fR reloads its config on SIGHUP (a config that cannot be put to work
leaves the running one in place) and drains running checks on SIGTERM.
"""


def parser() -> argparse.ArgumentParser:
    """The parser of the ``elvwatch`` command."""
    return build_parser()


def commands(root: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(``elvwatch tickets list``, its parser) for the root and every subcommand, depth
    first in the order they were added."""
    yield root.prog, root
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from commands(sub)


def _help(cmd: argparse.ArgumentParser) -> str:
    # Wrap as an 88-column terminal would, whatever terminal builds the docs.
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"
    try:
        return cmd.format_help().rstrip()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def markdown() -> str:
    lines = [
        "# Command line",
        "",
        "Every command and option of `elvwatch`, generated from its argument parser when",
        "the docs are built (the same parser gives `elvwatch … --help` and the man page,",
        "[`elvwatch.1`](../elvwatch.1): `man -l elvwatch.1`). What the commands do and",
        "print: [Commands](../commands.md).",
        "",
        "Exit codes: 0 success (for `probe`: every check ok), 1 failure or a check not ok,",
        "2 usage error.",
        "",
    ]
    for name, cmd in commands(parser()):
        lines += [f"## `{name}`", "", "```text", _help(cmd), "```", ""]
    return "\n".join(lines)


def manpage(version: str | None = None) -> str:
    from argparse_manpage.manpage import Manpage

    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            version = installed("elvwatch")
        except PackageNotFoundError:
            version = "unknown"
    cmd = parser()
    cmd.description = DESCRIPTION
    page = Manpage(cmd)
    page.source = f"{PROG} {version}"
    page.manual = "elvwatch manual"
    page.description = SUMMARY
    page.add_section("EXIT STATUS", "=", EXIT_STATUS)
    page.add_section("ENVIRONMENT", "=", ENVIRONMENT)
    page.add_section("SIGNALS", "=", SIGNALS)
    return _ascii(str(page))


def _ascii(roff: str) -> str:
    """groff reads its input as Latin-1 unless told otherwise: write every other
    character (arrows, Chinese in the help texts) as a ``\\[uXXXX]`` escape."""
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in roff)


def main(argv: list[str] | None = None) -> int:
    args = output.parser("python -m tools.docgen.cli_reference",
                         "the command-line reference (Markdown) or the man page")
    args.add_argument("--man", action="store_true", help="the man page (roff), not Markdown")
    opts = args.parse_args(argv)
    return output.emit(manpage() if opts.man else markdown(), opts.output)


if __name__ == "__main__":
    raise SystemExit(main())
