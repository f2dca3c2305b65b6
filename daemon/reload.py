"""A (re)load in two steps: first everything that can fail is built — rules, notifiers,
push sources with their sockets — into a :class:`Plan`; only then is the running state
swapped to it (daemon/app.py).  The order matters: a config that validates but cannot
be put to work (a trap port taken, a CA file gone since ``check``) must leave the old
config running untouched, not half-replaced.

Errors::

    ConfigUnusable   the config is valid but cannot be put to work now; ``errors``
                     lists why (shown like config errors, and in /api/v1/reload's answer)
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from elvwatch.config.resolved import Config
from elvwatch.config.terms import escalation_contacts
from elvwatch.exporters.notify.base import Notifier, NotifyConfigError
from elvwatch.exporters.notify.config import NotifyConfig, with_escalation
from elvwatch.exporters.notify.receivers import build_notifiers
from elvwatch.probes.base import Check, Target
from elvwatch.probes.onvif_wsdl import ONVIF_CHECK_TYPES, load_wsdls
from elvwatch.probes.registry import PUSH, Emit, PushManager
from elvwatch.rules.model import Rule, build_rules

log = logging.getLogger(__name__)

PushTargets = dict[str, list[tuple[Target, Check]]]


class ConfigUnusable(Exception):
    """A valid config that cannot be put to work now; ``errors`` says why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class Plan:
    """The next config, with what it needs built and (push sources) started."""

    config: Config
    rules: list[Rule]
    # The config's notify section with each site's escalation contacts added.
    notify: NotifyConfig
    notifiers: dict[str, Notifier]
    push_targets: PushTargets
    # Push managers started for this plan: new source types and changed settings.
    push_started: dict[str, PushManager] = field(default_factory=dict)

    async def discard(self) -> None:
        """Undo what building the plan started (it will not be used)."""
        for manager in self.push_started.values():
            await manager.stop()
        for notifier in self.notifiers.values():
            await notifier.close()


def push_targets(config: Config) -> PushTargets:
    """The checks of each push source type in use (a configured source with no checks
    yet still runs: traps from unknown senders are counted)."""
    wanted: PushTargets = {name: [] for name in config.sources if name in PUSH}
    for device in config.devices.values():
        for check in device.checks:
            if check.type in PUSH:
                wanted.setdefault(check.type, []).append((device.target, check))
    return wanted


async def prepare(config: Config, running: MutableMapping[str, PushManager],
                  current: Config | None, emit: Emit) -> Plan:
    """Build the plan for ``config``; raise ConfigUnusable (having undone its own
    work) when it cannot be put to work.  ``running`` are the push managers of
    ``current``, the config running now (None at start)."""
    rules = build_rules(config.model.rules)
    notify = with_escalation(config.model.notify, escalation_contacts(config))
    notifiers: dict[str, Notifier] = {}
    if notify.receivers:
        try:
            notifiers = build_notifiers(notify, config.credentials)
        except NotifyConfigError as exc:
            raise ConfigUnusable(exc.problems) from None
    plan = Plan(config, rules, notify, notifiers, push_targets(config))
    try:
        if any(c.type in ONVIF_CHECK_TYPES for d in config.devices.values()
               for c in d.checks):
            await load_wsdls()  # before settle_heap freezes them (probes/onvif_wsdl.py)
        await _start_push(plan, running, current, emit)
    except BaseException:
        await plan.discard()
        raise
    return plan


async def _start_push(plan: Plan, running: MutableMapping[str, PushManager],
                      current: Config | None, emit: Emit) -> None:
    config = plan.config
    for name in plan.push_targets:
        if name not in running:
            plan.push_started[name] = await _started(name, config, emit)
    if current is None:
        return
    replaced: list[str] = []
    try:
        for name in plan.push_targets:
            if name in running and config.sources.get(name) != current.sources.get(name):
                # The running manager holds the socket or broker session the new one
                # needs: it stops first, and comes back as it was if the new one fails.
                await running[name].stop()
                replaced.append(name)
                plan.push_started[name] = await _started(name, config, emit)
    except ConfigUnusable:
        for name in replaced:
            if name in plan.push_started:
                await plan.push_started.pop(name).stop()
            again = await _started(name, current, emit)
            await again.update(push_targets(current).get(name, []))
            running[name] = again
        raise


async def _started(name: str, config: Config, emit: Emit) -> PushManager:
    manager = PUSH[name].factory(config.sources.get(name), config.credentials, emit)
    try:
        await manager.start()
    except Exception as exc:  # a port in use, a CA file gone: the source says which
        await manager.stop()
        log.debug("push source %s did not start", name, exc_info=True)
        raise ConfigUnusable([f"sources.{name}: {exc}"]) from exc
    return manager


async def swap_push(plan: Plan, running: MutableMapping[str, PushManager]) -> None:
    """Stop the sources the plan no longer wants, install the ones it started, and
    hand every source its checks."""
    for name in list(running):
        if name not in plan.push_targets or name in plan.push_started:
            manager = running.pop(name)
            if name not in plan.push_started:
                await manager.stop()
    running.update(plan.push_started)
    plan.push_started = {}
    for name, targets in plan.push_targets.items():
        await running[name].update(targets)


def reload_warnings(old: Config, new: Config) -> list[str]:
    warnings = []
    if new.model.http.listen != old.model.http.listen or new.storage_url != old.storage_url:
        warnings.append("http.listen and the store change only on restart")
    return warnings
