"""``elvwatch tickets …`` and ``elvwatch silence …``: work on the store named by the config.

The commands open the store directly (SQLite WAL and PostgreSQL both let them write
while the daemon runs); every action is one transaction with its audit event, which a
running daemon's notifier picks up from the stored events.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from daemon.config import load_config

if TYPE_CHECKING:  # rich loads only for the commands that print tables
    from exporters.terminal import Styled

T = TypeVar("T")
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_ticket_commands(sub: Any) -> None:
    """Add the ``tickets`` and ``silence`` commands to the main parser's subparsers."""
    tickets = sub.add_parser("tickets", help="list, show and work maintenance tickets")
    tsub = tickets.add_subparsers(metavar="ACTION")

    def action(name: str, helptext: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = tsub.add_parser(name, help=helptext)
        p.add_argument("-c", "--config", type=Path, required=True)
        return p

    lst = action("list", "tickets, newest first")
    lst.add_argument("--site")
    lst.add_argument("--state", help="open, acknowledged, resolved, verified, closed or live")
    lst.add_argument("--kind", choices=["fault", "preventive"])
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    show = action("show", "one ticket with its audit trail and records")
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    for name, helptext in (("ack", "acknowledge"), ("close", "close a verified ticket"),
                           ("reopen", "reopen a resolved, verified or closed ticket")):
        p = action(name, helptext)
        p.add_argument("number")
        p.add_argument("--by", required=True, help="who acts")
        p.add_argument("--note", default="")
        p.set_defaults(func=cmd_simple, action=name)
    res = action("resolve", "resolve with a service record")
    res.add_argument("number")
    res.add_argument("--by", required=True)
    res.add_argument("--engineer", required=True)
    res.add_argument("--work", required=True, help="work done")
    res.add_argument("--part", action="append", default=[],
                     help="replaced part, PART or DEVICE:PART (repeatable)")
    res.set_defaults(func=cmd_resolve)
    ver = action("verify", "verify, with the site representative's sign-off")
    ver.add_argument("number")
    ver.add_argument("--by", required=True)
    ver.add_argument("--sign-off", dest="sign_off", help="name of the representative")
    ver.add_argument("--comment", default="")
    ver.set_defaults(func=cmd_verify)
    link = action("signoff-link", "a signed link for the site representative's sign-off page")
    link.add_argument("number")
    link.add_argument("--hours", type=float, default=72.0, help="valid this long (72)")
    link.add_argument("--base", help="URL the phone reaches the daemon at "
                                     "(default: http://<http.listen>)")
    link.set_defaults(func=cmd_signoff_link)
    due = action("resolve-due", "set the repair deadline agreed with the site "
                                "(a major fault's is 'to agree' until then)")
    due.add_argument("number")
    due.add_argument("--by", required=True)
    when = due.add_mutually_exclusive_group(required=True)
    when.add_argument("--hours", type=float,
                      help="hours after the ticket was opened, like the contract's deadlines")
    when.add_argument("--at", help="ISO time with zone, e.g. 2026-03-05T18:00+08:00")
    due.add_argument("--note", default="")
    due.set_defaults(func=cmd_resolve_due)
    fb = action("feedback", "record return-visit feedback (用户回访)")
    fb.add_argument("number")
    fb.add_argument("--by", required=True)
    fb.add_argument("--rating", type=int, required=True, help="1 to 5")
    fb.add_argument("--comment", default="")
    fb.set_defaults(func=cmd_feedback)
    done = action("complete", "complete a preventive work order with its checklist")
    done.add_argument("number")
    done.add_argument("--by", required=True)
    done.add_argument("--engineer", required=True)
    done.add_argument("--item", action="append", default=[], metavar="KEY=ok|fail[:NOTE]",
                      help="one checklist result (repeat for each item)")
    done.add_argument("--work", default="", help="work done (default: checklist done)")
    done.set_defaults(func=cmd_complete)
    tickets.set_defaults(func=lambda _a: _usage(tickets))

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
    silence.set_defaults(func=lambda _a: _usage(silence))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _with_manager(args: argparse.Namespace,
                  work: Callable[[Any], Awaitable[T]]) -> tuple[int, T | None]:
    """Run ``work(manager)`` on the config's store; errors are printed, not raised."""
    from daemon.config import ConfigInvalid
    from daemon.terms import site_terms
    from tickets.lifecycle import TicketError
    from tickets.manager import TicketManager
    from tickets.store import Store, StoreError

    try:
        config = load_config(args.config)
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL, None

    async def run() -> T:
        async with await Store.open(config.storage_url) as store:
            terms = site_terms(config)
            settings = config.model.tickets
            return await work(TicketManager(
                store, lambda: terms, verify_after_polls=settings.verify_after_polls,
                reopen_window=settings.reopen_window))

    try:
        return EXIT_OK, asyncio.run(run())
    except (TicketError, ValueError) as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL, None
    except StoreError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL, None


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M")


def cmd_list(args: argparse.Namespace) -> int:
    code, tickets = _with_manager(args, lambda m: m.list_tickets(
        site=args.site, state=args.state, kind=args.kind, limit=args.limit))
    if tickets is None:
        return code
    if args.json:
        print(json.dumps([dataclasses.asdict(t) for t in tickets], ensure_ascii=False,
                         indent=2))
        return EXIT_OK
    from exporters import terminal

    terminal.write([terminal.table(
        ["TICKET", "STATE", "SEVERITY", "SITE", "DEVICE", "TITLE", "RESPOND BY", "RESOLVE BY"],
        [[t.number, terminal.state(t.state), _severity(t.severity), t.site,
          t.device or t.system or "", t.title_zh if t.title_zh else t.title_en,
          _due(_when(t.response_due), t.response_breached),
          "to agree" if t.resolve_to_agree else _due(_when(t.resolve_due), t.resolve_breached)]
         for t in tickets])])
    return EXIT_OK


def _severity(severity: str) -> Styled:
    from exporters import terminal

    return terminal.Styled(severity, {"emergency": "bold red", "major": "red"}.get(severity, ""))


def _due(text: str, breached: bool) -> Styled:
    from exporters import terminal

    return terminal.Styled(text, "bold red" if breached else "")


def cmd_show(args: argparse.Namespace) -> int:
    code, detail = _with_manager(args, lambda m: m.get(args.number))
    if detail is None:
        return code
    if args.json:
        print(json.dumps(dataclasses.asdict(detail), ensure_ascii=False, indent=2))
        return EXIT_OK
    from exporters import terminal

    t = detail.ticket
    breached = " (breached)"
    head: list[terminal.Cell] = [
        terminal.Styled(f"{t.number}  {t.state}  {t.severity}  {t.title_zh} / {t.title_en}",
                        "bold"),
        f"site {t.site_name} ({t.site})  device {t.device or '-'}  location {t.location or '-'}",
        terminal.Styled(
            f"respond by {_when(t.response_due)}{breached if t.response_breached else ''}"
            f"  resolve by {'to agree' if t.resolve_to_agree else _when(t.resolve_due)}"
            f"{breached if t.resolve_breached else ''}  recurrences {t.recurrences}",
            "bold red" if t.response_breached or t.resolve_breached else ""),
    ]
    if t.affected:
        head.append(f"affected: {', '.join(t.affected)}")
    events = [[_when(e.at), e.kind, e.actor, e.note] for e in detail.events]
    if not terminal.is_terminal(sys.stdout):
        # Plain: the heading lines, then one indented line per audit event.
        terminal.lines(head + [f"  {w}  {terminal.pad(k, 14)} {terminal.pad(a, 12)} {n}"
                               for w, k, a, n in events])
        return EXIT_OK
    terminal.lines(head)
    terminal.lines([""])
    terminal.write([terminal.table(["WHEN", "EVENT", "BY", "NOTE"], events)])
    return EXIT_OK


def cmd_simple(args: argparse.Namespace) -> int:
    name = {"ack": "acknowledge"}.get(args.action, args.action)
    code, events = _with_manager(args, lambda m: getattr(m, name)(args.number, args.by,
                                                                   args.note))
    return _printed(code, events)


def cmd_resolve(args: argparse.Namespace) -> int:
    from tickets.actions import PartReplaced, ServiceRecord

    parts = []
    for spec in args.part:
        device, sep, part = spec.partition(":")
        parts.append(PartReplaced(part, device) if sep else PartReplaced(spec))
    record = ServiceRecord(args.engineer, args.work, tuple(parts))
    code, events = _with_manager(args, lambda m: m.resolve(args.number, args.by, record))
    return _printed(code, events)


def cmd_verify(args: argparse.Namespace) -> int:
    from tickets.actions import SignOff

    sign = SignOff(args.sign_off, args.comment) if args.sign_off else None
    code, events = _with_manager(args, lambda m: m.verify(args.number, args.by, sign))
    return _printed(code, events)


def cmd_resolve_due(args: argparse.Namespace) -> int:
    if args.hours is not None and not args.hours > 0:
        print("elvwatch: --hours must be more than 0", file=sys.stderr)
        return EXIT_USAGE
    if args.at is not None:
        try:
            moment = datetime.fromisoformat(args.at)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            print("elvwatch: --at needs an ISO time with zone, e.g. 2026-03-05T18:00+08:00",
                  file=sys.stderr)
            return EXIT_USAGE
        fixed = moment.timestamp()

    async def work(manager: Any) -> Any:
        due = fixed if args.at is not None else \
            (await manager.get(args.number)).ticket.opened_at + args.hours * 3600.0
        return await manager.set_resolve_due(args.number, args.by, due, args.note)

    code, events = _with_manager(args, work)
    for event in events or []:
        print(f"{event.ticket}: {event.note}")
    return code


def cmd_feedback(args: argparse.Namespace) -> int:
    code, events = _with_manager(args, lambda m: m.add_feedback(
        args.number, args.by, args.rating, args.comment))
    return _printed(code, events)


def parse_item(spec: str) -> tuple[str, tuple[bool, str]]:
    """``KEY=ok``, ``KEY=fail``, ``KEY=fail:NOTE`` → (key, (ok, note))."""
    key, sep, rest = spec.partition("=")
    result, _, note = rest.partition(":")
    if not sep or not key.strip() or result.strip().lower() not in ("ok", "fail"):
        raise ValueError(f"--item {spec!r} is not KEY=ok or KEY=fail[:NOTE]")
    return key.strip(), (result.strip().lower() == "ok", note.strip())


def cmd_complete(args: argparse.Namespace) -> int:
    try:
        results = dict(parse_item(spec) for spec in args.item)
    except ValueError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if len(results) != len(args.item):
        print("elvwatch: a checklist item is given twice", file=sys.stderr)
        return EXIT_USAGE
    code, events = _with_manager(args, lambda m: m.complete_preventive(
        args.number, args.by, args.engineer, results, args.work))
    return _printed(code, events)


def cmd_signoff_link(args: argparse.Namespace) -> int:
    """Print /tickets/NUMBER?link=…: the ticket page with its sign-off form (daemon/links.py)."""
    from daemon import links
    from daemon.cli_links import link_base, signed, signing_token

    code, detail = _with_manager(args, lambda m: m.get(args.number))
    if detail is None:
        return code
    config = load_config(args.config)
    token = signing_token(config, "sign-off links")
    if token is None:
        return EXIT_FAIL
    link = signed(lambda: links.sign(token, args.number, args.hours))
    if link is None:
        return EXIT_USAGE
    print(f"{link_base(args, config)}/tickets/{args.number}?link={link}")
    if detail.ticket.state != "resolved":
        print(f"note: {args.number} is {detail.ticket.state}; the form accepts a sign-off "
              "once it is resolved", file=sys.stderr)
    return EXIT_OK


def _printed(code: int, events: list[Any] | None) -> int:
    for event in events or []:
        print(f"{event.ticket}: {event.kind.value} ({event.state})")
    return code


def _until(text: str, now: float) -> float:
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now + float(text[:-1]) * units[text[-1]]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("--until needs a time zone (e.g. 2026-03-05T18:00+08:00) or 2h")
    return moment.timestamp()


def cmd_silence_add(args: argparse.Namespace) -> int:
    from rules.silence import new_silence
    from tickets import silence_store

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

    code, silence = _with_manager(args, add)
    if silence is not None:
        print(f"silence {silence.id} until {_when(silence.until)}")
    return code


def cmd_silence_list(args: argparse.Namespace) -> int:
    from tickets import silence_store

    code, silences = _with_manager(args, lambda m: silence_store.load(m.store))
    if silences is None:
        return code
    from exporters import terminal

    now = time.time()
    terminal.write([terminal.table(
        ["ID", "UNTIL", "BY", "WHY", "MATCHERS"],
        [[s.id, _when(s.until), s.who, s.why,
          " ".join(f"{k}={v}" for k, vs in s.matchers.items() for v in sorted(vs))]
         for s in silences if args.expired or now < s.until])])
    return EXIT_OK


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from tickets import silence_store

    code, found = _with_manager(args, lambda m: silence_store.expire(m.store, args.id,
                                                                      time.time()))
    if code == EXIT_OK and not found:
        print(f"elvwatch: no silence {args.id!r}", file=sys.stderr)
        return EXIT_FAIL
    if found:
        print(f"silence {args.id} expired")
    return code
