"""Tickets from people: a phone call, a WeChat message, a walk-in request.

They get the contract's deadlines and SLA like a ticket the rule engine opens, counted
from when the request came in.  A request about a device the probes watch is verified
by them like any fault ticket once resolved; one about a place (no device) has no
technical verification and closes with the site representative's sign-off.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.core import DAY, K, ManagerBase
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.records import (
    CHANNELS,
    PEOPLE_CHANNELS,
    SEVERITIES,
    Actor,
    NewTicket,
    actor_of,
    choice,
    text,
)
from elvwatch.tickets.schema import TicketRow
from elvwatch.tickets.sla import SiteTerms, deadlines
from elvwatch.tickets.store import DeviceRow

SYSTEMS = ("cctv", "access_control", "intercom", "alarm", "network", "power")
# A request written down after the call: its time may be given, this far back at most.
MAX_BACKDATE = 7 * DAY
# Clocks of phones and servers differ a little: a time this far ahead is still "now".
CLOCK_SLACK = 300.0
TITLE_CHARS = 60


class TicketIntake(ManagerBase):
    async def create(self, new: NewTicket, actor: str | Actor) -> list[TicketEvent]:
        """Open a ticket for a person's request; ``actor`` is who wrote it down."""
        who = actor_of(actor)
        terms = self.sites().get(new.site)
        if terms is None:
            known = ", ".join(sorted(self.sites())) or "none"
            raise ValueError(f"unknown site {new.site!r} (sites: {known})")
        choice(new.channel, "channel", PEOPLE_CHANNELS)
        now = self.clock()
        async with self._lock, self.store.transaction("open a ticket") as session:
            _, events = await open_request(session, terms, new, who, now, self._escalation)
        return self._emit(events)


async def open_request(session: AsyncSession, terms: SiteTerms, new: NewTicket, who: Actor,
                       now: float, escalation: Callable[[str, str], str]
                       ) -> tuple[TicketRow, list[TicketEvent]]:
    """Write the ticket of a request in the caller's transaction (a person's, through
    :meth:`TicketIntake.create`, or the follow-up of a failed checklist item, channel
    ``schedule``); ``escalation(what, site)`` words an emergency's escalation."""
    channel = choice(new.channel, "channel", CHANNELS)
    severity = choice(new.severity, "severity", SEVERITIES)
    description = text(new.description, "description")
    reporter = text(new.reporter, "reporter", limit=200)
    contact = text(new.reporter_contact, "reporter contact", required=False, limit=200)
    location = text(new.location, "location", required=False, limit=400)
    title = text(new.title, "title", required=False, limit=200) \
        or description.splitlines()[0][:TITLE_CHARS]
    if new.system is not None:
        choice(new.system, "system", SYSTEMS)
    opened = now if new.reported_at is None else new.reported_at
    if opened > now + CLOCK_SLACK:
        raise ValueError("reported_at is in the future")
    if opened < now - MAX_BACKDATE:
        raise ValueError(f"reported_at is more than {MAX_BACKDATE / DAY:g} days ago: "
                         "a request that old is recorded with the time it is written down")
    device = None
    if new.device:
        device = await session.get(DeviceRow, new.device)
        if device is None or device.removed_at is not None:
            raise ValueError(f"device {new.device!r} is not in the equipment archive")
        if device.site != new.site:
            raise ValueError(f"device {new.device!r} is at site {device.site}, "
                             f"not {new.site}")
    elif not location:
        raise ValueError("a request needs the device or the location it is about")
    where = device.id if device is not None else location
    due = deadlines(terms, severity, opened)
    stamp = ts.moment(opened)
    assert stamp is not None
    row = TicketRow(
        number=await ts.next_number(session, stamp.year), kind="fault",
        fingerprint=None, open_key=None, dedup_key=None, rule=None, site=new.site,
        site_name=terms.name, language=terms.language,
        system=new.system or (device.system if device is not None else None),
        device=device.id if device is not None else None,
        location=location or (device.location if device is not None else None),
        title_zh=f"{where} {title}", title_en=f"{where}: {title}",
        severity=severity, state="open", summary=description, opened_at=stamp,
        response_due=ts.moment(due.response_due),
        resolve_due=ts.moment(due.resolve_due), resolve_to_agree=due.resolve_to_agree,
        fault_active=False, healthy_polls=0, recurrences=0,
        recovered_without_intervention=False, checklist=[], event_seq=0,
        updated_at=stamp, awaiting_record=False, response_breaches=0,
        resolve_breaches=0, channel=channel, reporter=reporter,
        reporter_contact=contact or None)
    session.add(row)
    await session.flush()
    if device is not None:
        await ts.attach(session, row, device.id, "primary", opened)
    heard = f"{channel.replace('_', '-')} from {reporter}" + (
        f" ({contact})" if contact else "")
    if new.reported_at is not None and abs(now - opened) >= 60:
        heard += f" at {datetime.fromtimestamp(opened, UTC).isoformat(timespec='minutes')}"
    events = [await ts.add_event(session, row, K.OPENED, now, actor=who.name,
                                 note=f"{heard}: {description}", via=who.via or None)]
    if severity == "emergency":
        events.append(await ts.add_event(
            session, row, K.ESCALATED, now,
            note=escalation("emergency, at once", row.site)))
    return row, events

