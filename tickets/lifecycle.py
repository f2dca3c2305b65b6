"""The ticket state machine: which action moves a ticket from which state to which.

``open → acknowledged → resolved → verified → closed``, and ``reopen`` back to open
from resolved, verified or closed.  The words are the maintenance plan's:

* ``resolved`` by the engineer's service record (服务记录).  Resolving straight from
  open is allowed (an engineer may fix a fault before anyone acknowledged it).  A
  ticket nobody acknowledged whose fault cleared on its own is resolved by the system
  ("recovered without intervention"); an acknowledged one whose device recovers is
  resolved *awaiting the engineer's record*, and ``resolve`` is accepted once more in
  that state to add it.
* ``verified`` technically (系统确认恢复): the probes saw the device healthy for the
  configured number of polls.  A ticket no probe watches (a work order, a request
  about a place rather than a device) has no technical verification.
* ``closed`` only by the site representative's sign-off (用户已验收: a signed link or a
  recorded paper receipt), or by the system after a configured number of days without
  one, with that reason recorded.  A sign-off given while the probes have not yet
  confirmed the recovery is kept and closes the ticket when they do; one given after
  the system closed the ticket is recorded on the closed ticket, which stays closed.

Guards that need more than the state (a device still failing, a missing service
record) are checked here too, so every refusal reads the same.

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


# Waiting for the engineer: nobody has recorded the work yet.
IN_HAND = frozenset({TicketState.OPEN, TicketState.ACKNOWLEDGED})
# Resolved by the engineer and not closed yet: a sign-off is what is left.
TO_SIGN = frozenset({TicketState.RESOLVED, TicketState.VERIFIED})
# The engineer's work is done (recovery confirmed or not, signed off or not).
WORKED = frozenset({TicketState.RESOLVED, TicketState.VERIFIED, TicketState.CLOSED})


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    VERIFY = "verify"
    SIGN_OFF = "sign off"
    CLOSE = "close"
    REOPEN = "reopen"
    RECLASSIFY = "reclassify"


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
# action -> (states it may start from, state it leads to).  SIGN_OFF leads to CLOSED
# when the recovery is confirmed (or needs no confirmation); see sign_off_target.
TRANSITIONS: dict[Action, tuple[frozenset[TicketState], TicketState]] = {
    Action.ACKNOWLEDGE: (frozenset({S.OPEN}), S.ACKNOWLEDGED),
    Action.RESOLVE: (frozenset({S.OPEN, S.ACKNOWLEDGED}), S.RESOLVED),
    Action.VERIFY: (frozenset({S.RESOLVED}), S.VERIFIED),
    Action.SIGN_OFF: (frozenset({S.RESOLVED, S.VERIFIED}), S.CLOSED),
    Action.CLOSE: (frozenset({S.VERIFIED}), S.CLOSED),
    Action.REOPEN: (frozenset({S.RESOLVED, S.VERIFIED, S.CLOSED}), S.OPEN),
    Action.RECLASSIFY: (frozenset({S.OPEN, S.ACKNOWLEDGED}), S.OPEN),  # state unchanged
}


def _refuse(number: str, action: Action, state: TicketState, why: str) -> IllegalTransition:
    return IllegalTransition(f"cannot {action.value} ticket {number}: {why}", number, action,
                             state)


def next_state(number: str, action: Action, state: TicketState, *,
               device_failing: str | None = None, awaiting_record: bool = False,
               signed_off: bool = False, auto_closed: bool = False) -> TicketState:
    """The state ``action`` leads to, or IllegalTransition saying why not.

    ``device_failing`` names the device when the ticket's fault is still firing: such a
    ticket cannot be verified nor signed off.  ``awaiting_record``: resolved by the
    device's recovery, the engineer's service record not written yet — resolve is
    accepted (it stays resolved), verification and sign-off wait for the record.
    ``auto_closed``: closed by the system with no sign-off — a sign-off given later is
    still taken (it stays closed)."""
    if action is Action.RESOLVE and state is S.RESOLVED and awaiting_record:
        return S.RESOLVED
    if action is Action.SIGN_OFF and state is S.CLOSED and auto_closed and not signed_off:
        return S.CLOSED
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise _refuse(number, action, state,
                      f"it is {state.value}, {action.value} needs a ticket that is {wanted}")
    if action in (Action.VERIFY, Action.SIGN_OFF) and device_failing is not None:
        raise _refuse(number, action, state,
                      f"device {device_failing} is still failing; it can be "
                      f"{'verified' if action is Action.VERIFY else 'signed off'} once "
                      "monitoring sees it healthy again")
    if action in (Action.VERIFY, Action.SIGN_OFF) and awaiting_record:
        raise _refuse(number, action, state,
                      "the device recovered but the engineer's service record is not "
                      "written yet (resolve it with the record first)")
    if action is Action.SIGN_OFF and signed_off:
        raise _refuse(number, action, state, "it is already signed off")
    if action is Action.RECLASSIFY:
        return state
    return target


def sign_off_refusal(state: str, *, fault_active: bool, awaiting_record: bool,
                     signed_off: bool, auto_closed: bool = False) -> str | None:
    """Why a sign-off would be refused now (a short key a page can word), or None.

    ``not_resolved`` (open or acknowledged), ``failing``, ``awaiting_record``,
    ``signed_off`` (already, or closed after one).  A ticket the system closed for want
    of a sign-off (``auto_closed``) still takes one."""
    if state == S.CLOSED and auto_closed and not signed_off:
        return None
    if state == S.CLOSED or signed_off:
        return "signed_off"
    if state not in (S.RESOLVED, S.VERIFIED):
        return "not_resolved"
    if fault_active:
        return "failing"
    if awaiting_record:
        return "awaiting_record"
    return None
