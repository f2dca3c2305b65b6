"""The config file's models: strict (an unknown key fails), frozen, each field's
default and limits written where it is declared.

Its JSON Schema, with what these models leave open filled in from the probe registry,
is config/json_schema.py.
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
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)

from elvwatch.config.fields import Identifier, SecretRef, Strict
from elvwatch.config.roles import CentreConfig, PollerConfig, Role
from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.rules.alertmanager import AlertmanagerConfig
from elvwatch.rules.faults import Severity
from elvwatch.rules.model import SiteRules, parse_duration
from elvwatch.rules.silence import SilenceConfig


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
    # HOST:PORT of the one HTTP listener: /metrics, /healthz, /probe, the API and the pages.
    listen: str = "127.0.0.1:9780"
    # A file holding the bearer token for writes and for reads from other than loopback; relative to
    # the config file. Read, sign-off and engineers' links are keyed from it. Without it: loopback
    # reads only, and no links.
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
    # A PEM certificate (chain) file to serve HTTPS with, relative to the config file;
    # with tls_key. A centre needs it: pollers send their tokens to it.
    tls_cert: Path | None = None
    # The PEM private key file of tls_cert, relative to the config file.
    tls_key: Path | None = None

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
    # Checks running at once, all devices together.
    max_concurrency: int = Field(512, ge=1, le=100_000)
    # Checks running at once against one host.
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


class CredentialConfig(Strict):
    # The login name, written here (not a secret).
    username: str | None = None
    # … or read from this environment variable.
    username_env: str | None = None
    # The password from this environment variable (never in the config) ...
    password_env: str | None = None
    # ... or from this file, relative to the config file.
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
    # First day of the maintenance contract (YYYY-MM-DD).
    start: date
    # How long it runs; reports and the handover default to this period.
    months: int = Field(12, ge=1, le=120)
    # A solution given and an engineer dispatched within this many hours of a fault.
    response_hours: float = Field(12.0, gt=0)
    # Repair deadline per severity; null means "to agree with the site representative".
    resolve_hours: dict[Severity, float | None] = Field(
        default_factory=lambda: {Severity.GENERAL: 12.0, Severity.MAJOR: None,
                                 Severity.EMERGENCY: 4.0})
    # 0: immediately (the escalation contacts are paged when the ticket opens).
    emergency_response_hours: float = Field(0.5, ge=0)
    # How often preventive maintenance (定期保养) work orders fall due, per system.
    preventive: Literal["monthly", "quarterly"] = "quarterly"


class Contact(Strict):
    # The person's name as people read it.
    name: str
    # What they do for the site (site representative, supervisor, …).
    role: str | None = None
    # Tap to call on the pages; @-mentioned by DingTalk bots for escalations.
    phone: str | None = None
    # Escalations by email go here.
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
    # The site's id: letters, digits and _ . : - (in metric labels and URLs).
    id: Identifier
    # The site's name as people read it (阳光花园).
    name: str
    # Language of the site's pages, reports and messages.
    language: Literal["zh-CN", "en"] = "zh-CN"
    # Shown on the site page, the pre-visit brief and the forms.
    address: str | None = None
    # The maintenance contract the tickets' deadlines come from; without one, tickets get
    # the default terms shown under contract, and there is no contract period.
    contract: ContractConfig | None = None
    # The site's people (the representative who signs off, the property office).
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
    # Names the check in metrics, rules and tickets; default TYPE, or TYPE_PORT with a port.
    name: Identifier | None = None
    # Seconds between runs; default: the device's, the kind's, then the top-level interval.
    interval: float | None = Field(None, gt=0)
    # Seconds a run may take (the scheduler cuts it off); at most the interval.
    timeout: float | None = Field(None, gt=0)
    # The port the check talks to, where its protocol has one.
    port: int | None = Field(None, ge=1, le=65535)
    params: dict[str, CheckParam] = Field(default_factory=dict)

    @property
    def check_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.type}_{self.port}" if self.port else self.type


class KindDefaults(Strict):
    # The system devices of this kind belong to.
    system: System
    # What a device of this kind runs when its entry names no checks.
    checks: list[CheckConfig] = Field(default_factory=list)
    # Default interval of these devices' checks, in seconds.
    interval: float | None = Field(None, gt=0)
    # Default timeout of these devices' checks, in seconds.
    timeout: float | None = Field(None, gt=0)


class Location(Strict):
    # Building (楼栋), as the equipment archive has it.
    building: str | None = None
    # Floor (楼层).
    floor: str | None = None
    # Where on the floor (单元门, 入口岗亭上方); a location written as one line of text goes here.
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
    # The device's MAC address: finds its port in the switch's forwarding table when LLDP does not.
    mac: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{2}([:.-]?[0-9A-Fa-f]{2}){5}$")


class DeviceConfig(Strict):
    # The device's id: letters, digits and _ . : - (in metric labels, rules and tickets).
    id: Identifier
    # The site (sites[].id) the device belongs to.
    site: Identifier
    # Its kind (camera, nvr, switch, …; config/kinds.yaml or kinds:), which gives its system and
    # default checks.
    kind: Identifier
    # The address its checks reach: an IP address or a host name.
    host: str = Field(min_length=1, max_length=253)
    # The name people read on pages, reports and messages (南门入口枪机); default: the id.
    name: str | None = None
    # Default: the kind's system.
    system: System | None = None
    # Equipment archive (设备档案): vendor, model, serial and firmware as recorded; the device's own
    # answers are shown beside them.
    vendor: str | None = None
    # The model, as recorded in the archive.
    model: str | None = None
    # The serial, as recorded in the archive; the camera_replaced rule compares what the device
    # reports with it.
    serial: str | None = None
    # The firmware version, as recorded in the archive.
    firmware: str | None = None
    # Where the device is: {building, floor, place}, or one line of text.
    location: Location | None = None
    # Named ports of the device (http: 80, rtsp: 554), kept in the archive.
    ports: dict[str, int] = Field(default_factory=dict)
    # The credentials (credentials.<name>) its checks log in with.
    credentials: str | None = None
    # Date of installation (YYYY-MM-DD).
    installed: date | None = None
    # Last day of the manufacturer's warranty: a part replaced until then is claimed under warranty,
    # after it charged at cost.
    warranty_until: date | None = None
    # Devices this one hangs off (switch, NVR, power): their fault is this device's root cause, one
    # ticket instead of many.
    depends_on: list[Identifier] = Field(default_factory=list)
    # The switch port it hangs off (a camera on a PoE switch).
    uplink: UplinkConfig | None = None
    # Free words that rules can match (match.tags).
    tags: list[str] = Field(default_factory=list)
    # What it runs; replaces the kind's checks. Left out: the kind's checks.
    checks: list[CheckConfig] | None = None
    # Default interval of this device's checks, in seconds.
    interval: float | None = Field(None, gt=0)
    # Default timeout of this device's checks, in seconds.
    timeout: float | None = Field(None, gt=0)

    @field_validator("location", mode="before",
                     json_schema_input_type=str | Location | None)
    @classmethod
    def _location_text(cls, value: object) -> object:
        return {"place": value} if isinstance(value, str) else value


class ChecklistItemConfig(Strict):
    id: Identifier                       # kept in the store, named on the command line
    zh: str = Field(min_length=1, max_length=200)   # what people read
    # The same in English.
    en: str = Field(min_length=1, max_length=200)


class ChecklistsConfig(Strict):
    """A system's or a kind's list replaces the built-in one (tickets/checklists.yaml);
    an empty list drops it (a system with no items gets no work order)."""

    # Per system: its checklist, replacing the built-in one.
    systems: dict[System, list[ChecklistItemConfig]] = Field(default_factory=dict)
    # Per device kind: the items added for each kind the site has in that system.
    kinds: dict[Identifier, list[ChecklistItemConfig]] = Field(default_factory=dict)


class EngineerConfig(Strict):
    # The engineer's id, used in their personal link and the audit trail.
    id: Identifier
    # The name shown on the pages and forms (王工).
    name: str = Field(min_length=1, max_length=64)
    # Their mobile, shown on the pages.
    phone: str | None = None
    # The sites the engineer works at; empty: every site.
    sites: list[Identifier] = Field(default_factory=list)


class ProbeModule(Strict):
    """``/probe?module=NAME``: the kind label of the answer, and credentials to use."""

    # The kind label of the answer.
    kind: Identifier | None = None
    # Credentials (credentials.<name>) used for targets that are configured devices or inside
    # probe.allowed_networks.
    credentials: Identifier | None = None


class ProbeConfig(Strict):
    # Networks /probe may reach besides the configured devices and brokers; empty:
    # any target (without stored credentials other than a device's own).
    allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    # /probe?module=NAME: a kind and credentials by name, as in blackbox_exporter.
    modules: dict[Identifier, ProbeModule] = Field(default_factory=dict)


class ConfigModel(Strict):
    # standalone: probe, rule and ticket on this host; poller: probe a site's devices and
    # forward what they show to the centre (poller:); centre: take the pollers'
    # observations into the one store, rule engine and ticket queue (centre:).
    role: Role = "standalone"
    # A poller's centre, credentials, sites and buffer (role: poller only).
    poller: PollerConfig | None = None
    # The pollers a centre takes observations from (role: centre only).
    centre: CentreConfig | None = None
    # Where state, tickets and the equipment archive are kept.
    storage: StorageConfig = StorageConfig()
    # The HTTP listener and who may read and write through it.
    http: HttpConfig = HttpConfig()
    # How checks are run and when a device counts as down.
    scheduler: SchedulerConfig = SchedulerConfig()
    # Default interval and timeout of every check, in seconds.
    interval: float = Field(60.0, gt=0)
    # Default timeout of every check, in seconds.
    timeout: float = Field(5.0, gt=0)
    # Logins by name; secrets come from an environment variable or a file, never inline.
    credentials: dict[Identifier, CredentialConfig] = Field(default_factory=dict)
    # The communities watched, each with its maintenance contract and contacts.
    sites: list[SiteConfig] = Field(default_factory=list)
    # Device kinds: replace a built-in one (config/kinds.yaml) or add a new one.
    kinds: dict[Identifier, KindDefaults] = Field(default_factory=dict)
    # Inventory files (each holding only a devices: list) added to devices; relative paths and globs
    # (**) allowed.
    include: list[str] = Field(default_factory=list)
    # The equipment archive (设备档案) and what each device runs.
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

