"""Who the daemon's ``/probe?target=URL`` may talk to, and with which credentials.

Anyone who can reach /probe (an unauthenticated loopback read, for Prometheus) names
the target, so a stored secret must never go wherever the URL points:

* a configured device's credential goes only to that device's own address (the URL's
  host equal to its ``host``), an MQTT broker's only to that broker's host and port;
* a module's credential (``probe.modules.NAME.credentials``, like blackbox_exporter's
  modules) goes only to configured devices and to ``probe.allowed_networks``;
* the daemon's own environment (``ELVWATCH_SNMP_COMMUNITY`` …) is never read here:
  those variables are for a person running ``elvwatch probe`` in their own shell;
* with ``probe.allowed_networks`` set, any other target outside it is refused.

A name is resolved once and the probe goes to the address that was checked, so a
name that changes its answer in between (DNS rebinding) cannot move it elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from elvwatch.config.resolved import Config
from elvwatch.probes.base import Credential
from elvwatch.probes.mqtt_settings import MqttSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]
RESOLVE_SECONDS = 2.0
MQTT_PORTS = (1883, 8883)


class ProbeRefused(Exception):
    """The target may not be probed (or not with what was asked); the message says why."""


@dataclass(frozen=True, slots=True)
class ProbeGrant:
    """What /probe may do with one URL."""

    credential: Credential | None = None
    kind: str | None = None
    # Probe this address instead of the URL's name (the one the allow-list saw).
    address: str | None = None


async def system_resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_SECONDS)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def grant(config: Config, scheme: str, host: str, port: int | None,
                module: str | None, resolve: Resolver = system_resolve) -> ProbeGrant:
    """Decide what /probe may do for ``scheme://host:port`` asked with ``module``;
    raise :class:`ProbeRefused` when it may not probe it at all."""
    settings = config.model.probe
    spec = settings.modules.get(module) if module else None
    kind = (spec.kind or module) if spec is not None else module
    own = (_broker_credential(config, host, port) if scheme == "mqtt"
           else _device_credential(config, host, kind))
    module_credential = None
    if spec is not None and spec.credentials is not None:
        module_credential = config.credentials.get(spec.credentials)
    if own is not None:
        return ProbeGrant(module_credential or own.credential, kind)
    address: str | None = None
    if settings.allowed_networks:
        addresses = await _addresses(host, resolve)
        outside = [a for a in addresses if not _inside(a, settings.allowed_networks)]
        if outside:
            raise ProbeRefused(
                f"{host} ({', '.join(map(str, outside))}) is neither a configured device "
                f"nor in probe.allowed_networks")
        address = None if _is_literal(host) else str(addresses[0])
    elif module_credential is not None:
        raise ProbeRefused(
            f"module {module!r} has credentials: they go only to configured devices and "
            f"to probe.allowed_networks, and none is set")
    return ProbeGrant(module_credential, kind, address)


@dataclass(frozen=True, slots=True)
class _Own:
    credential: Credential | None


def _device_credential(config: Config, host: str, kind: str | None) -> _Own | None:
    """The credential of the configured device(s) at exactly this host, or None when
    no device is there.  Devices of the asked kind go first; devices there that hold
    different credentials are refused rather than guessed between."""
    wanted = host.lower()
    at_host = [d for d in config.devices.values() if d.config.host.lower() == wanted]
    if not at_host:
        return None
    of_kind = [d for d in at_host if kind is not None and d.config.kind == kind]
    candidates = of_kind or at_host
    names = sorted({d.config.credentials for d in candidates if d.config.credentials})
    if len(names) > 1:
        raise ProbeRefused(f"devices at {host} hold different credentials "
                           f"({', '.join(names)}): name the kind with module=")
    return _Own(config.credentials.get(names[0]) if names else None)


def _broker_credential(config: Config, host: str, port: int | None) -> _Own | None:
    settings = config.sources.get("mqtt")
    if not isinstance(settings, MqttSettings):
        return None
    for broker in settings.brokers.values():
        same_port = broker.effective_port == port if port is not None \
            else broker.effective_port in MQTT_PORTS
        if broker.host.lower() == host.lower() and same_port:
            credential = (config.credentials.get(broker.credentials)
                          if broker.credentials else None)
            return _Own(credential)
    return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _addresses(host: str, resolve: Resolver) -> list[Address]:
    if _is_literal(host):
        return [ipaddress.ip_address(host)]
    try:
        found = await resolve(host)
    except (OSError, TimeoutError) as exc:
        raise ProbeRefused(f"cannot resolve {host}: {exc}") from None
    addresses = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text.split("%")[0]))
        except ValueError:
            continue
    if not addresses:
        raise ProbeRefused(f"cannot resolve {host}")
    return addresses


def _inside(address: Address, networks: Sequence[ipaddress.IPv4Network
                                                  | ipaddress.IPv6Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)
