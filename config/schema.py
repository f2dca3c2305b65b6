"""The config file's models: strict (an unknown key fails), frozen, each field's
default and limits written where it is declared.

``json_schema()`` is the published JSON Schema of a config file (``elvwatch config
schema``): editors validate against it and the configuration reference is made from it.
Loading, with file:line errors, is config/loading.py; resolution into runnable devices,
config/resolution.py.
"""

from __future__ import annotations

from datetime import date
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)

from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.rules.alertmanager import AlertmanagerConfig
from elvwatch.rules.faults import Severity
from elvwatch.rules.model import SiteRules, parse_duration
from elvwatch.rules.silence import SilenceConfig

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class System(StrEnum):
    CCTV = "cctv"
    ACCESS_CONTROL = "access_control"
    INTERCOM = "intercom"
    ALARM = "alarm"
    NETWORK = "network"
    POWER = "power"


class StorageConfig(Strict):
    # None: SQLite file ``elvwatch.db`` next to the config file.
    url: str | None = None
    # The notifications' local outbox (exporters/notify/spool.py), a SQLite file; a
    # relative path is next to the config file.
    notify_spool: Path = Path("elvwatch-notify-spool.db")
    # Photos engineers take on site (web/photos.py); relative to the config file.
    photos_dir: Path = Path("elvwatch-photos")


class HttpConfig(Strict):
    listen: str = "127.0.0.1:9780"
    token_file: Path | None = None
    # Reads from loopback need no token.  Off when a reverse proxy on this host forwards
    # outside clients (they would all arrive from 127.0.0.1): every read then needs the
    # token, a read link or a sign-off link.
    loopback_reads: bool = True
    # Host header values (name or name:port) a token-less loopback read may carry
    # besides loopback names and addresses: a page on another origin whose name
    # resolves to 127.0.0.1 (DNS rebinding) gets 421 instead of the data.
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=260)]] = \
        Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9780")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class SchedulerConfig(Strict):
    max_concurrency: int = Field(512, ge=1, le=100_000)
    per_host_concurrency: int = Field(4, ge=1, le=1000)
    # Spread of each check's start inside its interval, as a fraction of the interval.
    jitter: float = Field(0.1, ge=0.0, le=1.0)
    # Consecutive failed runs before a check (and its device) counts as down.
    down_after: int = Field(3, ge=1, le=100)
    # Consecutive good runs before a down check counts as up again.
    up_after: int = Field(1, ge=1, le=100)
    # Checks of an unreachable device other than its first back off up to this.
    backoff_max: float = Field(600.0, ge=1.0)


def _seconds(value: object) -> object:
    # A number of seconds or a duration such as "7d", "36h".
    if isinstance(value, str) and not value.strip().replace(".", "", 1).isdigit():
        return parse_duration(value)
    return value


class TicketsConfig(Strict):
    # Healthy polls of a device's first check in a row before its resolved ticket is
    # verified by the system (系统确认恢复; closing needs the site's sign-off).
    verify_after_polls: int = Field(3, ge=1, le=10_000)
    # A fault recurring within this long after its ticket was resolved reopens that
    # ticket (counting the recurrence) instead of opening a new one.
    reopen_window: Annotated[float, BeforeValidator(_seconds, json_schema_input_type=float | str)] \
        = Field(7 * 86400.0, ge=0)
    # A ticket the site representative has not signed off is closed by the system this
    # many days after its recovery was confirmed ("auto-closed: no sign-off within N
    # days"); null: only a sign-off closes a ticket.
    auto_close_days: float | None = Field(7.0, gt=0, le=3650)

    @property
    def close_after(self) -> float | None:
        return None if self.auto_close_days is None else self.auto_close_days * 86400.0


class SecretRef(Strict):
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self


class CredentialConfig(Strict):
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    # Further secrets by name, e.g. SNMPv3 auth_key / priv_key, each from env or file.
    secrets: dict[Identifier, SecretRef] = Field(default_factory=dict)
    # Non-secret settings by name, e.g. SNMPv3 auth_protocol: sha256.
    settings: dict[Identifier, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> CredentialConfig:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.username and self.username_env:
            raise ValueError("give username or username_env, not both")
        return self


class ContractConfig(Strict):
    start: date
    months: int = Field(12, ge=1, le=120)
    response_hours: float = Field(12.0, gt=0)
    # Repair deadline per severity; null means "to agree with the site representative".
    resolve_hours: dict[Severity, float | None] = Field(
        default_factory=lambda: {Severity.GENERAL: 12.0, Severity.MAJOR: None,
                                 Severity.EMERGENCY: 4.0})
    # 0: immediately (the escalation contacts are paged when the ticket opens).
    emergency_response_hours: float = Field(0.5, ge=0)
    preventive: Literal["monthly", "quarterly"] = "quarterly"


class Contact(Strict):
    name: str
    role: str | None = None
    phone: str | None = None
    email: str | None = None

    @field_validator("email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        # Escalations are mailed to it: a typo is found when the config loads.
        if value is not None:
            address = parseaddr(value)[1]
            if "@" not in address or any(c in value for c in "\r\n"):
                raise ValueError(f"{value!r} is not an email address")
        return value


class SiteConfig(Strict):
    id: Identifier
    name: str
    language: Literal["zh-CN", "en"] = "zh-CN"
    address: str | None = None
    contract: ContractConfig | None = None
    contacts: list[Contact] = Field(default_factory=list)
    # Told when a response or repair deadline passes, and at once for an emergency ...
    escalation: list[Contact] = Field(default_factory=list)
    # ... through these receivers (notify.receivers): an email receiver writes to their
    # addresses, a DingTalk bot @-mentions their phones, a webhook or WeCom bot is the
    # site's own route.
    escalate_via: list[Identifier] = Field(default_factory=list)


CheckParam = str | int | float | bool


class CheckConfig(Strict):
    type: str
    name: Identifier | None = None
    interval: float | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)
    port: int | None = Field(None, ge=1, le=65535)
    params: dict[str, CheckParam] = Field(default_factory=dict)

    @property
    def check_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.type}_{self.port}" if self.port else self.type


