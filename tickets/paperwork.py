"""The records a ticket's work leaves: service records with their parts, device
replacements written into the equipment archive, warranty claims (RMA) and return-visit
feedback.

The plain functions write inside the caller's transaction (a resolution and its record
are one); :class:`TicketPaperwork` holds the actions that are only paperwork.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets import visits
from elvwatch.tickets.core import K, ManagerBase
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import Action, IllegalTransition, TicketState
from elvwatch.tickets.records import (
    MAX_NAME,
    Actor,
    PartReplaced,
    Replacement,
    RmaClaim,
    actor_of,
    coverage,
    text,
)
from elvwatch.tickets.schema import (
    FeedbackRow,
    RmaClaimRow,
    ServicePartRow,
    ServiceRecordRow,
    TicketRow,
)
from elvwatch.tickets.store import MAX_FACT_LENGTH, ArchiveEventRow, DeviceRow

# Archive fields a replacement sets, in the order its note names them.
REPLACED_FIELDS = ("serial", "model", "vendor", "installed", "warranty_until")


def local_day(at: float, timezone: str) -> date:
    return datetime.fromtimestamp(at, ZoneInfo(timezone)).date()


async def write_record(session: AsyncSession, row: TicketRow, engineer: str, work: str,
                       parts: Sequence[PartReplaced], at: float, timezone: str,
                       cause: str = "") -> None:
    """服务记录 with its cause and parts, each covered by the warranty of the device it
    went into as the archive has it now (so before any replacement in the same record);
    a consumable is charged whatever that warranty says.  The record belongs to the
    visit in progress on the ticket, if any (its 服务回执单)."""
    record = ServiceRecordRow(ticket_id=row.id, at=ts.moment(at), engineer=engineer,
                              work_done=work,
                              cause=text(cause, "cause", required=False) or None,
                              visit_id=await visits.open_visit_id(session, row.id))
    session.add(record)
    await session.flush()
    today = local_day(at, timezone)
    for part in parts:
        if part.quantity < 1:
            raise ValueError("a part's quantity must be at least 1")
        if part.unit_price_cents is not None and part.unit_price_cents < 0:
            raise ValueError("a part's price cannot be negative")
        device_id = part.device or row.device
        device = await session.get(DeviceRow, device_id) if device_id else None
        warranty = device.warranty_until if device else None
        session.add(ServicePartRow(record_id=record.id, device=device_id,
                                   part=text(part.part, "part"), quantity=part.quantity,
                                   coverage="at_cost" if part.consumable
                                   else coverage(warranty, today),
                                   warranty_until=warranty,
                                   unit_price_cents=part.unit_price_cents,
                                   consumable=part.consumable))


async def replace_devices(session: AsyncSession, row: TicketRow,
                          replacements: Sequence[Replacement], at: float, timezone: str,
                          actor: Actor) -> list[str]:
    """Write each replacement into the equipment archive (设备档案) with an archive
    change event per field naming the ticket; returns a note per device."""
    notes: list[str] = []
    for item in replacements:
        device_id = item.device or row.device
        if device_id is None:
            raise ValueError(f"a replacement on {row.number} must name its device "
                             "(the ticket has none)")
        device = await session.get(DeviceRow, device_id)
        if device is None:
            raise ValueError(f"device {device_id!r} is not in the equipment archive")
        if device.site != row.site:
            raise ValueError(f"device {device_id!r} is at site {device.site}, not at "
                             f"{row.site} of ticket {row.number}")
        if item.warranty_until is not None and item.installed is not None \
                and item.warranty_until < item.installed:
            raise ValueError(f"the warranty of the new {device_id} ends before it was "
                             "installed")
        new: dict[str, object] = {
            "serial": text(item.serial, "the new unit's serial", limit=MAX_FACT_LENGTH),
            "model": text(item.model, "model", required=False, limit=MAX_FACT_LENGTH)
            or device.model,
            "vendor": text(item.vendor, "vendor", required=False, limit=MAX_FACT_LENGTH)
            or device.vendor,
            "installed": item.installed or local_day(at, timezone),
            "warranty_until": item.warranty_until,
        }
        said: list[str] = []
        stamp = datetime.fromtimestamp(at, UTC)
        for name in REPLACED_FIELDS:
            old, value = getattr(device, name), new[name]
            if value == old:
                continue
            if name not in (device.declared or {}):
                # Synced before dates were tracked: the config's value is the old one,
                # and an unchanged config must not undo this replacement.
                device.declared = {**(device.declared or {}), name: _str(old)}
            setattr(device, name, value)
            session.add(ArchiveEventRow(device_id=device_id, at=stamp, field=name,
                                        old=_str(old), new=_str(value), ticket=row.number))
            said.append(f"{name} {_str(old) or '-'} → {_str(value) or '-'}")
        device.updated_at = stamp
        notes.append(f"{device_id} replaced by {actor.name}: " + ("; ".join(said)
                                                               or "same facts as before"))
    return notes


def _str(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


class TicketPaperwork(ManagerBase):
    async def add_feedback(self, number: str, actor: str | Actor, rating: int,
                           comment: str = "") -> list[TicketEvent]:
        """Return-visit feedback (用户回访): a rating 1–5 and a comment."""
        who = actor_of(actor)
        if not 1 <= rating <= 5:
            raise ValueError("rating must be 1 to 5")
        at = self.clock()
        async with self._lock, self.store.transaction("record feedback") as session:
            row = await ts.by_number(session, number)
            if row.state not in ("resolved", "verified", "closed"):
                raise IllegalTransition(f"cannot record feedback on ticket {number}: it is "
                                        f"{row.state}; feedback follows the service",
                                        number, Action.CLOSE, TicketState(row.state))
            body = text(comment, "comment", required=False)
            session.add(FeedbackRow(ticket_id=row.id, at=ts.moment(at), rating=rating,
                                    comment=body, recorded_by=who.name))
            event = await ts.add_event(session, row, K.FEEDBACK, at, actor=who.name,
                                       note=f"rating {rating}" + (f": {body}" if body else ""),
                                       via=who.via or None)
        return self._emit([event])

    async def record_rma(self, number: str, actor: str | Actor,
                         claim: RmaClaim) -> list[TicketEvent]:
        """Record a manufacturer warranty claim (RMA) on the ticket, or update the one
        with the same claim number (sent, returned, a new contact).  A new claim needs
        the part and the vendor's contact."""
        who = actor_of(actor)
        claim_number = text(claim.claim_number, "claim number", limit=64)
        if claim.sent_on and claim.returned_on and claim.returned_on < claim.sent_on:
            raise ValueError(f"claim {claim_number}: returned before it was sent")
        at = self.clock()
        async with self._lock, self.store.transaction("record a warranty claim") as session:
            row = await ts.by_number(session, number)
            existing = await session.scalar(select(RmaClaimRow).where(
                RmaClaimRow.ticket_id == row.id, RmaClaimRow.claim_number == claim_number))
            stamp = ts.moment(at)
            assert stamp is not None
            if existing is None:
                existing = RmaClaimRow(
                    ticket_id=row.id, claim_number=claim_number,
                    part=text(claim.part, "the claimed part"),
                    device=claim.device or row.device,
                    vendor=text(claim.vendor, "vendor", required=False),
                    vendor_contact=text(claim.vendor_contact, "the vendor's contact"),
                    sent_on=claim.sent_on, returned_on=claim.returned_on,
                    note=text(claim.note, "note", required=False),
                    recorded_by=who.name[:MAX_NAME], created_at=stamp, updated_at=stamp)
                session.add(existing)
                what = f"claim {claim_number} for {existing.part} with {existing.vendor_contact}"
            else:
                what = f"claim {claim_number} updated"
                for name in ("part", "vendor", "vendor_contact", "note"):
                    value = text(getattr(claim, name), name, required=False)
                    if value:
                        setattr(existing, name, value)
                for name in ("device", "sent_on", "returned_on"):
                    if getattr(claim, name) is not None:
                        setattr(existing, name, getattr(claim, name))
                if existing.sent_on and existing.returned_on \
                        and existing.returned_on < existing.sent_on:
                    raise ValueError(f"claim {claim_number}: returned before it was sent")
                existing.updated_at = stamp
            dates = [f"sent {existing.sent_on.isoformat()}" if existing.sent_on else "",
                     f"returned {existing.returned_on.isoformat()}"
                     if existing.returned_on else ""]
            note = "; ".join([what, *[d for d in dates if d]])
            event = await ts.add_event(session, row, K.RMA, at, actor=who.name, note=note,
                                       via=who.via or None)
        return self._emit([event])
