"""The ``elvwatch tickets`` commands that change a ticket: each calls the ticket stage's
action (the same the API and the pages call), recorded with the ``--by`` person as
actor and ``cli`` as the way in; the running daemon notifies it from the store."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, moment, printed, with_manager


def _actor(args: argparse.Namespace) -> Any:
    from elvwatch.tickets.records import Actor

    return Actor(args.by, "cli")


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} needs a date, YYYY-MM-DD") from None


def _usage_error(message: str) -> int:
    print(f"elvwatch: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_simple(args: argparse.Namespace) -> int:
    """ack, reopen and verify: an action with a note."""
    name = {"ack": "acknowledge"}.get(args.action, args.action)
    if name == "verify":
        code, events = with_manager(args, lambda m: m.verify(args.number, _actor(args)))
    else:
        code, events = with_manager(args, lambda m: getattr(m, name)(
            args.number, _actor(args), args.note))
    return printed(code, events)


def cmd_resolve(args: argparse.Namespace) -> int:
    from elvwatch.tickets.records import PartReplaced, Replacement, ServiceRecord

    parts = []
    for spec in args.part:
        device, sep, part = spec.partition(":")
        parts.append(PartReplaced(part, device) if sep else PartReplaced(spec))
    replacements: tuple[Replacement, ...] = ()
    details = (args.new_model, args.new_vendor, args.installed, args.warranty_until,
               args.replaced_device)
    if args.new_serial is None and any(v is not None for v in details):
        return _usage_error("a replacement needs --new-serial (the new unit's serial)")
    if args.new_serial is not None:
        try:
            replacements = (Replacement(
                args.replaced_device, args.new_serial, args.new_model or "",
                args.new_vendor or "", _day(args.installed, "--installed"),
                _day(args.warranty_until, "--warranty-until")),)
        except ValueError as exc:
            return _usage_error(str(exc))
    record = ServiceRecord(args.engineer, args.work, tuple(parts), replacements)
    code, events = with_manager(args, lambda m: m.resolve(args.number, _actor(args), record))
    return printed(code, events)


def cmd_sign_off(args: argparse.Namespace) -> int:
    """The signed paper receipt (服务回执单), recorded by the engineer."""
    from elvwatch.tickets.records import SignOff

    sign = SignOff(args.name, args.comment, "paper", args.receipt or "")
    code, events = with_manager(args, lambda m: m.sign_off(args.number, _actor(args), sign))
    return printed(code, events)


def cmd_resolve_due(args: argparse.Namespace) -> int:
    if args.hours is not None and not args.hours > 0:
        return _usage_error("--hours must be more than 0")
    fixed = 0.0
    if args.at is not None:
        try:
            fixed = moment(args.at, "--at")
        except ValueError as exc:
            return _usage_error(str(exc))

    async def work(manager: Any) -> Any:
        due = fixed if args.at is not None else \
            (await manager.get(args.number)).ticket.opened_at + args.hours * 3600.0
        return await manager.set_resolve_due(args.number, _actor(args), due, args.note)

    code, events = with_manager(args, work)
    for event in events or []:
        print(f"{event.ticket}: {event.note}")
    return code


def cmd_reclassify(args: argparse.Namespace) -> int:
    code, events = with_manager(args, lambda m: m.reclassify(
        args.number, _actor(args), args.severity, args.reason))
    for event in events or []:
        print(f"{event.ticket}: {event.kind.value}: {event.note}")
    return code


def cmd_feedback(args: argparse.Namespace) -> int:
    code, events = with_manager(args, lambda m: m.add_feedback(
        args.number, _actor(args), args.rating, args.comment))
    return printed(code, events)


def cmd_rma(args: argparse.Namespace) -> int:
    from elvwatch.tickets.records import RmaClaim

    try:
        claim = RmaClaim(args.claim, args.part or "", args.vendor_contact or "",
                         args.vendor or "", args.device, _day(args.sent, "--sent"),
                         _day(args.returned, "--returned"), args.note or "")
    except ValueError as exc:
        return _usage_error(str(exc))
    code, events = with_manager(args, lambda m: m.record_rma(args.number, _actor(args),
                                                             claim))
    for event in events or []:
        print(f"{event.ticket}: {event.note}")
    return code


def cmd_create(args: argparse.Namespace) -> int:
    """A ticket for a phone call, a WeChat message, a walk-in request."""
    from elvwatch.tickets.records import NewTicket

    if not args.device and not args.location:
        return _usage_error("give --device or --location (what the request is about)")
    try:
        reported = None if args.at is None else moment(args.at, "--at")
    except ValueError as exc:
        return _usage_error(str(exc))
    new = NewTicket(site=args.site, description=args.description, reporter=args.reporter,
                    channel=args.channel, severity=args.severity, device=args.device,
                    location=args.location, system=args.system,
                    reporter_contact=args.contact or "", reported_at=reported,
                    title=args.title or "")
    code, events = with_manager(args, lambda m: m.create(new, _actor(args)))
    for event in events or []:
        due = "" if event.kind.value != "opened" else (
            f"; respond by {_local(event.response_due)}, repair "
            + ("to agree" if event.resolve_due is None else f"by {_local(event.resolve_due)}"))
        print(f"{event.ticket}: {event.kind.value}{due}")
    return code


def _local(seconds: float | None) -> str:
    from elvwatch.cli.common import when

    return when(seconds)


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
        return _usage_error(str(exc))
    if len(results) != len(args.item):
        return _usage_error("a checklist item is given twice")
    code, events = with_manager(args, lambda m: m.complete_preventive(
        args.number, _actor(args), args.engineer, results, args.work))
    return printed(code, events)


def cmd_signoff_link(args: argparse.Namespace) -> int:
    """Print /tickets/NUMBER?link=…: the ticket page with its sign-off form (web/links.py)."""
    from elvwatch.cli.links import link_base, signed, signing_token
    from elvwatch.config.loading import load_config
    from elvwatch.web import links

    code, detail = with_manager(args, lambda m: m.get(args.number))
    if detail is None:
        return code
    config = load_config(args.config, secrets=False)
    token = signing_token(config, "sign-off links")
    if token is None:
        return EXIT_FAIL
    link = signed(lambda: links.sign(token, args.number, args.hours))
    if link is None:
        return EXIT_USAGE
    print(f"{link_base(args, config)}/tickets/{args.number}?link={link}")
    refusal = detail.ticket.sign_off_refusal
    if refusal is not None:
        print(f"note: {args.number} is {detail.ticket.state}"
              + (" and waiting for the engineer's service record"
                 if refusal == "awaiting_record" else "")
              + "; the form accepts a sign-off once it is resolved, its service record "
              "written and its device healthy", file=sys.stderr)
    return EXIT_OK
