"""Ad-hoc targets given as URLs (``elvwatch probe URL``, ``/probe?target=URL``).

Schemes so far: ``icmp://HOST`` and ``tcp://HOST:PORT``.  Secrets never appear in a
URL: protocols that need them take them from the environment variables the README
names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from pydantic import BaseModel

from daemon.scheduler import run_check
from probes.base import Check, Credential, Observation, Status, Target, worst
from probes.registry import PUSH

DEFAULT_TIMEOUT = 5.0


class UsageError(ValueError):
    """The URL cannot be probed; the message says why."""


@dataclass(frozen=True, slots=True)
class AdhocTarget:
    url: str
    kind: str
    target: Target
    checks: tuple[Check, ...]
    plan: AdhocPlan | None = None


@dataclass(frozen=True, slots=True)
class UrlParts:
    """A parsed ad-hoc URL, handed to the scheme's builder."""

    url: str
    scheme: str
    host: str
    port: int | None
    username: str | None
    path: str
    query: Mapping[str, str]
    timeout: float


@dataclass(frozen=True, slots=True)
class AdhocPlan:
    """What a scheme's builder returns: the checks to run, and for push sources the
    settings of their manager and how long to listen."""

    checks: tuple[Check, ...]
    credential: Credential | None = None
    push_settings: BaseModel | None = None
    listen_seconds: float = 0.0


AdhocBuilder = Callable[[UrlParts], AdhocPlan]


def _icmp(parts: UrlParts) -> AdhocPlan:
    count = _int(parts, "count", 1)
    return AdhocPlan((Check("icmp", "icmp", timeout=parts.timeout, params={"count": count}),))


def _tcp(parts: UrlParts) -> AdhocPlan:
    if parts.port is None:
        raise UsageError(f"{parts.url!r}: tcp:// needs a port, e.g. tcp://{parts.host}:554")
    params = {k: v for k, v in parts.query.items() if k in ("send", "expect")}
    return AdhocPlan((Check(f"tcp_{parts.port}", "tcp", timeout=parts.timeout, port=parts.port,
                            params=params),))


# One builder per URL scheme; protocol modules add theirs here.
SCHEMES: dict[str, AdhocBuilder] = {
    "icmp": _icmp,
    "tcp": _tcp,
}


def _int(parts: UrlParts, key: str, default: int) -> int:
    try:
        return int(parts.query.get(key, default))
    except ValueError:
        raise UsageError(f"{parts.url!r}: {key} must be a whole number") from None


def parse_target(url: str, kind: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> AdhocTarget:
    split = urlsplit(url)
    scheme = split.scheme.lower()
    if not scheme or not split.hostname:
        raise UsageError(f"{url!r}: expected SCHEME://HOST[:PORT], e.g. tcp://127.0.0.1:554")
    if split.password:
        raise UsageError("put no password in the URL; the README names the environment "
                         "variable each protocol reads it from")
    builder = SCHEMES.get(scheme)
    if builder is None:
        raise UsageError(f"{url!r}: unknown scheme {scheme!r} (known: "
                         f"{', '.join(sorted(SCHEMES))})")
    try:
        port = split.port
    except ValueError as exc:
        raise UsageError(f"{url!r}: {exc}") from None
    query = dict(parse_qsl(split.query))
    parts = UrlParts(url=url, scheme=scheme, host=split.hostname, port=port,
                     username=unquote(split.username) if split.username else None,
                     path=unquote(split.path), query=query, timeout=timeout)
    plan = builder(parts)
    label_kind = kind or query.get("kind", "adhoc")
    target = Target(device=_redacted(split), host=split.hostname, kind=label_kind,
                    credential=plan.credential)
    return AdhocTarget(url, label_kind, target, plan.checks, plan)


def _redacted(split: SplitResult) -> str:
    # The device name is shown and exported: keep it free of query secrets.
    return urlunsplit((split.scheme, split.netloc, split.path, "", ""))


async def probe_all(target: Target, checks: tuple[Check, ...],
                    plan: AdhocPlan | None = None) -> list[Observation]:
    """Run every check of one target now, concurrently.

    Push checks (MQTT, traps, events) start their source's manager for this target
    alone, listen for ``plan.listen_seconds`` and return what arrived (the last
    observation per check)."""
    pull = [c for c in checks if c.type not in PUSH]
    push = [c for c in checks if c.type in PUSH]
    results = list(await asyncio.gather(*(run_check(target, c) for c in pull)))
    if push:
        results += await _listen(target, push, plan)
    return results


async def _listen(target: Target, checks: list[Check],
                  plan: AdhocPlan | None) -> list[Observation]:
    latest: dict[str, Observation] = {}

    def emit(obs: Observation) -> None:
        latest[obs.check] = obs

    seconds = plan.listen_seconds if plan else DEFAULT_TIMEOUT
    credentials = {target.credential.name: target.credential} if target.credential else {}
    for check_type in sorted({c.type for c in checks}):
        manager = PUSH[check_type].factory(plan.push_settings if plan else None, credentials,
                                           emit)
        await manager.start()
        try:
            await manager.update([(target, c) for c in checks if c.type == check_type])
            await asyncio.sleep(seconds)
        finally:
            await manager.stop()
    return [latest.get(c.name) or Observation(target.device, c.name, Status.UNKNOWN,
                                              error=f"nothing received in {seconds:g}s")
            for c in checks]


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
