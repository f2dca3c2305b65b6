"""Whether each site a centre's pollers serve is reporting (role centre).

A site is *not reporting* when none of its pollers has been heard from for
``centre.not_reporting_after`` intervals of the site's most frequent check: its devices
are then shown as unknown, not as they were last seen and not down (nobody knows), and
its link is fed to the rule engine as a device of kind ``site_link`` whose check
``poller_link`` is down, so the built-in rule ``site_not_reporting`` tickets the link
itself (rules/builtin/multisite.yaml).  A centre that has just started gives its
pollers time to reconnect first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from elvwatch.config.resolved import Config
from elvwatch.probes.base import Observation, Status
from elvwatch.rules.model import DeviceSpec

# After the centre (re)starts, its pollers are in their retry backoff (at most 30 s,
# daemon/forwarder.py): they get this long to reconnect before a site counts as silent,
# or a centre restart would ticket every site's link.
RECONNECT_SECONDS = 45.0
LINK_KIND = "site_link"
LINK_CHECK = "poller_link"
LINK_SYSTEM = "network"


def link_device(site: str) -> str:
    """The id the rule engine and tickets know a site's link by."""
    return f"{site}:link"


def site_intervals(config: Config) -> dict[str, float]:
    """Each site's most frequent check interval: how often its pollers have news."""
    out: dict[str, float] = {}
    for device in config.devices.values():
        for check in device.checks:
            site = device.config.site
            out[site] = min(out.get(site, check.interval), check.interval)
    return {site: out.get(site, config.model.interval) for site in config.sites}


@dataclass(frozen=True, slots=True)
class _Site:
    pollers: tuple[str, ...]
    silent_after: float  # seconds


class SiteLinks:
    def __init__(self, started: float) -> None:
        self._started = started
        self._sites: dict[str, _Site] = {}
        self._reporting: dict[str, bool] = {}
        self._last_heard: dict[str, float | None] = {}

    def configure(self, config: Config) -> list[DeviceSpec]:
        """The sites of ``config``'s pollers, and their links as the engine's devices."""
        centre = config.model.centre
        sites: dict[str, list[str]] = {}
        if config.model.role == "centre" and centre is not None:
            for name, peer in centre.pollers.items():
                for site in peer.sites:
                    sites.setdefault(site, []).append(name)
        every = site_intervals(config)
        after = centre.not_reporting_after if centre is not None else 3
        self._sites = {site: _Site(tuple(pollers), after * every[site])
                       for site, pollers in sites.items()}
        self._reporting = {s: r for s, r in self._reporting.items() if s in self._sites}
        return [DeviceSpec(id=link_device(site), site=site, system=LINK_SYSTEM,
                           kind=LINK_KIND, checks={LINK_CHECK: LINK_CHECK})
                for site in self._sites]

    def tick(self, now: float, heard: Mapping[str, float | None]
             ) -> Iterator[tuple[Observation, bool]]:
        """The link observations of the sites whose reporting changed, as of ``now``
        with ``heard`` (poller → when its last batch arrived); True with the first."""
        for site, spec in self._sites.items():
            times = [t for p in spec.pollers if (t := heard.get(p)) is not None]
            last = max(times, default=None)
            self._last_heard[site] = last
            if last is None or last < self._started:  # not heard since this start
                reporting = now - self._started <= max(spec.silent_after, RECONNECT_SECONDS)
            else:
                reporting = now - last <= spec.silent_after
            if self._reporting.get(site) is reporting:
                continue
            first = site not in self._reporting
            self._reporting[site] = reporting
            yield Observation(
                device=link_device(site), check=LINK_CHECK,
                status=Status.OK if reporting else Status.DOWN, time=now,
                error=None if reporting else
                f"no observations from poller {', '.join(spec.pollers)} for more than "
                f"{spec.silent_after:g}s"), first

    def reporting(self, site: str) -> bool:
        """False only for a site known not to report (other sites are the centre's own)."""
        return self._reporting.get(site, True)

    @property
    def sites(self) -> Mapping[str, bool]:
        return dict(self._reporting)

    def last_heard(self, site: str) -> float | None:
        return self._last_heard.get(site)