class KindDefaults(Strict):
    system: System
    checks: list[CheckConfig] = Field(default_factory=list)
    interval: float | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)


class Location(Strict):
    building: str | None = None
    floor: str | None = None
    place: str | None = None

    def __str__(self) -> str:
        return " / ".join(p for p in (self.building, self.floor, self.place) if p)


class UplinkConfig(Strict):
    """The switch port a device (a camera) hangs off: the switch's SNMP port and PoE
    values are attributed to the device as check ``uplink`` (probes/snmp_uplink.py)."""

    device: Identifier  # the switch; must exist and have an snmp check
    # ifName ("ge1/0/3") or ifIndex; left out, it is learned from the switch's LLDP
    # neighbours (the device's host) or forwarding table (``mac``).
    port: str | None = Field(None, min_length=1, max_length=64)
    poe_port: str | None = Field(None, pattern=r"^\d+\.\d+$")  # group.port, if not 1.ifIndex
    mac: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{2}([:.-]?[0-9A-Fa-f]{2}){5}$")


class DeviceConfig(Strict):
    id: Identifier
    site: Identifier
    kind: Identifier
    host: str = Field(min_length=1, max_length=253)
    name: str | None = None
    system: System | None = None
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    location: Location | None = None
    ports: dict[str, int] = Field(default_factory=dict)
    credentials: str | None = None
    installed: date | None = None
    warranty_until: date | None = None
    depends_on: list[Identifier] = Field(default_factory=list)
    uplink: UplinkConfig | None = None
    tags: list[str] = Field(default_factory=list)
    checks: list[CheckConfig] | None = None
    interval: float | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)

    @field_validator("location", mode="before")
    @classmethod
    def _location_text(cls, value: object) -> object:
        return {"place": value} if isinstance(value, str) else value


class ChecklistItemConfig(Strict):
    id: Identifier                       # kept in the store, named on the command line
    zh: str = Field(min_length=1, max_length=200)   # what people read
    en: str = Field(min_length=1, max_length=200)


class ChecklistsConfig(Strict):
    """A system's or a kind's list replaces the built-in one (tickets/checklists.yaml);
    an empty list drops it (a system with no items gets no work order)."""

    systems: dict[System, list[ChecklistItemConfig]] = Field(default_factory=dict)
    kinds: dict[Identifier, list[ChecklistItemConfig]] = Field(default_factory=dict)


class EngineerConfig(Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=64)
    phone: str | None = None
    # The sites the engineer works at; empty: every site.
    sites: list[Identifier] = Field(default_factory=list)


class ProbeModule(Strict):
    """``/probe?module=NAME``: the kind label of the answer, and credentials to use."""

    kind: Identifier | None = None
    credentials: Identifier | None = None


class ProbeConfig(Strict):
    # Networks /probe may reach besides the configured devices and brokers; empty:
    # any target (without stored credentials other than a device's own).
    allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    modules: dict[Identifier, ProbeModule] = Field(default_factory=dict)


class ConfigModel(Strict):
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    # Default interval and timeout of every check, in seconds.
    interval: float = Field(60.0, gt=0)
    timeout: float = Field(5.0, gt=0)
    credentials: dict[Identifier, CredentialConfig] = Field(default_factory=dict)
    sites: list[SiteConfig] = Field(default_factory=list)
    kinds: dict[Identifier, KindDefaults] = Field(default_factory=dict)
    include: list[str] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    # Settings of push sources by type (e.g. mqtt brokers, the SNMP trap listener);
    # each section is checked by that source's own model.
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Site rules (rules/README.md): a rule with a built-in rule's id replaces it.
    rules: SiteRules = Field(default_factory=list)
    # Silences and maintenance windows known from the config (more come from the API).
    silences: list[SilenceConfig] = Field(default_factory=list)
    # Who is told about ticket events, and how (exporters/notify).
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    # Ticket lifecycle settings (tickets/manager.py).
    tickets: TicketsConfig = TicketsConfig()
    # How alerts posted to /api/v1/alertmanager map to devices and severities.
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    # What /probe?target=URL may reach, with which credentials (web/probe_access.py).
    probe: ProbeConfig = ProbeConfig()
    # Preventive checklists replacing the built-in ones per system or device kind.
    checklists: ChecklistsConfig = ChecklistsConfig()
    # Field engineers: each acts from the pages through a personal link (elvwatch link
    # --engineer ID), never with the bearer token.
    engineers: list[EngineerConfig] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, as editors and the documentation read it."""
    schema = ConfigModel.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "elvwatch configuration"
    return schema
