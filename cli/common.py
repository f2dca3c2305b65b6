"""What the commands share: exit codes, the config loaded with its errors printed, the
ticket manager on the config's store, and how times are printed and read.

The store-reading commands need the store, not the devices: they load the config
without reading any secret (elvwatch.config.loading.load_config ``secrets=False``), so
an engineer can run them with a config whose device passwords live only in the
daemon's environment.  Everything heavier than argparse is imported where it is used:
every command's start-up goes through here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from elvwatch.config.resolved import Config

T = TypeVar("T")
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def usage(parser: argparse.ArgumentParser) -> int:
    """A command given without its action: its help on stderr, a usage error."""
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def load_or_report(path: Path, *, secrets: bool = True) -> Config | None:
    """The config, or None after printing each of its errors and how many there are.
    ``secrets=False`` for commands that read the store or the daemon, never a device
    (see load_config)."""
    from elvwatch.config.loading import ConfigInvalid, load_config

    try:
        return load_config(path, secrets=secrets)
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {path}", file=sys.stderr)
        return None


def read_config(path: Path) -> Config | None:
    """The config for a command that reads the store (no secrets), or None after
    printing what is wrong with it."""
    from elvwatch.config.loading import ConfigInvalid, load_config

    try:
        return load_config(path, secrets=False)
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return None


def with_manager(args: argparse.Namespace,
                 work: Callable[[Any], Awaitable[T]]) -> tuple[int, T | None]:
    """Run ``work(manager)`` on the config's store; errors are printed, not raised."""
    import asyncio

    from elvwatch.config.terms import site_terms
    from elvwatch.tickets.lifecycle import TicketError
    from elvwatch.tickets.manager import TicketManager
    from elvwatch.tickets.store import Store, StoreError

    config = read_config(args.config)
    if config is None:
        return EXIT_FAIL, None

    async def run() -> T:
        async with await Store.open(config.storage_url) as store:
            terms = site_terms(config)
            settings = config.model.tickets
            return await work(TicketManager(
                store, lambda: terms, verify_after_polls=settings.verify_after_polls,
                reopen_window=settings.reopen_window, close_after=settings.close_after))

    try:
        return EXIT_OK, asyncio.run(run())
    except (TicketError, ValueError) as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL, None
    except StoreError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL, None


def when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M")


def moment(text: str, option: str) -> float:
    """An ISO time with a zone as epoch seconds; a ValueError names the option."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"{option} needs an ISO time with zone, e.g. 2026-03-05T18:00+08:00")
    return parsed.timestamp()


def printed(code: int, events: list[Any] | None) -> int:
    for event in events or []:
        print(f"{event.ticket}: {event.kind.value} ({event.state})")
    return code
