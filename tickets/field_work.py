"""What engineers record in the field and what the customer response centre records
after: dispatch details, arrival and departure, photos, return visits.

Each call is one transaction that writes its record and the ticket's audit event (with
the actor), then hands the event to the manager's listeners (notifiers, visit
silences) like every other ticket action.  A return visit of the site as a whole
(定期回访, no ticket) has no ticket to audit: its row names who recorded it.

Errors: UnknownTicket, IllegalTransition, ValueError (bad input) — each changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets import visits
from elvwatch.tickets.core import K, ManagerBase
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.field_schema import PhotoRow
from elvwatch.tickets.lifecycle import Action, IllegalTransition, TicketState, next_state
from elvwatch.tickets.records import Actor, actor_of
from elvwatch.tickets.schema import FeedbackRow

MAX_TEXT = 4000


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The answer to a fault within the response deadline: the solution given, the
    engineer sent and when they are expected on site."""

    solution: str
    assignee: str
    eta: float | None = None


@dataclass(frozen=True, slots=True)
class PhotoFile:
    """A checked photo already kept on disk under ``file`` (web/photos.py)."""

    file: str
    content_type: str
    size: int
    sha256: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ReturnVisit:
    """One line of 用户回访反馈信息表."""

    rating: int
    comment: str = ""
    contact: str = ""                    # who was visited or called
    quality_issue: bool | None = None    # 是否工程质量问题; None: not assessed yet
    solution: str = ""                   # 处理方案 (the customer response centre's)
    outcome: str = ""                    # 处理结果


def stored_photo(directory: Path, file: str) -> Path:
    """Where the photo ``file`` (a name from the store) is kept; a name that could
    leave ``directory`` is FileNotFoundError, whoever wrote it into the store."""
    if not file or "/" in file or "\\" in file or file.startswith("."):
        raise FileNotFoundError(file)
    return directory / file


