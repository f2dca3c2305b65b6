"""Ad-hoc targets given as URLs (``elvwatch probe URL``, ``/probe?target=URL``).

Schemes so far: ``icmp://HOST`` and ``tcp://HOST:PORT``.  Secrets never appear in a
URL: protocols that need them take them from the environment variables the README
names.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from daemon.scheduler import run_check
from probes.base import Check, Observation, Status, Target, worst

DEFAULT_TIMEOUT = 5.0


class UsageError(ValueError):
    """The URL cannot be probed; the message says why."""


@dataclass(frozen=True, slots=True)
class AdhocTarget:
    url: str
    kind: str
    target: Target
    checks: tuple[Check, ...]


def parse_target(url: str, kind: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> AdhocTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        raise UsageError(f"{url!r}: expected SCHEME://HOST[:PORT], e.g. tcp://127.0.0.1:554")
    if parts.password:
        raise UsageError("put no password in the URL; the README names the environment "
                         "variable each protocol reads it from")
    host = parts.hostname
    with_brackets = host
    try:
        if ipaddress.ip_address(host).version == 6:
            with_brackets = f"[{host}]"
    except ValueError:
        pass
    params = dict(parse_qsl(parts.query))
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url!r}: {exc}") from None
    if scheme == "icmp":
        checks: tuple[Check, ...] = (
            Check("icmp", "icmp", timeout=timeout, params={"count": int(params.get("count", 1))}),)
    elif scheme == "tcp":
        if port is None:
            raise UsageError(f"{url!r}: tcp:// needs a port, e.g. tcp://{with_brackets}:554")
        tcp_params = {k: v for k, v in params.items() if k in ("send", "expect")}
        checks = (Check(f"tcp_{port}", "tcp", timeout=timeout, port=port, params=tcp_params),)
    else:
        raise UsageError(f"{url!r}: unknown scheme {scheme!r} (known: icmp, tcp)")
    label_kind = kind or params.get("kind", "adhoc")
    target = Target(device=url, host=host, kind=label_kind)
    return AdhocTarget(url, label_kind, target, checks)


async def probe_all(target: Target, checks: tuple[Check, ...]) -> list[Observation]:
    """Run every check of one target now, concurrently."""
    return list(await asyncio.gather(*(run_check(target, c) for c in checks)))


def probe_result(device: str, kind: str, observations: list[Observation]) -> dict[str, object]:
    """The stable JSON object of ``elvwatch probe --json``."""
    info: dict[str, str | None] = dict.fromkeys(("vendor", "model", "firmware", "serial"))
    for obs in observations:
        for key in info:
            if obs.info.get(key):
                info[key] = obs.info[key]
    return {
        "device": device,
        "kind": kind,
        "status": worst([o.status for o in observations]).value if observations
        else Status.UNKNOWN.value,
        "info": info,
        "observations": [
            {k: v for k, v in o.as_dict().items() if k != "time"} for o in observations],
    }
