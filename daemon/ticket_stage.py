"""The ticket stage of the running daemon: faults and poll health into the ticket
manager, stored ticket events to the notifiers and the rule engine's silences,
housekeeping.

Events reach the notifiers from the store, not from the manager's callback: an
EventFollower reads every event written — by this daemon, ``elvwatch tickets …`` or
another process on the same store — so every action notifies alike, and an event
committed just before a crash is still notified after the restart.

The daemon (daemon/app.py) owns one :class:`TicketStage`, hands it the rule engine's
faults and the health of each device's polls, and tells it when store writes fail and
work again; the stage owns everything else of tickets and notifications.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from elvwatch.config.resolved import Config
from elvwatch.daemon.reload import ConfigUnusable, Plan
from elvwatch.exporters.notify.dispatcher import Dispatcher
from elvwatch.exporters.notify.spool import SpooledLog
from elvwatch.rules.alertmanager import RULE_PREFIX as ALERTMANAGER_RULES
from elvwatch.rules.engine import Engine
from elvwatch.rules.faults import FaultState, FaultTransition
from elvwatch.rules.silence import Silence, Silencer
from elvwatch.tickets import silence_store
from elvwatch.tickets.events import TicketEvent, TicketEventKind, fault_episode
from elvwatch.tickets.follower import BATCH as FOLLOWER_BATCH
from elvwatch.tickets.follower import EventFollower
from elvwatch.tickets.lifecycle import IN_HAND, TicketState
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.sla import SiteTerms, deadlines
from elvwatch.tickets.stats import TicketStats, ticket_stats
from elvwatch.tickets.store import Store, StoreError

log = logging.getLogger(__name__)

# Events of a preventive work order that open, move or end its visit's silence (written
# by the ticket stage with the event; the rule engine's Silencer is refreshed on seeing it).
VISIT_EVENTS = (TicketEventKind.ACKNOWLEDGED, TicketEventKind.ARRIVED,
                TicketEventKind.DEPARTED, TicketEventKind.RESOLVED, TicketEventKind.CLOSED)
# Rule durations, silences and the stored ticket events are checked every second;
# deadlines, preventive work orders, CLI-made silences and the ticket figures of
# /metrics every 15 s.
RULE_TICK_SECONDS = 1.0
TICKET_TICK_SECONDS = 15.0
# At start, events from this far back are followed again: one committed just before a
# crash is notified (the notification log skips those already sent).
REPLAY_SECONDS = 86400.0
# Reads of a storm of events per housekeeping round, at most.
FOLLOW_ROUNDS = 20
# A fault that has waited this long for a store that cannot take its ticket is
# notified without one (the ticket's own "opened" is then not sent again).
UNRECORDED_NOTIFY_SECONDS = 10.0
# How often the notifications' spool is copied to the store.
SPOOL_SYNC_SECONDS = 5.0


class TicketStage:
    def __init__(self, engine: Engine, silencer: Silencer, config: Config,
                 wake: Callable[[], None]) -> None:
        self.engine = engine
        self.silencer = silencer
        self.config = config  # the running config (silences, ticket settings)
        self._wake = wake  # the daemon's store writer: there is work for the store
        self.store: Store | None = None
        self.tickets: TicketManager | None = None
        self.terms: dict[str, SiteTerms] = {}
        self.dispatcher: Dispatcher | None = None
        self.ticket_stats: TicketStats | None = None
        self.notify_log: SpooledLog | None = None
        self.started = time.time()
        self.store_errors = 0  # failed housekeeping rounds (the daemon counts its writes)
        # Set while the daemon's store writer finds the store down.
        self.store_down_since: float | None = None
        self._unrecorded_told: set[str] = set()  # fault episodes notified without a ticket
        self._stored_silences: list[Silence] = []
        self.pending_faults: list[FaultTransition] = []
        self._pending_events: list[TicketEvent] = []
        self._follower: EventFollower | None = None
        self._healthy: dict[str, int] = {}
        self._unhealthy: set[str] = set()
        self._tickets_changed = False
        # Ticket changes seen: this daemon's at commit, other processes' as followed.
        self.ticket_changes = 0
        self._resynced = False
        self._last_ticket_tick = 0.0

    # -- what the daemon hands over ------------------------------------------------------
    def add_faults(self, faults: Sequence[FaultTransition]) -> None:
        if faults:
            self.pending_faults += faults
            self._wake()

    def poll_health(self, device: str, ok: bool) -> None:
        """A poll of ``device``'s first check: healthy polls in a row count towards
        verifying its resolved ticket, a failed one starts the count again."""
        if ok:
            self._healthy[device] = self._healthy.get(device, 0) + 1
            self._unhealthy.discard(device)
        else:
            self._healthy.pop(device, None)
            self._unhealthy.add(device)

    def store_failed(self, now: float) -> None:
        if self.store_down_since is None:
            self.store_down_since = now

    def store_works(self) -> float | None:
        """Store writes work (again); how long they did not, if they did not."""
        down, self.store_down_since = self.store_down_since, None
        self._unrecorded_told.clear()
        return down

    async def refresh_silences(self, config: Config) -> None:
        """Silences come from the config and from the store (made by CLI/API); while
        the store cannot be read, its silences stay as last read."""
        assert self.store is not None
        try:
            self._stored_silences = await silence_store.load(self.store)
        except StoreError as exc:
            log.warning("silences kept as last read from the store: %s", exc)
        silences = sorted([c.to_silence() for c in config.model.silences]
                          + self._stored_silences, key=lambda s: s.id)
        # Only a real change: a new set makes the engine re-publish every firing fault.
        if silences != sorted(self.silencer.list(include_expired=True), key=lambda s: s.id):
            self.silencer.replace_all(silences)

    async def start(self, store: Store) -> None:
        """The ticket manager on the open store, and the follower of its events."""
        self.store = store
        settings = self.config.model.tickets
        self.tickets = TicketManager(
            store, lambda: self.terms, on_events=self._on_ticket_events,
            verify_after_polls=settings.verify_after_polls,
            reopen_window=settings.reopen_window, close_after=settings.close_after)
        self._follower = EventFollower(
            self.tickets, await self.tickets.event_position(time.time() - REPLAY_SECONDS))

    def configure(self, config: Config, terms: dict[str, SiteTerms]) -> None:
        """The config being put to work: its sites' terms and ticket settings."""
        self.config = config
        self.terms = terms
        if self.tickets is not None:
            settings = config.model.tickets
            self.tickets.verify_after_polls = settings.verify_after_polls
            self.tickets.reopen_window = settings.reopen_window
            self.tickets.close_after = settings.close_after

    async def prepare_notify(self, plan: Plan) -> None:
        """Open the notifications' spool on first use: part of preparing a (re)load,
        so a spool that cannot open fails it before anything is swapped."""
        if not plan.notifiers or self.notify_log is not None:
            return
        path = plan.config.model.storage.notify_spool
        try:
            self.notify_log = await SpooledLog.open(path, plan.config.storage_url)
        except (SQLAlchemyError, OSError) as exc:
            raise ConfigUnusable([f"storage.notify_spool: cannot open {path}: {exc}"]) \
                from exc

    async def swap_notify(self, plan: Plan) -> None:
        """The new dispatcher starts before the old one stops; the spool is shared."""
        if not plan.notifiers:
            if self.dispatcher is not None:
                await self.dispatcher.stop()
                self.dispatcher = None
            return
        assert self.notify_log is not None
        old = self.dispatcher
        if old is None:
            # Owed by the store from before the spool existed (or before it was lost).
            await self.notify_log.seed(time.time())
        dispatcher = Dispatcher(plan.notify, plan.notifiers, self.notify_log,
                                stats=old.stats if old is not None else None)
        plan.notifiers = {}  # the dispatcher owns them now
        await dispatcher.start()
        self.dispatcher = dispatcher
        if old is not None:
            await old.stop()

    async def stop_notifiers(self) -> None:
        """Stop sending (what was being sent stays in the spool)."""
        if self.dispatcher is not None:
            await self.dispatcher.stop()
            self.dispatcher = None

    async def close(self) -> None:
        """Close the spool, once the store has taken what was pending."""
        if self.notify_log is not None:
            await self.notify_log.close()
            self.notify_log = None

    async def hand_over_events(self) -> None:
        """Ticket events to the dispatcher, whose spool is on local disk: this never
        waits for the store, so what the ticket stage said before the database went
        away still goes out while it is away."""
        events, self._pending_events = self._pending_events, []
        if not events or self.dispatcher is None:
            return
        try:
            await self.dispatcher.submit(events)
        except (SQLAlchemyError, OSError) as exc:  # the local disk: kept, tried again
            self._pending_events[:0] = events
            log.error("notify: cannot write to the spool, will retry: %s", exc)

    async def spool_syncer(self) -> None:
        """Copy the spool to the store's notification log every few seconds."""
        while True:
            await asyncio.sleep(SPOOL_SYNC_SECONDS)
            spool = self.notify_log
            if spool is None:
                continue
            try:
                await spool.sync()
            except Exception as exc:  # the store's trouble; the spool keeps it all
                spool.store_unreachable("cannot copy the spool to the store", exc)
                await spool.count_unsynced()

    async def notify_unrecorded_faults(self, now: float) -> None:
        """While the store cannot take tickets, tell the receivers about faults that
        wait for one: the same words as a ticket's "opened", without its number, and
        said once per fault episode (the ticket's own "opened" is covered by it)."""
        if self.store_down_since is None or self.dispatcher is None:
            return
        ticketed = {t.device for t in self.ticket_stats.live
                    if t.state in IN_HAND} \
            if self.ticket_stats is not None else set()
        events = []
        for fault in self.pending_faults:
            episode = fault_episode(fault.fingerprint, fault.at)
            if (fault.state is not FaultState.FIRING or fault.root_cause is not None
                    or fault.suppressed_by is not None or episode in self._unrecorded_told
                    or now - fault.at < UNRECORDED_NOTIFY_SECONDS
                    or fault.device in ticketed):
                continue
            events.append(unrecorded_event(fault, episode, self.terms.get(fault.site)))
        if not events:
            return
        try:
            await self.dispatcher.submit(events)
        except (SQLAlchemyError, OSError) as exc:
            log.error("notify: cannot write to the spool, will retry: %s", exc)
            return
        self._unrecorded_told.update(e.episode for e in events if e.episode)
        log.warning("notify: %d fault(s) notified without a ticket: the store cannot "
                    "take tickets", len(events))

    async def write(self) -> None:
        """Faults to tickets, poll health to auto-verification, events to notifiers.
        Each batch is taken back on a store error: handing it over again is safe."""
        assert self.tickets is not None
        faults, self.pending_faults = self.pending_faults, []
        try:
            if faults:
                await self.tickets.handle(faults)
        except BaseException:
            self.pending_faults[:0] = faults
            raise
        if self._tickets_changed:
            # New, resolved or closed tickets: the figures and the devices waiting for
            # healthy polls change now, not at the next housekeeping round.
            self._tickets_changed = False
            assert self.store is not None
            self.ticket_stats = await ticket_stats(self.store)
        unhealthy, self._unhealthy = self._unhealthy, set()
        healthy, self._healthy = self._healthy, {}
        # Only devices with a resolved ticket wait for healthy polls; until the figures
        # are first read nobody is known to wait (asking about every device of a large
        # fleet would hold the store's write lock for seconds).
        waiting = {t.device for t in self.ticket_stats.live if t.state == TicketState.RESOLVED} \
            if self.ticket_stats is not None else set()
        unhealthy &= waiting
        healthy = {d: n for d, n in healthy.items() if d in waiting}
        for device in unhealthy:
            await self.tickets.device_unhealthy(device)
        by_polls: dict[int, list[str]] = {}
        for device, polls in healthy.items():
            by_polls.setdefault(polls, []).append(device)
        for polls, devices in by_polls.items():
            await self.tickets.devices_healthy(devices, polls)

    def _on_ticket_events(self, events: Sequence[TicketEvent]) -> None:
        # Notified through the follower (from the store), like everyone else's events.
        for event in events:
            log.info("ticket %s %s: %s %s", event.ticket, event.kind.value, event.title_en,
                     event.note)
        self._tickets_changed = True
        self.ticket_changes += 1
        self._wake()

    async def _follow_events(self) -> None:
        """Hand every newly stored ticket event to the notifiers; a preventive visit's
        start or end refreshes the rule engine's silences from the store."""
        if self._follower is None:
            return
        for _ in range(FOLLOW_ROUNDS):
            events = await self._follower.poll()
            if any(e.ticket_kind == "preventive" and e.kind in VISIT_EVENTS for e in events):
                await self.refresh_silences(self.config)
            if events:
                self._tickets_changed = True
                self.ticket_changes += 1
            self._pending_events += events
            if len(events) < FOLLOWER_BATCH:
                break
        await self.hand_over_events()

    async def housekeeping(self, now: float) -> None:
        """Once the rules have warmed up, settle tickets of faults that ended while the
        daemon was not running; every 15 s deadlines, work orders, CLI-made silences and
        the ticket figures; every round the events stored since the last one.  Not
        while the store writer finds the store down: it would only fail again every
        second (the writer says when the store is back)."""
        assert self.tickets is not None and self.store is not None
        if self.store_down_since is not None:
            return
        try:
            if not self._resynced and \
                    now - self.started > self.engine.hold_seconds + RULE_TICK_SECONDS * 5:
                # Alertmanager's faults are not the engine's to vouch for: they end
                # when Alertmanager says resolved.
                await self.tickets.resync({t.fingerprint for t in self.engine.firing()},
                                          now, keep_rules=(ALERTMANAGER_RULES,))
                self._resynced = True
            if now - self._last_ticket_tick >= TICKET_TICK_SECONDS:
                self._last_ticket_tick = now
                await self.tickets.tick(now)
                await self.refresh_silences(self.config)
                self.ticket_stats = await ticket_stats(self.store)
                self._wake()
            await self._follow_events()
        except StoreError as exc:
            self.store_errors += 1
            log.error("ticket housekeeping failed, will retry: %s", exc)


def unrecorded_event(fault: FaultTransition, episode: str,
                     terms: SiteTerms | None) -> TicketEvent:
    """A fault as an "opened" notification before its ticket exists: no number yet;
    the deadlines the ticket will get, counted from the fault."""
    due = deadlines(terms, fault.severity, fault.at) if terms is not None else None
    return TicketEvent(
        id=f"unrecorded:{episode}", kind=TicketEventKind.OPENED, ticket="", at=fault.at,
        site=fault.site, site_name=terms.name if terms else fault.site,
        language=terms.language if terms else "zh-CN", severity=fault.severity,
        title_zh=f"{fault.device} {fault.name_zh}", title_en=f"{fault.device}: {fault.name_en}",
        device=fault.device, system=fault.system, affected=fault.affected,
        response_due=due.response_due if due else None,
        resolve_due=due.resolve_due if due else None,
        note="数据库暂不可用，工单号待恢复后生成 / the store is unavailable: the ticket "
             "number follows when it is back" + (f" — {fault.summary}" if fault.summary
                                                 else ""),
        episode=episode)
