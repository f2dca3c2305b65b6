"""The ticket state machine: which action moves a ticket from which state to which.

``open → acknowledged → resolved → verified → closed``, and ``reopen`` back to open
from resolved, verified or closed.  Resolving straight from open is allowed (the
system resolves a fault that cleared by itself; an engineer may fix a fault before
anyone acknowledged it).  Guards that need more than the state (a device still
failing cannot be verified) are checked here too, so every refusal reads the same.

Errors::

    TicketError             base of every error the ticket stage raises on purpose
    ├── UnknownTicket       no ticket with that number
    └── IllegalTransition   the action is not allowed now; the message says why
"""

from __future__ import annotations

from enum import StrEnum


class TicketState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    VERIFY = "verify"
    CLOSE = "close"
    REOPEN = "reopen"


class TicketError(Exception):
    """An error of the ticket stage raised on purpose; the message is fit for a user."""


class UnknownTicket(TicketError):
    pass


class IllegalTransition(TicketError):
    def __init__(self, message: str, number: str, action: Action, state: TicketState) -> None:
        super().__init__(message)
        self.number = number
        self.action = action
        self.state = state


S = TicketState
# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[TicketState], TicketState]] = {
    Action.ACKNOWLEDGE: (frozenset({S.OPEN}), S.ACKNOWLEDGED),
    Action.RESOLVE: (frozenset({S.OPEN, S.ACKNOWLEDGED}), S.RESOLVED),
    Action.VERIFY: (frozenset({S.RESOLVED}), S.VERIFIED),
    Action.CLOSE: (frozenset({S.VERIFIED}), S.CLOSED),
    Action.REOPEN: (frozenset({S.RESOLVED, S.VERIFIED, S.CLOSED}), S.OPEN),
}


def next_state(number: str, action: Action, state: TicketState, *,
               device_failing: str | None = None) -> TicketState:
    """The state ``action`` leads to, or IllegalTransition saying why not.

    ``device_failing`` names the device when the ticket's fault is still firing: such a
    ticket cannot be verified (nor closed, which needs verification first)."""
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise IllegalTransition(
            f"cannot {action.value} ticket {number}: it is {state.value}, "
            f"{action.value} needs a ticket that is {wanted}", number, action, state)
    if action is Action.VERIFY and device_failing is not None:
        raise IllegalTransition(
            f"cannot verify ticket {number}: device {device_failing} is still failing; "
            "it can be verified once monitoring sees it healthy again", number, action, state)
    return target
