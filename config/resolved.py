"""A loaded config resolved for running: each device with its defaults applied and its
checks ready for the scheduler, credentials with their secrets read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from elvwatch.config.schema import ConfigModel, DeviceConfig, SiteConfig, System
from elvwatch.probes.base import Check, Credential, Secret, Target


@dataclass(frozen=True, slots=True)
class Device:
    """A device with its defaults applied: the archive entry plus runnable checks."""

    config: DeviceConfig
    system: System
    target: Target
    checks: tuple[Check, ...]

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def parents(self) -> tuple[str, ...]:
        """What the device depends on (topology): ``depends_on`` and its uplink switch."""
        uplink = self.config.uplink
        extra = (uplink.device,) if uplink is not None and uplink.device != self.id else ()
        return tuple(dict.fromkeys((*self.config.depends_on, *extra)))


@dataclass(frozen=True)
class Config:
    """A loaded, checked and resolved configuration."""

    path: Path
    model: ConfigModel
    devices: Mapping[str, Device]
    sites: Mapping[str, SiteConfig]
    storage_url: str
    credentials: Mapping[str, Credential] = field(default_factory=dict)
    sources: Mapping[str, BaseModel | None] = field(default_factory=dict)
    files: tuple[Path, ...] = field(default=())
    # role poller: its own token under its id; role centre: each poller's token by id.
    tokens: Mapping[str, Secret] = field(default_factory=dict)

    @property
    def photos_dir(self) -> Path:
        """Where photos taken on site are kept, beside the store by default."""
        configured = self.model.storage.photos_dir
        return configured if configured.is_absolute() else self.path.parent / configured

    @property
    def check_count(self) -> int:
        return sum(len(d.checks) for d in self.devices.values())

    def summary(self) -> str:
        return (f"{self.path}: OK — {len(self.sites)} sites, {len(self.devices)} devices, "
                f"{self.check_count} checks")
