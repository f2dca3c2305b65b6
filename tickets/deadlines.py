"""Changing what a ticket is held to: the repair deadline agreed with the site
representative (a major fault's is "to agree"), and the severity after diagnosis.

A deadline that is replaced is kept with its breach (``superseded_deadlines``): a breach
stays a breach in the SLA report, and the new deadline applies from then on (it can be
breached anew).  A reclassification keeps the severity the ticket opened with.
"""

from __future__ import annotations

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.core import K, ManagerBase, when
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import (
    WORKED,
    Action,
    IllegalTransition,
    TicketState,
    next_state,
)
from elvwatch.tickets.records import SEVERITIES, Actor, actor_of, choice, text
from elvwatch.tickets.sla import deadlines


class DeadlineActions(ManagerBase):
    async def set_resolve_due(self, number: str, actor: str | Actor, due: float,
                              note: str = "") -> list[TicketEvent]:
        """Set the repair deadline agreed with the site representative, or renegotiate
        it; the one it replaces is kept with its breach."""
        who = actor_of(actor)
        reason = text(note, "note", required=False)
        at = self.clock()
        async with self._lock, self.store.transaction("set a deadline") as session:
            row = await ts.by_number(session, number)
            if row.state in WORKED:
                raise IllegalTransition(f"cannot set the repair deadline of ticket {number}: "
                                        f"it is {row.state}", number, Action.RESOLVE,
                                        TicketState(row.state))
            if due <= ts.epoch(row.opened_at):  # type: ignore[operator]
                raise ValueError("the repair deadline must be after the ticket was opened")
            was = await self._supersede(session, row, "resolve", at, who,
                                        "renegotiated" + (f": {reason}" if reason else ""))
            row.resolve_due, row.resolve_to_agree = ts.moment(due), False
            row.resolve_breached_at = None  # the new deadline applies from now on
            event = await ts.add_event(
                session, row, K.DEADLINE_SET, at, actor=who.name, via=who.via or None,
                note=f"repair due {when(due)}" + (f" ({was})" if was else "")
                + (f": {reason}" if reason else ""))
        return self._emit([event])

    async def reclassify(self, number: str, actor: str | Actor, severity: str,
                         reason: str) -> list[TicketEvent]:
        """Change the severity after diagnosis (an offline camera that turns out to be
        buried cabling is major: its repair deadline is then to agree).  The contract's
        deadlines of the new severity count from the opening; the response deadline
        only while nobody has responded.  An emergency is escalated at once."""
        who = actor_of(actor)
        severity = choice(severity, "severity", SEVERITIES)
        why = text(reason, "reason")
        at = self.clock()
        async with self._lock, self.store.transaction("reclassify a ticket") as session:
            row = await ts.by_number(session, number)
            if row.kind != "fault":
                raise ValueError(f"{number} is a {row.kind} ticket: it has no severity to "
                                 "reclassify")
            next_state(number, Action.RECLASSIFY, TicketState(row.state))
            if severity == row.severity:
                raise ValueError(f"ticket {number} is already {severity}")
            old = row.severity
            due = deadlines(self._terms(row.site), severity, ts.epoch(row.opened_at) or at)
            said = [f"{old} → {severity}: {why}"]
            if row.responded_at is None and ts.epoch(row.response_due) != due.response_due:
                was = await self._supersede(session, row, "response", at, who,
                                            f"reclassified {old} → {severity}")
                row.response_due, row.response_breached_at = ts.moment(due.response_due), None
                said.append(f"respond by {when(due.response_due)}"
                            + (f" ({was})" if was else ""))
            if (ts.epoch(row.resolve_due), row.resolve_to_agree) != \
                    (due.resolve_due, due.resolve_to_agree):
                was = await self._supersede(session, row, "resolve", at, who,
                                            f"reclassified {old} → {severity}")
                row.resolve_due, row.resolve_to_agree = (ts.moment(due.resolve_due),
                                                         due.resolve_to_agree)
                row.resolve_breached_at = None
                said.append(("repair due to agree" if due.resolve_due is None
                             else f"repair due {when(due.resolve_due)}")
                            + (f" ({was})" if was else ""))
            if row.original_severity is None:
                row.original_severity = old
            row.severity = severity
            events = [await ts.add_event(session, row, K.RECLASSIFIED, at, actor=who.name,
                                         note="; ".join(said), via=who.via or None)]
            if severity == "emergency":
                events.append(await ts.add_event(
                    session, row, K.ESCALATED, at,
                    note=self._escalation("emergency, at once", row.site)))
        return self._emit(events)
