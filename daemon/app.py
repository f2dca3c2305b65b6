"""The running daemon: config → scheduler → state tracker → store, and the HTTP side.

Start order matters: the store opens (and migrates) first, the archive is synced and
the last persisted device states are restored *before* the first check runs, so the
first observation after a restart is compared with the state the daemon had, not with
"unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from daemon.config import Config, ConfigInvalid, Device, load_config
from daemon.scheduler import LAG_BUCKETS, Scheduler
from daemon.terms import site_terms
from daemon.ticket_wiring import RULE_TICK_SECONDS, TicketWiring
from exporters.metrics import DeviceLabels, Snapshot
from exporters.notify.dispatcher import Dispatcher
from exporters.notify.log import SqlNotificationLog
from probes.base import Check, Observation, Status, Target
from probes.onvif_event_source import OnvifEventSource
from probes.onvif_wsdl import ONVIF_CHECK_TYPES, load_wsdls
from probes.registry import PULL, PUSH, PushManager
from probes.snmp import forget as snmp_forget
from probes.snmp_uplink import Uplink, UplinkMap
from rules.engine import Engine
from rules.faults import FaultTransition
from rules.model import DeviceSpec, build_rules
from rules.silence import Silencer
from rules.state import DeviceState, DeviceStatus, StateTracker, StateTransition
from tickets.events import TicketEvent
from tickets.follower import EventFollower
from tickets.manager import TicketManager
from tickets.sla import SiteTerms
from tickets.stats import TicketStats
from tickets.store import ArchiveEntry, Store, StoreError

log = logging.getLogger(__name__)

# Transitions are written in batches; a failed write is kept and retried with backoff
# (doubling up to this), so a database that goes away loses nothing.
STORE_FLUSH_SECONDS = 0.5
STORE_RETRY_MAX_SECONDS = 30.0
TRANSITIONS_PER_WRITE = 1000
FACT_KEYS = ("vendor", "model", "firmware", "serial")


def archive_entry(device: Device) -> ArchiveEntry:
    cfg = device.config
    return ArchiveEntry(
        id=cfg.id, site=cfg.site, system=device.system.value, kind=cfg.kind, name=cfg.name,
        vendor=cfg.vendor, model=cfg.model, serial=cfg.serial, firmware=cfg.firmware,
        location=str(cfg.location) if cfg.location else None, host=cfg.host,
        installed=cfg.installed, warranty_until=cfg.warranty_until,
        depends_on=tuple(cfg.depends_on), tags=tuple(cfg.tags))


class App(TicketWiring):
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
        self._follower: EventFollower | None = None
        self._last_ticket_tick = 0.0
        self.ticket_stats: TicketStats | None = None
        self.dispatcher: Dispatcher | None = None
        self._notify_log: SqlNotificationLog | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, *, http: bool = True) -> None:
        self.store = await Store.open(self.config.storage_url)
        await self._start_tickets(self.config)
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
        settle_heap(collect=False)
        log.info("elvwatch started: %s", self.config.summary())

    async def _apply(self, config: Config) -> None:
        assert self.store is not None
        await self.store.sync_archive([archive_entry(d) for d in config.devices.values()],
                                      datetime.now(UTC))
        self.tracker.configure((d.id, [c.name for c in d.checks])
                               for d in config.devices.values())
        if any(c.type in ONVIF_CHECK_TYPES for d in config.devices.values() for c in d.checks):
            await load_wsdls()  # before settle_heap freezes them (probes/onvif_wsdl.py)
        self._terms = site_terms(config)
        self._apply_ticket_settings(config)
        specs = [DeviceSpec(id=d.id, site=d.config.site, system=d.system.value,
                            kind=d.config.kind, tags=frozenset(d.config.tags),
                            checks={c.name: c.type for c in d.checks},
                            depends_on=d.parents, serial=d.config.serial)
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
        settle_heap(collect=True)  # the old config's cycles are garbage now
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
        gc.unfreeze()  # what this App holds may be collected once it is gone
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
        # In slices: 20,000 devices' first states in one SQLite transaction would hold
        # the write lock for seconds and starve ticket housekeeping.
        while self._pending:
            batch, self._pending = (self._pending[:TRANSITIONS_PER_WRITE],
                                    self._pending[TRANSITIONS_PER_WRITE:])
            try:
                await self.store.record_transitions(batch)
            except BaseException:
                self._pending[:0] = batch
                raise
            if self._pending:
                await asyncio.sleep(0.05)  # let the ticket stage's transactions in
        facts, self._pending_facts = self._pending_facts, {}
        try:
            for device, values in facts.items():
                await self.store.update_device_facts(device, values, datetime.now(UTC))
        except BaseException:
            self._pending_facts = {**facts, **self._pending_facts}
            raise
        await self._write_tickets()

    async def _ticker(self) -> None:
        """Rule durations every second, then the ticket stage's housekeeping."""
        while True:
            await asyncio.sleep(RULE_TICK_SECONDS)
            faults = self.engine.tick()
            if faults:
                self._pending_faults += faults
                self._flush.set()
            await self._ticket_housekeeping(time.time())

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


def settle_heap(*, collect: bool) -> None:
    """Move what the configured fleet keeps alive out of the collector's reach.

    Config, targets, device state and rule state live as long as the config; left in
    the collector's generations, every full collection walks all of it (about 1.6
    million objects and 1.4 s of CPU at 20,000 devices).  Frozen, the collections walk
    only what the checks allocate.  ``collect`` first frees what a reload left behind."""
    gc.unfreeze()
    if collect:
        gc.collect()
    gc.freeze()
