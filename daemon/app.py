"""The running daemon: config → scheduler → state tracker → store, and the HTTP side.

Start order matters: the store opens (and migrates) first, the archive is synced and
the last persisted device states are restored *before* the first check runs, so the
first observation after a restart is compared with the state the daemon had, not with
"unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from daemon.alertmanager import RULE_PREFIX as ALERTMANAGER_RULES
from daemon.config import Config, ConfigInvalid, Device, load_config
from daemon.scheduler import LAG_BUCKETS, Scheduler
from daemon.terms import site_terms
from exporters.metrics import DeviceLabels, Snapshot
from exporters.notify.dispatcher import Dispatcher
from exporters.notify.log import SqlNotificationLog
from exporters.notify.receivers import build_notifiers
from probes.base import Check, Observation, Status, Target
from probes.onvif_event_source import OnvifEventSource
from probes.registry import PULL, PUSH, PushManager
from probes.snmp import forget as snmp_forget
from probes.snmp_uplink import Uplink, UplinkMap
from rules.engine import Engine
from rules.faults import FaultTransition
from rules.model import DeviceSpec, build_rules
from rules.silence import Silencer
from rules.state import DeviceState, DeviceStatus, StateTracker, StateTransition
from tickets import silence_store
from tickets.events import TicketEvent
from tickets.manager import TicketManager
from tickets.sla import SiteTerms
from tickets.stats import TicketStats, ticket_stats
from tickets.store import ArchiveEntry, Store, StoreError

log = logging.getLogger(__name__)

# Transitions are written in batches; a failed write is kept and retried with backoff
# (doubling up to this), so a database that goes away loses nothing.
STORE_FLUSH_SECONDS = 0.5
STORE_RETRY_MAX_SECONDS = 30.0
# Rule durations and silences are checked every second; deadlines, preventive work
# orders, CLI-made silences and the ticket figures of /metrics every 15 s.
RULE_TICK_SECONDS = 1.0
TICKET_TICK_SECONDS = 15.0
# Notifications owed from before a restart are looked up this far back.
REPLAY_SECONDS = 86400.0
FACT_KEYS = ("vendor", "model", "firmware", "serial")


def archive_entry(device: Device) -> ArchiveEntry:
    cfg = device.config
    return ArchiveEntry(
        id=cfg.id, site=cfg.site, system=device.system.value, kind=cfg.kind, name=cfg.name,
        vendor=cfg.vendor, model=cfg.model, serial=cfg.serial, firmware=cfg.firmware,
        location=str(cfg.location) if cfg.location else None, host=cfg.host,
        installed=cfg.installed, warranty_until=cfg.warranty_until,
        depends_on=tuple(cfg.depends_on), tags=tuple(cfg.tags))


class App:
    def __init__(self, config: Config) -> None:
        self.config = config
        sched = config.model.scheduler
        self.tracker = StateTracker(down_after=sched.down_after, up_after=sched.up_after)
        self.scheduler = Scheduler(
            self._on_observation, max_concurrency=sched.max_concurrency,
            per_host_concurrency=sched.per_host_concurrency, jitter=sched.jitter,
            backoff_max=sched.backoff_max)
        self.store: Store | None = None
        self.started = time.time()
        self.reload_ok = True
        self.reload_time = time.time()
        self.reload_errors: list[str] = []
        self.store_errors = 0
        self._pending: list[StateTransition] = []
        self._pending_facts: dict[str, dict[str, str]] = {}
        self._facts_seen: dict[str, dict[str, str]] = {}
        self._flush = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._labels: list[tuple[DeviceLabels, Device]] = []
        self._http_runner: object | None = None
        self.push: dict[str, PushManager] = {}
        self.uplinks = UplinkMap()  # camera ← switch port (config ``uplink``)
        # The rule and ticket stages.
        self.silencer = Silencer()
        self.engine = Engine([], silencer=self.silencer, hold_seconds=self._hold_seconds(config))
        self.tickets: TicketManager | None = None
        self._terms: dict[str, SiteTerms] = {}
        self._pending_faults: list[FaultTransition] = []
        self._pending_events: list[TicketEvent] = []
        self._healthy: dict[str, int] = {}
        self._unhealthy: set[str] = set()
        self._resynced = False
        self._tickets_changed = False
        self.ticket_stats: TicketStats | None = None
        self.dispatcher: Dispatcher | None = None
        self._notify_log: SqlNotificationLog | None = None

    # -- lifecycle -----------------------------------------------------------------
    @staticmethod
    def _hold_seconds(config: Config) -> float:
        # How long a child's fault waits for its parent's to be confirmed: a camera
        # behind a dead switch must not get a ticket of its own just by being faster.
        longest = max((c.interval for d in config.devices.values() for c in d.checks),
                      default=0.0)
        return longest * config.model.scheduler.down_after

    async def start(self, *, http: bool = True) -> None:
        self.store = await Store.open(self.config.storage_url)
        settings = self.config.model.tickets
        self.tickets = TicketManager(self.store, lambda: self._terms,
                                     on_events=self._on_ticket_events,
                                     verify_after_polls=settings.verify_after_polls,
                                     reopen_window=settings.reopen_window)
        await self._apply(self.config)
        for device, (state, since, cause) in (await self.store.current_states()).items():
            self.tracker.restore(device, state, since, cause)
        await self._start_notify(self.config)
        self._tasks.append(asyncio.create_task(self._writer(), name="store writer"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="ticker"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
        if http:
            from daemon.http import start_http

            self._http_runner = await start_http(self, self.config.model.http.host,
                                                 self.config.model.http.port)
        log.info("elvwatch started: %s", self.config.summary())

    async def _apply(self, config: Config) -> None:
        assert self.store is not None
        await self.store.sync_archive([archive_entry(d) for d in config.devices.values()],
                                      datetime.now(UTC))
        self.tracker.configure((d.id, [c.name for c in d.checks])
                               for d in config.devices.values())
        self._terms = site_terms(config)
        if self.tickets is not None:
            self.tickets.verify_after_polls = config.model.tickets.verify_after_polls
            self.tickets.reopen_window = config.model.tickets.reopen_window
        specs = [DeviceSpec(id=d.id, site=d.config.site, system=d.system.value,
                            kind=d.config.kind, tags=frozenset(d.config.tags),
                            checks={c.name: c.type for c in d.checks},
                            depends_on=tuple(d.config.depends_on), serial=d.config.serial)
                 for d in config.devices.values()]
        self.engine.hold_seconds = self._hold_seconds(config)
        self._pending_faults += self.engine.configure(specs, build_rules(config.model.rules))
        await self._refresh_silences(config)
        self.scheduler.set_targets(
            (d.target, tuple(c for c in d.checks if c.type in PULL))
            for d in config.devices.values())
        await self._apply_push(config)
        self._labels = [
            (DeviceLabels(d.id, d.config.site, d.system.value, d.config.kind,
                          d.config.vendor or "", d.config.model or "",
                          d.config.firmware or ""), d)
            for d in config.devices.values()]
        self.uplinks.configure(
            (Uplink(d.id, d.config.uplink.device, d.config.uplink.port,
                    d.config.uplink.poe_port)
             for d in config.devices.values() if d.config.uplink is not None),
            ((d.id, c.name) for d in config.devices.values() for c in d.checks
             if c.type == "snmp"))
        # SNMP remembers uptimes and table rows per device; a removed device's would
        # otherwise stay forever (and greet a new device of the same id as a reboot).
        for gone in self.config.devices.keys() - config.devices.keys():
            snmp_forget(gone)
        self.config = config

    async def _apply_push(self, config: Config) -> None:
        """Start, update or stop one manager per push source type in use.

        A manager whose settings changed is replaced (stopped first, so it frees its
        socket or broker session before the new one takes it)."""
        wanted: dict[str, list[tuple[Target, Check]]] = {
            name: [] for name in config.sources if name in PUSH}
        for device in config.devices.values():
            for check in device.checks:
                if check.type in PUSH:
                    wanted.setdefault(check.type, []).append((device.target, check))
        for name in list(self.push):
            settings_changed = config.sources.get(name) != self.config.sources.get(name)
            if name not in wanted or (settings_changed and config is not self.config):
                await self.push.pop(name).stop()
        for name, targets in wanted.items():
            manager = self.push.get(name)
            if manager is None:
                manager = PUSH[name].factory(config.sources.get(name), config.credentials,
                                             self._on_observation)
                await manager.start()
                self.push[name] = manager
            await manager.update(targets)

    async def _refresh_silences(self, config: Config) -> None:
        # Silences come from the config and from the store (made by CLI/API).
        assert self.store is not None
        self.silencer.replace_all([c.to_silence() for c in config.model.silences]
                                  + await silence_store.load(self.store))

    async def _start_notify(self, config: Config) -> None:
        """Build the new dispatcher before the old one stops, so a bad receiver leaves
        the running one in place; the log is shared by both."""
        if not config.model.notify.receivers:
            if self.dispatcher is not None:
                await self.dispatcher.stop()
                self.dispatcher = None
            return
        notifiers = build_notifiers(config.model.notify, config.credentials)
        if self._notify_log is None:
            self._notify_log = await SqlNotificationLog.open(config.storage_url)
        dispatcher = Dispatcher(config.model.notify, notifiers, self._notify_log)
        await dispatcher.start()
        old, self.dispatcher = self.dispatcher, dispatcher
        if old is not None:
            await old.stop()
        if old is None and self.tickets is not None:
            # Events stored just before a crash may not have been handed over yet; the
            # log skips what it already has.
            since = time.time() - REPLAY_SECONDS
            self._pending_events += [e for _, e in
                                     await self.tickets.events_after(0, since=since)]

    async def reload(self) -> bool:
        """Load the config file again; a bad one is reported and the old one kept."""
        try:
            new = await asyncio.to_thread(load_config, self.config.path)
        except ConfigInvalid as exc:
            self.reload_ok = False
            self.reload_errors = [str(e) for e in exc.errors]
            log.error("reload failed, keeping the running config:\n%s", exc)
            return False
        if new.model.http != self.config.model.http or new.storage_url != self.config.storage_url:
            log.warning("http and storage settings change only on restart")
        await self._apply(new)
        await self._start_notify(new)
        self.reload_ok, self.reload_time, self.reload_errors = True, time.time(), []
        log.info("config reloaded: %s", new.summary())
        return True

    async def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._schedule_reload)
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        self._stop.set()

    def _schedule_reload(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        self._tasks.append(task)  # type: ignore[arg-type]

    async def stop(self) -> None:
        """Drain: stop scheduling, let running checks finish, write what is pending."""
        await self.scheduler.stop(drain_timeout=max(
            (c.timeout for d in self.config.devices.values() for c in d.checks), default=1.0))
        for manager in self.push.values():
            await manager.stop()
        self.push.clear()
        for probe in PULL.values():
            if probe.close is not None:
                await probe.close()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
            self.dispatcher = None
        if self._http_runner is not None:
            from daemon.http import stop_http

            await stop_http(self._http_runner)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.store is not None:
            with contextlib.suppress(StoreError):
                await self._write_pending()
            await self.store.close()
            self.store = None
        if self._notify_log is not None:
            await self._notify_log.close()
            self._notify_log = None

    # -- observations ----------------------------------------------------------------
    def _on_observation(self, obs: Observation) -> None:
        transition = self.tracker.observe(obs)
        status = self.tracker.devices.get(obs.device)
        if status is not None:
            faults = self.engine.observe(obs, status.state)
            if faults:
                self._pending_faults += faults
                self._flush.set()
            # Polls of the device's first check count towards auto-verification.
            device = self.config.devices.get(obs.device)
            if device is not None and device.checks and device.checks[0].name == obs.check:
                if obs.status is Status.OK and status.state is DeviceState.UP:
                    self._healthy[obs.device] = self._healthy.get(obs.device, 0) + 1
                    self._unhealthy.discard(obs.device)
                elif obs.status is Status.DOWN:
                    self._healthy.pop(obs.device, None)
                    self._unhealthy.add(obs.device)
        if transition is not None:
            log.log(logging.DEBUG if transition.previous is DeviceState.UNKNOWN else logging.INFO,
                    "%s: %s → %s (%s)", transition.device, transition.previous.value,
                     transition.state.value, transition.cause)
            self._pending.append(transition)
            self._flush.set()
        if obs.info:
            facts = {k: v for k, v in obs.info.items() if k in FACT_KEYS and v}
            if facts and facts != self._facts_seen.get(obs.device):
                self._facts_seen[obs.device] = facts
                self._pending_facts[obs.device] = facts
                self._flush.set()
        # A switch's ports seen from the cameras behind them (config ``uplink``).
        for derived in self.uplinks.derive(obs):
            self._on_observation(derived)

    async def _writer(self) -> None:
        retry = 1.0
        while True:
            await self._flush.wait()
            self._flush.clear()
            try:
                await self._write_pending()
                retry = 1.0
                await asyncio.sleep(STORE_FLUSH_SECONDS)
            except StoreError as exc:
                self.store_errors += 1
                log.error("store write failed, will retry in %.0fs: %s", retry, exc)
                await asyncio.sleep(retry)
                retry = min(STORE_RETRY_MAX_SECONDS, retry * 2)
                self._flush.set()

    async def _write_pending(self) -> None:
        assert self.store is not None
        batch, self._pending = self._pending, []
        try:
            if batch:
                await self.store.record_transitions(batch)
        except BaseException:
            self._pending[:0] = batch
            raise
        facts, self._pending_facts = self._pending_facts, {}
        try:
            for device, values in facts.items():
                await self.store.update_device_facts(device, values, datetime.now(UTC))
        except BaseException:
            self._pending_facts = {**facts, **self._pending_facts}
            raise
        await self._write_tickets()

    async def _write_tickets(self) -> None:
        """Faults to tickets, poll health to auto-verification, events to notifiers.
        Each batch is taken back on a store error: handing it over again is safe."""
        assert self.tickets is not None
        faults, self._pending_faults = self._pending_faults, []
        try:
            if faults:
                await self.tickets.handle(faults)
        except BaseException:
            self._pending_faults[:0] = faults
            raise
        if self._tickets_changed:
            # New, resolved or closed tickets: the figures and the devices waiting for
            # healthy polls change now, not at the next housekeeping round.
            self._tickets_changed = False
            assert self.store is not None
            self.ticket_stats = await ticket_stats(self.store)
        unhealthy, self._unhealthy = self._unhealthy, set()
        healthy, self._healthy = self._healthy, {}
        if self.ticket_stats is not None:
            # Only devices with a resolved ticket wait for healthy polls.
            waiting = {t.device for t in self.ticket_stats.live if t.state == "resolved"}
            unhealthy &= waiting
            healthy = {d: n for d, n in healthy.items() if d in waiting}
        for device in unhealthy:
            await self.tickets.device_unhealthy(device)
        by_polls: dict[int, list[str]] = {}
        for device, polls in healthy.items():
            by_polls.setdefault(polls, []).append(device)
        for polls, devices in by_polls.items():
            await self.tickets.devices_healthy(devices, polls)
        events, self._pending_events = self._pending_events, []
        if events and self.dispatcher is not None:
            try:
                await self.dispatcher.submit(events)
            except BaseException:
                self._pending_events[:0] = events
                raise

    def _on_ticket_events(self, events: Sequence[TicketEvent]) -> None:
        for event in events:
            log.info("ticket %s %s: %s %s", event.ticket, event.kind.value, event.title_en,
                     event.note)
        self._pending_events += events
        self._tickets_changed = True
        self._flush.set()

    async def _ticker(self) -> None:
        """Rule durations every second; deadlines, work orders and figures every 15 s;
        once the rules have warmed up, settle tickets of faults that ended while the
        daemon was not running."""
        assert self.tickets is not None and self.store is not None
        last_ticket_tick = 0.0
        while True:
            await asyncio.sleep(RULE_TICK_SECONDS)
            faults = self.engine.tick()
            if faults:
                self._pending_faults += faults
                self._flush.set()
            now = time.time()
            try:
                if not self._resynced and now - self.started > self._hold_seconds(
                        self.config) + RULE_TICK_SECONDS * 5:
                    # Alertmanager's faults are not the engine's to vouch for: they end
                    # when Alertmanager says resolved.
                    await self.tickets.resync({t.fingerprint for t in self.engine.firing()},
                                              now, keep_rules=(ALERTMANAGER_RULES,))
                    self._resynced = True
                if now - last_ticket_tick >= TICKET_TICK_SECONDS:
                    last_ticket_tick = now
                    await self.tickets.tick(now)
                    await self._refresh_silences(self.config)
                    self.ticket_stats = await ticket_stats(self.store)
                    self._flush.set()
            except StoreError as exc:
                self.store_errors += 1
                log.error("ticket housekeeping failed, will retry: %s", exc)

    # -- views -----------------------------------------------------------------------
    @property
    def store_pending(self) -> int:
        return len(self._pending) + len(self._pending_faults)

    def device_views(self) -> Sequence[tuple[DeviceLabels, DeviceStatus]]:
        statuses = self.tracker.devices
        return [(labels, statuses[d.id]) for labels, d in self._labels if d.id in statuses]

    def snapshot(self) -> Snapshot:
        mqtt = self.push.get("mqtt")
        traps = self.push.get("snmp_trap")
        onvif = self.push.get("onvif_events")
        unknown = getattr(traps, "unknown_sources", None)
        return Snapshot(
            devices=self.device_views(), scheduler=self.scheduler.stats,
            lag_buckets=LAG_BUCKETS, jobs=self.scheduler.job_count,
            reload_ok=self.reload_ok, reload_time=self.reload_time,
            store_pending=self.store_pending, store_errors=self.store_errors,
            now=time.time(), faults=self.engine.firing(), tickets=self.ticket_stats,
            mqtt=mqtt.broker_stats() if mqtt is not None and hasattr(mqtt, "broker_stats")
            else (),
            trap_unknown_sources=sum(unknown.values()) if unknown is not None else None,
            onvif_events=onvif.stats() if isinstance(onvif, OnvifEventSource) else (),
            sites={site: terms.systems for site, terms in self._terms.items()})


async def run_daemon(config_path: Path) -> int:
    config = await asyncio.to_thread(load_config, config_path)
    app = App(config)
    try:
        await app.start()
    except StoreError as exc:
        log.error("cannot open the store: %s", exc)
        await app.stop()
        return 1
    try:
        await app.run_forever()
    finally:
        await app.stop()
    return 0
