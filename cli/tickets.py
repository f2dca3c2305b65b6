"""``elvwatch tickets …`` and ``elvwatch silence …``: work on the store named by the config.

The commands open the store directly (SQLite WAL and PostgreSQL both let them write
while the daemon runs); every action is one transaction with its audit event, which a
running daemon's notifier picks up from the stored events.  They read the config
without its secrets (cli/common.py): the store is all they need.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elvwatch.cli import ticket_actions as acts
from elvwatch.cli.common import EXIT_OK, usage, when, with_manager
from elvwatch.cli.silences import add_silence_commands
from elvwatch.cli.ticket_actions import parse_item
from elvwatch.tickets.lifecycle import TO_SIGN, TicketState

if TYPE_CHECKING:  # rich loads only for the commands that print tables
    from elvwatch.exporters.terminal import Styled

__all__ = ["add_ticket_commands", "parse_item"]

CHANNELS = ["phone", "wechat", "walk_in", "email", "other"]
SEVERITIES = ["general", "major", "emergency"]
SYSTEMS = ["cctv", "access_control", "intercom", "alarm", "network", "power"]


def add_ticket_commands(sub: Any) -> None:
    """Add the ``tickets`` and ``silence`` commands to the main parser's subparsers."""
    tickets = sub.add_parser("tickets", help="list, show, open and work maintenance tickets")
    tsub = tickets.add_subparsers(metavar="ACTION")

    def action(name: str, helptext: str, *, by: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = tsub.add_parser(name, help=helptext)
        p.add_argument("-c", "--config", type=Path, required=True)
        if by:
            p.add_argument("--by", required=True, help="who acts (recorded in the audit trail)")
        return p

    lst = action("list", "tickets, newest first", by=False)
    lst.add_argument("--site")
    lst.add_argument("--state", help="open, acknowledged, resolved, verified, closed or live")
    lst.add_argument("--kind", choices=["fault", "preventive"])
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    show = action("show", "one ticket with its audit trail and records", by=False)
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    new = action("create", "open a ticket for a phone call, WeChat message or walk-in "
                           "request (the contract's deadlines from --at, default now)")
    new.add_argument("--site", required=True)
    new.add_argument("--device", help="the device it is about (from the archive)")
    new.add_argument("--location", help="where, when it is not about one device")
    new.add_argument("--description", required=True)
    new.add_argument("--reporter", required=True, help="who called, wrote or came in")
    new.add_argument("--contact", help="the reporter's phone or WeChat")
    new.add_argument("--channel", required=True, choices=CHANNELS)
    new.add_argument("--severity", choices=SEVERITIES, default="general")
    new.add_argument("--system", choices=SYSTEMS)
    new.add_argument("--title", help="short title (default: the description's start)")
    new.add_argument("--at", help="when the request came in, ISO time with zone")
    new.set_defaults(func=acts.cmd_create)

    for name, helptext in (("ack", "acknowledge: an engineer takes the ticket"),
                           ("reopen", "reopen a resolved, verified or closed ticket")):
        p = action(name, helptext)
        p.add_argument("number")
        p.add_argument("--note", default="")
        p.set_defaults(func=acts.cmd_simple, action=name)
    ver = action("verify", "confirm a recovery by hand (the probes do it for a watched "
                           "device); closing needs the site's sign-off")
    ver.add_argument("number")
    ver.set_defaults(func=acts.cmd_simple, action="verify")
    res = action("resolve", "resolve with a service record (also on a ticket whose "
                            "device recovered while waiting for it)")
    res.add_argument("number")
    res.add_argument("--engineer", required=True)
    res.add_argument("--work", required=True, help="work done")
    res.add_argument("--part", action="append", default=[],
                     help="replaced part, PART or DEVICE:PART (repeatable)")
    res.add_argument("--new-serial", help="the device was replaced: the new unit's serial "
                                          "(updates the equipment archive)")
    res.add_argument("--new-model")
    res.add_argument("--new-vendor")
    res.add_argument("--installed", metavar="YYYY-MM-DD", help="default: today")
    res.add_argument("--warranty-until", metavar="YYYY-MM-DD",
                     help="the new unit's warranty (none: no warranty on record)")
    res.add_argument("--replaced-device", help="default: the ticket's device")
    res.set_defaults(func=acts.cmd_resolve)
    sign = action("sign-off", "record the site representative's signed paper receipt "
                              "(服务回执单); closes the ticket once its recovery is confirmed")
    sign.add_argument("number")
    sign.add_argument("--name", required=True, help="the representative who signed")
    sign.add_argument("--receipt", help="the receipt's number")
    sign.add_argument("--comment", default="")
    sign.set_defaults(func=acts.cmd_sign_off)
    link = action("signoff-link", "a signed link for the site representative's sign-off page",
                  by=False)
    link.add_argument("number")
    link.add_argument("--hours", type=float, default=72.0, help="valid this long (72)")
    link.add_argument("--base", help="URL the phone reaches the daemon at "
                                     "(default: http://<http.listen>)")
    link.set_defaults(func=acts.cmd_signoff_link)
    due = action("resolve-due", "set or renegotiate the repair deadline agreed with the "
                                "site (a breach of the deadline it replaces stays)")
    due.add_argument("number")
    when_ = due.add_mutually_exclusive_group(required=True)
    when_.add_argument("--hours", type=float,
                       help="hours after the ticket was opened, like the contract's deadlines")
    when_.add_argument("--at", help="ISO time with zone, e.g. 2026-03-05T18:00+08:00")
    due.add_argument("--note", default="")
    due.set_defaults(func=acts.cmd_resolve_due)
    rec = action("reclassify", "change the severity after diagnosis (deadlines follow)")
    rec.add_argument("number")
    rec.add_argument("--severity", required=True, choices=SEVERITIES)
    rec.add_argument("--reason", required=True)
    rec.set_defaults(func=acts.cmd_reclassify)
    fb = action("feedback", "record return-visit feedback (用户回访)")
    fb.add_argument("number")
    fb.add_argument("--rating", type=int, required=True, help="1 to 5")
    fb.add_argument("--comment", default="")
    fb.set_defaults(func=acts.cmd_feedback)
    rma = action("rma", "record or update a manufacturer warranty claim (RMA)")
    rma.add_argument("number")
    rma.add_argument("--claim", required=True, help="the claim (RMA) number")
    rma.add_argument("--part", help="the part claimed (needed for a new claim)")
    rma.add_argument("--vendor")
    rma.add_argument("--vendor-contact", help="who at the vendor (needed for a new claim)")
    rma.add_argument("--device")
    rma.add_argument("--sent", metavar="YYYY-MM-DD")
    rma.add_argument("--returned", metavar="YYYY-MM-DD")
    rma.add_argument("--note")
    rma.set_defaults(func=acts.cmd_rma)
    done = action("complete", "complete a preventive work order with its checklist")
    done.add_argument("number")
    done.add_argument("--engineer", required=True)
    done.add_argument("--item", action="append", default=[], metavar="KEY=ok|fail[:NOTE]",
                      help="one checklist result (repeat for each item)")
    done.add_argument("--work", default="", help="work done (default: checklist done)")
    done.set_defaults(func=acts.cmd_complete)
    tickets.set_defaults(func=lambda _a: usage(tickets))
    add_silence_commands(sub)


def _state(t: Any) -> str:
    """The state with what it waits for: the engineer's record, the site's sign-off."""
    if t.state == TicketState.RESOLVED and t.awaiting_record:
        return "resolved (record owed)"
    if t.state in TO_SIGN and t.signed_off_at is not None:
        return f"{t.state} (signed off)"
    if t.state == TicketState.CLOSED and t.close_reason == "no_sign_off":
        return "closed (no sign-off)"
    return str(t.state)


def _severity_text(t: Any) -> str:
    return str(t.severity) + (f" (was {t.original_severity})" if t.original_severity else "")


def cmd_list(args: argparse.Namespace) -> int:
    code, tickets = with_manager(args, lambda m: m.list_tickets(
        site=args.site, state=args.state, kind=args.kind, limit=args.limit))
    if tickets is None:
        return code
    if args.json:
        print(json.dumps([dataclasses.asdict(t) for t in tickets], ensure_ascii=False,
                         indent=2))
        return EXIT_OK
    from elvwatch.exporters import terminal

    terminal.write([terminal.table(
        ["TICKET", "STATE", "SEVERITY", "SITE", "DEVICE", "TITLE", "RESPOND BY", "RESOLVE BY"],
        [[t.number, terminal.Styled(_state(t), terminal.state(t.state).style),
          _severity(t), t.site, t.device or t.location or t.system or "",
          t.title_zh if t.title_zh else t.title_en,
          _due(when(t.response_due), t.response_breached),
          "to agree" if t.resolve_to_agree else _due(when(t.resolve_due), t.resolve_breached)]
         for t in tickets])])
    return EXIT_OK


def _severity(t: Any) -> Styled:
    from elvwatch.exporters import terminal

    return terminal.Styled(_severity_text(t),
                           {"emergency": "bold red", "major": "red"}.get(t.severity, ""))


def _due(text: str, breached: bool) -> Styled:
    from elvwatch.exporters import terminal

    return terminal.Styled(text, "bold red" if breached else "")


def cmd_show(args: argparse.Namespace) -> int:
    code, detail = with_manager(args, lambda m: m.get(args.number))
    if detail is None:
        return code
    if args.json:
        print(json.dumps(dataclasses.asdict(detail), ensure_ascii=False, indent=2))
        return EXIT_OK
    from elvwatch.exporters import terminal

    t = detail.ticket
    breached = " (breached)"
    head: list[terminal.Cell] = [
        terminal.Styled(f"{t.number}  {_state(t)}  {_severity_text(t)}  "
                        f"{t.title_zh} / {t.title_en}", "bold"),
        f"site {t.site_name} ({t.site})  device {t.device or '-'}  location {t.location or '-'}",
        terminal.Styled(
            f"respond by {when(t.response_due)}{breached if t.response_breached else ''}"
            f"  resolve by {'to agree' if t.resolve_to_agree else when(t.resolve_due)}"
            f"{breached if t.resolve_breached else ''}  recurrences {t.recurrences}",
            "bold red" if t.response_breached or t.resolve_breached else ""),
    ]
    if t.channel not in ("monitoring", "schedule"):
        head.append(f"reported by {t.reporter or '-'}"
                    + (f" ({t.reporter_contact})" if t.reporter_contact else "")
                    + f" via {t.channel}")
    if t.affected:
        head.append(f"affected: {', '.join(t.affected)}")
    head += [f"warranty claim {c['claim_number']}: {c['part']} with {c['vendor_contact']}, "
             f"sent {c['sent_on'] or '-'}, returned {c['returned_on'] or '-'}"
             for c in detail.rma_claims]
    events = [[when(e.at), e.kind, e.actor + (f" ({e.via})" if e.via and e.via != "system"
                                               else ""), e.note] for e in detail.events]
    if not terminal.is_terminal(sys.stdout):
        # Plain: the heading lines, then one indented line per audit event.
        terminal.lines(head + [f"  {w}  {terminal.pad(k, 14)} {terminal.pad(a, 12)} {n}"
                               for w, k, a, n in events])
        return EXIT_OK
    terminal.lines(head)
    terminal.lines([""])
    terminal.write([terminal.table(["WHEN", "EVENT", "BY", "NOTE"], events)])
    return EXIT_OK
