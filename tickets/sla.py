"""Contract terms and SLA clocks: the deadlines a ticket gets and when they are breached.

The daemon turns its site config into :class:`SiteTerms` (tickets never import daemon).
Deadlines are absolute times stored with the ticket, so a restart continues the clock
from the stored times instead of starting it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from elvwatch.rules.faults import Severity
from elvwatch.tickets.lifecycle import IN_HAND, TicketState

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class SiteTerms:
    """What the ticket stage needs to know about a site and its maintenance contract.

    ``resolve_hours[severity]`` None: the repair deadline is agreed with the site
    representative per ticket ("to agree").  ``contract_start``/``contract_months``
    bound the preventive schedule; ``preventive_by_system`` overrides ``preventive``
    per system.  ``systems`` are the systems installed at the site."""

    site: str
    name: str
    language: str = "zh-CN"
    response_hours: float = 12.0
    resolve_hours: Mapping[str, float | None] = field(default_factory=lambda: {
        Severity.GENERAL: 12.0, Severity.MAJOR: None, Severity.EMERGENCY: 4.0})
    emergency_response_hours: float = 0.5
    preventive: str = "quarterly"            # monthly | quarterly
    preventive_by_system: Mapping[str, str] = field(default_factory=dict)
    systems: tuple[str, ...] = ()
    contract_start: date | None = None       # None: no contract, no preventive schedule
    contract_months: int = 12
    timezone: str = "Asia/Shanghai"          # periods (months, quarters) are local
    # system -> its work orders' checklist items (id, zh, en), composed from the system's
    # and the installed device kinds' lists; a system not named has the built-in one.
    checklists: Mapping[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    escalation: tuple[str, ...] = ()         # names of the people a breach is escalated to


@dataclass(frozen=True, slots=True)
class Deadlines:
    response_due: float
    resolve_due: float | None    # None: to agree

    @property
    def resolve_to_agree(self) -> bool:
        return self.resolve_due is None


def deadlines(terms: SiteTerms, severity: str, opened_at: float) -> Deadlines:
    """Deadlines of a ticket of ``severity`` opened at ``opened_at``.

    An emergency is answered within ``emergency_response_hours`` (0: immediately, the
    deadline is the opening itself); the rest within ``response_hours``.  A severity
    the contract does not name gets the general terms."""
    response = (terms.emergency_response_hours if severity == Severity.EMERGENCY
                else terms.response_hours)
    if severity in terms.resolve_hours:
        hours = terms.resolve_hours[severity]
    else:
        hours = terms.resolve_hours.get(Severity.GENERAL, 12.0)
    return Deadlines(opened_at + response * HOUR,
                     None if hours is None else opened_at + hours * HOUR)


@dataclass(frozen=True, slots=True)
class Breach:
    which: str          # "response" | "resolve"
    due: float


def breaches(state: str, now: float, *, response_due: float | None,
             resolve_due: float | None, response_breached: bool,
             resolve_breached: bool) -> list[Breach]:
    """Deadlines passed by ``now`` and not yet reported.

    The response deadline is met by acknowledging or resolving, the repair deadline by
    resolving; a deadline still "to agree" cannot be breached."""
    found: list[Breach] = []
    if (state == TicketState.OPEN and not response_breached and response_due is not None
            and now >= response_due):
        found.append(Breach("response", response_due))
    if (state in IN_HAND and not resolve_breached
            and resolve_due is not None and now >= resolve_due):
        found.append(Breach("resolve", resolve_due))
    return found
