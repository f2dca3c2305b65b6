"""The running daemon: config → scheduler → state tracker → store, the rule and ticket
stages, and whatever serves it (the HTTP listener of web/, handed in as a Listener).

Start order matters: the store opens (and migrates) first, the archive is synced and
the last persisted device states are restored *before* the first check runs, so the
first observation after a restart is compared with the state the daemon had, not with
"unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.config.resolved import Config, Device
from elvwatch.config.terms import site_terms
from elvwatch.daemon.intake import Intake
from elvwatch.daemon.reload import ConfigUnusable, Plan, prepare, reload_warnings, swap_push
from elvwatch.daemon.scheduler import LAG_BUCKETS, Scheduler
from elvwatch.daemon.site_links import SiteLinks, link_device
from elvwatch.daemon.ticket_stage import RULE_TICK_SECONDS, TicketStage
from elvwatch.exporters.metrics import DeviceLabels, Snapshot
from elvwatch.exporters.notify.dispatcher import Dispatcher
from elvwatch.probes.base import Observation, Status
from elvwatch.probes.onvif_event_source import OnvifEventSource
from elvwatch.probes.registry import PULL, PushManager
from elvwatch.probes.sharing import Shared, sharing
from elvwatch.probes.snmp_uplink import Uplink, UplinkMap
from elvwatch.rules.engine import Engine
from elvwatch.rules.model import DeviceSpec
from elvwatch.rules.silence import Silencer
from elvwatch.rules.state import (
    ChangeLog,
    DeviceState,
    DeviceStatus,
    StateTracker,
    StateTransition,
)
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.poller_marks import Taken
from elvwatch.tickets.sla import SiteTerms
from elvwatch.tickets.stats import TicketStats
from elvwatch.tickets.store import ArchiveEntry, Store, StoreError

if TYPE_CHECKING:
    from elvwatch.daemon.forwarder import Forwarder

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


class Listener(Protocol):
    """What serves the running daemon to people and tools (web/'s HTTP listener): opened
    once the checks run, closed after they have drained and before the store closes."""

    async def open(self, app: App, /) -> None:
        """Start serving; OSError when the address cannot be taken."""

    async def close(self) -> None:
        """Stop serving (requests in flight are answered first)."""


class App:
    def __init__(self, config: Config, listener: Listener | None = None) -> None:
        self.config = config
        self._listener = listener
        sched = config.model.scheduler
        # What the probes of this daemon share (sockets, pools, hold-offs), closed by stop().
        self.shared = Shared()
        self.tracker = StateTracker(down_after=sched.down_after, up_after=sched.up_after)
        self.scheduler = Scheduler(
            self._on_observation, max_concurrency=sched.max_concurrency,
            per_host_concurrency=sched.per_host_concurrency, jitter=sched.jitter,
            backoff_max=sched.backoff_max, shared=self.shared)
        self.store: Store | None = None
        self.started = time.time()
        self.reload_ok = True
        self.reload_time = time.time()
        self.reload_errors: list[str] = []
        self._write_errors = 0
        self._pending: list[StateTransition] = []
        self._pending_facts: dict[str, dict[str, str]] = {}
        self._facts_seen: dict[str, dict[str, str]] = {}
        self._flush = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[bool]] = set()
        self._reload_lock = asyncio.Lock()
        # The archive to write (after a reload), before any state of a new device.
        self._archive_due: list[ArchiveEntry] | None = None
        self._labels: list[tuple[DeviceLabels, Device]] = []
        self.push: dict[str, PushManager] = {}
        self.uplinks = UplinkMap()  # camera ← switch port (config ``uplink``)
        # The rule and ticket stages.
        self.silencer = Silencer()
        self.engine = Engine([], silencer=self.silencer, hold_seconds=hold_seconds(config))
        self.ticket_stage = TicketStage(self.engine, self.silencer, config, self._flush.set)
        # Many communities (config role): a poller forwards what its checks see instead
        # of ruling on it; a centre takes the pollers' observations into this pipeline.
        self.forwarder: Forwarder | None = None
        self.intake = Intake(self._apply) if config.model.role == "centre" else None
        self.site_links = SiteLinks(time.time()) if self.intake is not None else None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, put the config to work, start the checks and the listener.
        Raises StoreError, ConfigUnusable or OSError (the listener's port) when the
        daemon cannot run; ``stop()`` still cleans up after any of them."""
        self.store = await Store.open(self.config.storage_url)
        # Before the push sources start: what they hear goes to the centre too.
        poller = self.config.model.poller
        if self.config.model.role == "poller" and poller is not None:
            from elvwatch.daemon.forwarder import Forwarder  # a poller's client side only

            self.forwarder = Forwarder(poller, self.config.tokens[poller.id])
            await self.forwarder.start()
        await self.ticket_stage.start(self.store)
        # The archive before the states: a restored state names its device.
        await self.store.sync_archive([archive_entry(d) for d in self.config.devices.values()],
                                      datetime.now(UTC))
        await self._swap(await self._prepare(self.config, None))
        for device, (state, since, cause) in (await self.store.current_states()).items():
            self.tracker.restore(device, state, since, cause)
        self._tasks.append(asyncio.create_task(self._writer(), name="store writer"))
        if self.forwarder is None:  # a poller neither rules nor tickets: the centre does
            self._tasks.append(asyncio.create_task(self._ticker(), name="ticker"))
        self._tasks.append(asyncio.create_task(self.ticket_stage.spool_syncer(),
                                               name="spool sync"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
        if self._listener is not None:
            await self._listener.open(self)
        settle_heap(collect=False)
        log.info("elvwatch started: %s", self.config.summary())

    async def _prepare(self, config: Config, current: Config | None) -> Plan:
        with sharing(self.shared):  # the push sources' tasks inherit it
            plan = await prepare(config, self.push, current, self._on_observation)
        try:
            await self.ticket_stage.prepare_notify(plan)
        except BaseException:
            await plan.discard()
            raise
        return plan

    async def _swap(self, plan: Plan) -> None:
        """Put a prepared plan to work.  Nothing here waits for the store: a reload
        while the database is down still takes effect (the archive is written by the
        store writer when it can, before any state of a new device)."""
        config = plan.config
        self.tracker.configure((d.id, [c.name for c in d.checks])
                               for d in config.devices.values())
        self.ticket_stage.configure(config, site_terms(config))
        specs = [DeviceSpec(id=d.id, site=d.config.site, system=d.system.value,
                            kind=d.config.kind, tags=frozenset(d.config.tags),
                            checks={c.name: c.type for c in d.checks},
                            depends_on=d.parents, serial=d.config.serial)
                 for d in config.devices.values()]
        if self.site_links is not None:
            specs += self.site_links.configure(config)
        self.engine.hold_seconds = hold_seconds(config)
        self.ticket_stage.add_faults(self.engine.configure(specs, plan.rules))
        remote = polled_elsewhere(config)
        self.scheduler.set_targets(
            (d.target, tuple(c for c in d.checks if c.type in PULL))
            for d in config.devices.values() if d.config.site not in remote)
        with sharing(self.shared):
            await swap_push(plan, self.push)
        self._labels = [
            (DeviceLabels(d.id, d.config.site, d.system.value, d.config.kind,
                          d.config.vendor or "", d.config.model or "",
                          d.config.firmware or ""), d)
            for d in config.devices.values()]
        self.uplinks.configure(
            (Uplink(d.id, d.config.uplink.device, d.config.uplink.port,
                    d.config.uplink.poe_port, d.config.host, d.config.uplink.mac)
             for d in config.devices.values() if d.config.uplink is not None),
            ((d.id, c.name) for d in config.devices.values() for c in d.checks
             if c.type == "snmp"))
        if config is not self.config:
            self._archive_due = [archive_entry(d) for d in config.devices.values()]
            self._flush.set()
        self.config = config
        await self.ticket_stage.refresh_silences(config)
        await self.ticket_stage.swap_notify(plan)

    async def reload(self) -> bool:
        """Load the config file again and put it to work; a config that is invalid or
        cannot be put to work is reported (log, metric, answer) and the old one kept.
        Never raises: it also runs as a task of its own (SIGHUP)."""
        async with self._reload_lock:
            try:
                return await self._reload()
            except Exception as exc:  # a bug; said, and the old config runs on
                log.exception("reload failed, keeping the running config")
                self._reload_failed([f"{type(exc).__name__}: {exc}"])
                return False

    async def _reload(self) -> bool:
        try:
            new = await asyncio.to_thread(load_config, self.config.path)
        except ConfigInvalid as exc:
            self._reload_failed([str(e) for e in exc.errors])
            return False
        if new.model.role != self.config.model.role or new.model.poller != self.config.model.poller:
            self._reload_failed([f"{self.config.path}: role and poller: take effect at a "
                                 "restart, not a reload"])
            return False
        try:
            plan = await self._prepare(new, self.config)
        except ConfigUnusable as exc:
            self._reload_failed([str(e) for e in exc.errors])
            return False
        for warning in reload_warnings(self.config, new):
            log.warning("%s", warning)
        await self._swap(plan)
        settle_heap(collect=True)  # the old config's cycles are garbage now
        self.reload_ok, self.reload_time, self.reload_errors = True, time.time(), []
        log.info("config reloaded: %s", new.summary())
        return True

    def _reload_failed(self, errors: list[str]) -> None:
        self.reload_ok, self.reload_errors = False, errors
        log.error("reload failed, keeping the running config:\n%s", "\n".join(errors))

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
        # Kept until done (a task nobody holds may be collected mid-run); reload()
        # never raises, so no exception is left unretrieved.
        task = asyncio.create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def stop(self) -> None:
        """Drain: stop scheduling, let running checks finish, write what is pending."""
        gc.unfreeze()  # what this App holds may be collected once it is gone
        await self.scheduler.stop(drain_timeout=max(
            (c.timeout for d in self.config.devices.values() for c in d.checks), default=1.0))
        for manager in self.push.values():
            await manager.stop()
        self.push.clear()
        if self.forwarder is not None:
            await self.forwarder.stop()
        for probe in PULL.values():
            if probe.close is not None:
                await probe.close()
        await self.ticket_stage.stop_notifiers()
        if self._listener is not None:
            await self._listener.close()
        if self.intake is not None:
            await self.intake.idle()
        await self.shared.close()  # nothing probes any more: no check, push source, /probe
        for task in [*self._tasks, *self._reloads]:
            task.cancel()
        for task in [*self._tasks, *self._reloads]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.store is not None:
            with contextlib.suppress(StoreError):
                await self._write_pending()
            await self.store.close()
            self.store = None
        await self.ticket_stage.close()

    # -- observations ----------------------------------------------------------------
    def _on_observation(self, obs: Observation) -> None:
        if self.forwarder is not None:
            self.forwarder.put(obs)  # the centre derives the uplinks itself
        self._apply(obs)

    async def ingest(self, poller: str, batch: Sequence[tuple[int, Observation]]) -> Taken:
        """A poller's numbered observations into the pipeline (role centre); StoreError
        when the store cannot record how far this poller's observations are applied."""
        if self.intake is None or self.store is None:
            raise StoreError("not a centre, or its store is not open")
        return await self.intake.take(self.store, self.config, poller, batch)

    def _apply(self, obs: Observation) -> None:
        transition = self.tracker.observe(obs)
        status = self.tracker.devices.get(obs.device)
        if status is not None and self.forwarder is None:
            self.ticket_stage.add_faults(self.engine.observe(obs, status.state))
            # Polls of the device's first check count towards auto-verification.
            device = self.config.devices.get(obs.device)
            if device is not None and device.checks and device.checks[0].name == obs.check:
                if obs.status is Status.OK and status.state is DeviceState.UP:
                    self.ticket_stage.poll_health(obs.device, ok=True)
                elif obs.status is Status.DOWN:
                    self.ticket_stage.poll_health(obs.device, ok=False)
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
            self._apply(derived)

    async def _writer(self) -> None:
        retry = 1.0
        while True:
            await self._flush.wait()
            self._flush.clear()
            await self.ticket_stage.hand_over_events()
            try:
                await self._write_pending()
                down_since = self.ticket_stage.store_works()
                if down_since is not None:
                    log.info("store writes work again after %.0fs", time.time() - down_since)
                retry = 1.0
                await asyncio.sleep(STORE_FLUSH_SECONDS)
            except StoreError as exc:
                self.ticket_stage.store_failed(time.time())
                self._write_errors += 1
                log.error("store write failed, will retry in %.0fs: %s", retry, exc)
                await asyncio.sleep(retry)
                retry = min(STORE_RETRY_MAX_SECONDS, retry * 2)
                self._flush.set()

    async def _write_pending(self) -> None:
        assert self.store is not None
        if self._archive_due is not None:
            await self.store.sync_archive(self._archive_due, datetime.now(UTC))
            self._archive_due = None
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
        await self.ticket_stage.write()

    def _link_changed(self, link: Observation, first: bool) -> None:
        up = link.status is Status.OK
        if not up:
            log.warning("%s: not reporting: %s", link.device, link.error)
        elif not first:
            log.info("%s: reporting again", link.device)
        # Its devices are shown otherwise now (unknown while it is silent): readers that
        # keep views of the states (the web side's device index) re-read each of them.
        site = next((s for s in self.config.sites if link_device(s) == link.device), None)
        for device in self.config.devices.values():
            if device.config.site == site:
                self.tracker.changes.note(device.id)
        self.ticket_stage.add_faults(self.engine.observe(
            link, DeviceState.UP.value if up else DeviceState.UNKNOWN.value))

    async def _ticker(self) -> None:
        """Rule durations every second, then the ticket stage's housekeeping."""
        while True:
            await asyncio.sleep(RULE_TICK_SECONDS)
            self.ticket_stage.add_faults(self.engine.tick())
            now = time.time()
            if self.site_links is not None and self.intake is not None:
                for link, first in self.site_links.tick(now, self.intake.heard()):
                    self._link_changed(link, first)
            await self.ticket_stage.notify_unrecorded_faults(now)
            await self.ticket_stage.housekeeping(now)

    # -- views (what web/'s DaemonView reads) ------------------------------------------
    @property
    def statuses(self) -> Mapping[str, DeviceStatus]:
        links = self.site_links
        if links is None or all(links.sites.values()):
            return self.tracker.devices
        return {device: self._shown(device, status)
                for device, status in self.tracker.devices.items()}

    def _shown(self, device: str, status: DeviceStatus) -> DeviceStatus:
        """A device of a site that is not reporting shows as unknown, saying why: what
        was last seen is stale, and a device nobody can reach is not known to be down."""
        cfg = self.config.devices.get(device)
        if self.site_links is None or cfg is None or self.site_links.reporting(cfg.config.site):
            return status
        heard = self.site_links.last_heard(cfg.config.site)
        return dataclasses.replace(
            status, state=DeviceState.UNKNOWN, since=heard,
            cause=f"site {cfg.config.site} not reporting (was {status.state.value})")

    @property
    def changes(self) -> ChangeLog:
        return self.tracker.changes

    @property
    def ticket_changes(self) -> int:
        return self.ticket_stage.ticket_changes

    @property
    def terms(self) -> Mapping[str, SiteTerms]:
        return self.ticket_stage.terms

    @property
    def tickets(self) -> TicketManager | None:
        return self.ticket_stage.tickets

    @property
    def dispatcher(self) -> Dispatcher | None:
        return self.ticket_stage.dispatcher

    @property
    def ticket_stats(self) -> TicketStats | None:
        return self.ticket_stage.ticket_stats

    @property
    def store_errors(self) -> int:
        """Failed store writes and housekeeping rounds."""
        return self._write_errors + self.ticket_stage.store_errors

    @property
    def job_count(self) -> int:
        return self.scheduler.job_count

    @property
    def store_pending(self) -> int:
        return len(self._pending) + len(self.ticket_stage.pending_faults)

    def device_views(self) -> Sequence[tuple[DeviceLabels, DeviceStatus]]:
        statuses = self.statuses
        return [(labels, statuses[d.id]) for labels, d in self._labels if d.id in statuses]

    def snapshot(self) -> Snapshot:
        mqtt = self.push.get("mqtt")
        traps = self.push.get("snmp_trap")
        onvif = self.push.get("onvif_events")
        unknown = getattr(traps, "unknown_sources", None)
        stage = self.ticket_stage
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
            sites={site: terms.systems for site, terms in self.terms.items()},
            notify=self.dispatcher.stats if self.dispatcher is not None else None,
            notify_unsynced=stage.notify_log.unsynced if stage.notify_log is not None
            else None,
            forwarder=self.forwarder.stats() if self.forwarder is not None else None,
            intake=self.intake.stats() if self.intake is not None else None,
            sites_reporting=self.site_links.sites if self.site_links is not None else None,
            site_leases=self.intake.holders if self.intake is not None else None)


def polled_elsewhere(config: Config) -> frozenset[str]:
    """The sites a centre's pollers probe: the centre runs none of their checks."""
    centre = config.model.centre
    if config.model.role != "centre" or centre is None:
        return frozenset()
    return frozenset(site for peer in centre.pollers.values() for site in peer.sites)


def hold_seconds(config: Config) -> float:
    """How long a child's fault waits for its parent's to be confirmed: a camera behind
    a dead switch must not get a ticket of its own just by being faster."""
    longest = max((c.interval for d in config.devices.values() for c in d.checks),
                  default=0.0)
    return longest * config.model.scheduler.down_after


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