def _text(value: str, what: str, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise ValueError(f"{what} is required")
    return value[:MAX_TEXT]


def _stamp(seconds: float, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(seconds, ZoneInfo(zone)).isoformat(timespec="minutes")


class FieldWork:
    """Field records on the tickets of ``manager`` (its store, clock, lock, listeners)."""

    def __init__(self, manager: ManagerBase) -> None:
        self.manager = manager

    async def dispatch(self, number: str, actor: str | Actor, dispatch: Dispatch,
                       note: str = "") -> list[TicketEvent]:
        """Acknowledge an open ticket with the solution, the engineer and the ETA."""
        m, who = self.manager, actor_of(actor)
        solution = _text(dispatch.solution, "solution", required=True)
        assignee = _text(dispatch.assignee, "assigned engineer", required=True)
        at = m.clock()
        if dispatch.eta is not None and dispatch.eta < at - 3600:
            raise ValueError("the expected arrival is in the past")
        async with m._lock, m.store.transaction("dispatch an engineer") as session:
            row = await ts.by_number(session, number)
            target = next_state(number, Action.ACKNOWLEDGE, TicketState(row.state))
            row.solution, row.assignee = solution, assignee[:200]
            row.eta = ts.moment(dispatch.eta)
            zone = m._terms(row.site).timezone
            text = f"{assignee}: {solution}" + (
                f" (ETA {_stamp(dispatch.eta, zone)})" if dispatch.eta is not None else "")
            if note.strip():
                text += f"; {_text(note, 'note')}"
            event = await m._move(session, row, target, K.ACKNOWLEDGED, at, who, text)
        return m._emit([event])

    async def arrive(self, number: str, actor: str | Actor, engineer: str,
                     note: str = "") -> list[TicketEvent]:
        return await self._visit(number, actor, engineer, note, arriving=True)

    async def depart(self, number: str, actor: str | Actor, engineer: str,
                     note: str = "") -> list[TicketEvent]:
        return await self._visit(number, actor, engineer, note, arriving=False)

    async def _visit(self, number: str, actor: str | Actor, engineer: str, note: str, *,
                     arriving: bool) -> list[TicketEvent]:
        """An arrival (a visit starts: its 服务回执单) or a departure (it ends)."""
        m, who = self.manager, actor_of(actor)
        engineer = _text(engineer, "engineer", required=True)
        at = m.clock()
        doing = "record an arrival" if arriving else "record a departure"
        async with m._lock, m.store.transaction(doing) as session:
            row = await ts.by_number(session, number)
            await (visits.arrive if arriving else visits.depart)(session, row, engineer, at,
                                                                 note)
            await m._on_site(session, row, at, who, arrived=arriving)
            event = await ts.add_event(session, row, K.ARRIVED if arriving else K.DEPARTED,
                                       at, actor=who.name, note=_text(note, "note"),
                                       via=who.via or None)
        return m._emit([event])

    async def add_photo(self, number: str, actor: str | Actor, photo: PhotoFile,
                        caption: str = "") -> list[TicketEvent]:
        """Record a photo (its file already written) on the ticket, in the visit in
        progress if there is one."""
        m, who = self.manager, actor_of(actor)
        at = m.clock()
        async with m._lock, m.store.transaction("add a photo") as session:
            row = await ts.by_number(session, number)
            session.add(PhotoRow(
                ticket_id=row.id, visit_id=await visits.open_visit_id(session, row.id),
                file=photo.file, content_type=photo.content_type, bytes=photo.size,
                sha256=photo.sha256, width=photo.width, height=photo.height,
                caption=_text(caption, "caption")[:500], uploaded_by=who.name, at=ts.moment(at)))
            event = await ts.add_event(session, row, K.PHOTO, at, actor=who.name,
                                       note=_text(caption, "caption")[:500],
                                       via=who.via or None)
        return m._emit([event])

    async def photo_file(self, number: str, photo_id: int) -> PhotoRow:
        """The stored photo ``photo_id`` of ticket ``number`` (ValueError: not one of its)."""
        async with self.manager.store.transaction("read a photo") as session:
            row = await ts.by_number(session, number)
            photo = await session.get(PhotoRow, photo_id)
            if photo is None or photo.ticket_id != row.id:
                raise ValueError(f"ticket {number} has no photo {photo_id}")
            return photo

    async def return_visit(self, site: str, actor: str | Actor, visit: ReturnVisit,
                           number: str | None = None) -> list[TicketEvent]:
        """Record a return visit: after ticket ``number`` (its service done: resolved or
        later), or of the site as a whole (``number`` None)."""
        if not 1 <= visit.rating <= 5:
            raise ValueError("rating must be 1 to 5")
        m, who = self.manager, actor_of(actor)
        at = m.clock()
        async with m._lock, m.store.transaction("record a return visit") as session:
            row = None
            if number is not None:
                row = await ts.by_number(session, number)
                if row.site != site:
                    raise ValueError(f"ticket {number} is not of site {site}")
                if row.state not in ("resolved", "verified", "closed"):
                    raise IllegalTransition(
                        f"cannot record a return visit on ticket {number}: it is "
                        f"{row.state}; the return visit follows the service",
                        number, Action.CLOSE, TicketState(row.state))
            outcome = _text(visit.outcome, "outcome")
            session.add(FeedbackRow(
                ticket_id=None if row is None else row.id, site=site, at=ts.moment(at),
                rating=visit.rating, comment=_text(visit.comment, "comment"),
                recorded_by=who.name, contact=_text(visit.contact, "contact") or None,
                quality_issue=visit.quality_issue,
                solution=_text(visit.solution, "solution") or None, outcome=outcome or None,
                outcome_at=ts.moment(at) if outcome else None))
            events = []
            if row is not None:
                events.append(await ts.add_event(
                    session, row, K.FEEDBACK, at, actor=who.name, via=who.via or None,
                    note=f"rating {visit.rating}" + (f": {visit.comment.strip()}"
                                                     if visit.comment.strip() else "")))
        return m._emit(events)

    async def settle_return_visit(self, feedback_id: int, actor: str | Actor, outcome: str,
                                  solution: str = "") -> None:
        """Write the 处理结果 (and, if not given before, the 处理方案) of a return visit
        found to be a workmanship problem."""
        m, who = self.manager, actor_of(actor)
        outcome = _text(outcome, "outcome", required=True)
        at = m.clock()
        async with m._lock, m.store.transaction("settle a return visit") as session:
            row = await session.get(FeedbackRow, feedback_id)
            if row is None:
                raise ValueError(f"no return visit {feedback_id}")
            row.outcome, row.outcome_at = outcome, datetime.fromtimestamp(at, UTC)
            if solution.strip():
                row.solution = _text(solution, "solution")
            if who.name not in row.recorded_by:
                row.recorded_by = f"{row.recorded_by}; {who.name}"[:MAX_TEXT]
