"""Follow-up tickets: a checklist item found not ok on a preventive visit opens a fault
ticket of its own, linked to the work order (``tickets.follow_up_of`` and the item's
``checklist_results.follow_up``), with the contract's deadlines from the moment the
work order was completed.

Written in the work order's completing transaction (tickets/actions.py
``complete_preventive``), so an order is never completed without its follow-ups.  The
ticket is about the item's device when the engineer named one, else about the system
at the site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.core import K
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.glossary import term
from elvwatch.tickets.intake import open_request
from elvwatch.tickets.preventive import item_names
from elvwatch.tickets.records import Actor, NewTicket
from elvwatch.tickets.schema import ChecklistResultRow, TicketRow
from elvwatch.tickets.sla import SiteTerms


@dataclass(frozen=True, slots=True)
class FailedItem:
    item: str
    note: str = ""
    device: str | None = None


def _words(terms: SiteTerms, system: str | None) -> dict[str, str]:
    """Item id → its words in the site's language (the site's composed list first)."""
    zh = terms.language == "zh-CN"
    names = item_names(terms.language)
    for item_id, item_zh, item_en in terms.checklists.get(system or "", ()):
        names[item_id] = item_zh if zh else item_en
    return names


async def open_follow_ups(session: AsyncSession, order: TicketRow, terms: SiteTerms,
                          failed: Sequence[FailedItem], engineer: str, who: Actor, at: float,
                          escalation: Callable[[str, str], str]) -> list[TicketEvent]:
    """A ticket per failed item, linked both ways, reported by the ``engineer`` who
    found it; the order's audit trail names each."""
    if not failed:
        return []
    zh = terms.language == "zh-CN"
    words = _words(terms, order.system)
    system = term("system", order.system, terms.language)
    results: Mapping[str, ChecklistResultRow] = {r.item: r for r in await session.scalars(
        select(ChecklistResultRow).where(ChecklistResultRow.ticket_id == order.id,
                                         ChecklistResultRow.follow_up.is_(None)))}
    events: list[TicketEvent] = []
    for failure in failed:
        name = words.get(failure.item, failure.item)
        title = f"保养项目不合格：{name}" if zh else f"checklist item not ok: {name}"
        place = f"{system}系统" if zh else f"{system} system"
        detail = f"{order.number} {name}" + (f"：{failure.note}" if zh and failure.note else
                                             f": {failure.note}" if failure.note else "")
        row, opened = await open_request(session, terms, NewTicket(
            site=order.site, description=detail, reporter=engineer, channel="schedule",
            device=failure.device or None, location=None if failure.device else place,
            system=order.system, title=title), who, at, escalation)
        row.follow_up_of = order.number
        result = results.get(failure.item)
        if result is not None:
            result.follow_up, result.device = row.number, failure.device or None
        events += opened
        events.append(await ts.add_event(session, order, K.FOLLOW_UP, at, actor=who.name,
                                         note=f"follow-up {row.number}: {failure.item}",
                                         via=who.via or None))
    return events
