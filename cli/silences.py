"""``elvwatch silence add|list|expire``: silences and maintenance windows in the store."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, usage, when, with_manager


def _until(text: str, now: float) -> float:
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now + float(text[:-1]) * units[text[-1]]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("--until needs a time zone (e.g. 2026-03-05T18:00+08:00) or 2h")
    return moment.timestamp()


def cmd_silence_add(args: argparse.Namespace) -> int:
    from elvwatch.rules.silence import new_silence
    from elvwatch.tickets import silence_store

    matchers: dict[str, list[str]] = {}
    for spec in args.matchers:
        label, sep, value = spec.partition("=")
        if not sep or not value:
            print(f"elvwatch: matcher {spec!r} is not LABEL=VALUE", file=sys.stderr)
            return EXIT_USAGE
        matchers.setdefault(label, []).append(value)

    async def add(manager: Any) -> Any:
        now = time.time()
        silence = new_silence(matchers, args.by, args.why, _until(args.until, now), now,
                              now=now)
        await silence_store.save(manager.store, silence)
        return silence

    code, silence = with_manager(args, add)
    if silence is not None:
        print(f"silence {silence.id} until {when(silence.until)}")
    return code


def cmd_silence_list(args: argparse.Namespace) -> int:
    from elvwatch.tickets import silence_store

    code, silences = with_manager(args, lambda m: silence_store.load(m.store))
    if silences is None:
        return code
    from elvwatch.exporters import terminal

    now = time.time()
    terminal.write([terminal.table(
        ["ID", "UNTIL", "BY", "WHY", "MATCHERS"],
        [[s.id, when(s.until), s.who, s.why,
          " ".join(f"{k}={v}" for k, vs in s.matchers.items() for v in sorted(vs))]
         for s in silences if args.expired or now < s.until])])
    return EXIT_OK


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from elvwatch.tickets import silence_store

    code, found = with_manager(args, lambda m: silence_store.expire(m.store, args.id,
                                                                     time.time()))
    if code == EXIT_OK and not found:
        print(f"elvwatch: no silence {args.id!r}", file=sys.stderr)
        return EXIT_FAIL
    if found:
        print(f"silence {args.id} expired")
    return code


def add_silence_commands(sub: Any) -> None:
    silence = sub.add_parser("silence", help="silences and maintenance windows")
    ssub = silence.add_subparsers(metavar="ACTION")
    add = ssub.add_parser("add", help="mute matching faults until a time")
    add.add_argument("-c", "--config", type=Path, required=True)
    add.add_argument("matchers", nargs="+", help="LABEL=VALUE (site, device, system, kind, "
                                                 "rule); repeat a label for several values")
    add.add_argument("--by", required=True)
    add.add_argument("--why", required=True)
    add.add_argument("--until", required=True, help="ISO time with zone, or a duration: 2h")
    add.set_defaults(func=cmd_silence_add)
    sl = ssub.add_parser("list", help="current silences")
    sl.add_argument("-c", "--config", type=Path, required=True)
    sl.add_argument("--expired", action="store_true")
    sl.set_defaults(func=cmd_silence_list)
    ex = ssub.add_parser("expire", help="end a silence now")
    ex.add_argument("-c", "--config", type=Path, required=True)
    ex.add_argument("id")
    ex.set_defaults(func=cmd_silence_expire)

    silence.set_defaults(func=lambda _args: usage(silence))
