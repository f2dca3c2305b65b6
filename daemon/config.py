"""The configuration: strict models, loading with file:line errors, resolution.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigInvalid`
carrying *every* problem found (YAML syntax, unknown keys, wrong types, duplicate ids,
references to unknown sites/devices/credentials, dependency cycles, unknown check
types, unreadable secrets), each naming file, line and key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from email.utils import parseaddr
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from elvwatch.daemon.alertmanager import AlertmanagerConfig
from elvwatch.daemon.config_checks import check_receivers, check_store_url, resolve_token_file
from elvwatch.daemon.includes import merge_includes
from elvwatch.daemon.probe_access import ProbeConfig
from elvwatch.daemon.yamlsource import ConfigError, SourceDict, key_path, load_yaml, locate
from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.probes.base import Check, Credential, Secret, Target
from elvwatch.probes.mqtt_settings import MqttSettings
from elvwatch.probes.registry import PUSH, known_types, options_model
from elvwatch.rules.faults import Severity
from elvwatch.rules.model import SiteRules, parse_duration
from elvwatch.rules.silence import SilenceConfig

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    # Photos engineers take on site (daemon/photos.py); relative to the config file.
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
    reopen_window: Annotated[float, BeforeValidator(_seconds)] = Field(7 * 86400.0, ge=0)
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
    # What /probe?target=URL may reach, with which credentials (daemon/probe_access.py).
    probe: ProbeConfig = ProbeConfig()
    # Preventive checklists replacing the built-in ones per system or device kind.
    checklists: ChecklistsConfig = ChecklistsConfig()
    # Field engineers: each acts from the pages through a personal link (elvwatch link
    # --engineer ID), never with the bearer token.
    engineers: list[EngineerConfig] = Field(default_factory=list)


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


class ConfigInvalid(Exception):
    """The config has problems; ``errors`` lists every one of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def builtin_kinds() -> dict[str, KindDefaults]:
    text = resources.files("elvwatch.daemon").joinpath("kinds.yaml").read_text(encoding="utf-8")
    import yaml

    raw = yaml.safe_load(text)
    return {name: KindDefaults.model_validate(spec) for name, spec in raw.items()}


def load_config(path: str | Path, environ: Mapping[str, str] | None = None, *,
                secrets: bool = True) -> Config:
    """Load, validate and resolve ``path``; raise :class:`ConfigInvalid` with all errors.

    ``secrets=False`` is for commands that read the store, not the devices (status,
    tickets, report, brief, link): credentials keep their names and settings but no
    secret is read, so one not set in the caller's environment is no error."""
    path = Path(path)
    env = os.environ if environ is None else environ
    data, errors = load_yaml(path)
    if errors and data is None:
        raise ConfigInvalid(errors)
    if data is None:
        raise ConfigInvalid([ConfigError(str(path), 1, "", "the config is empty: give at "
                                                           "least sites: and devices:")])
    if not isinstance(data, SourceDict):
        raise ConfigInvalid([ConfigError(str(path), 1, "", "the top level must be a mapping")])
    files = [path]
    errors += merge_includes(path, data, files)
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as exc:
        errors += _pydantic_errors(exc, data, str(path))
        raise ConfigInvalid(errors) from None
    config, semantic = _resolve(path, model, data, env, secrets)
    errors += semantic
    if errors:
        raise ConfigInvalid(errors)
    return Config(path=config.path, model=config.model, devices=config.devices,
                  sites=config.sites, storage_url=config.storage_url,
                  credentials=config.credentials, sources=config.sources, files=tuple(files))


def _pydantic_errors(exc: ValidationError, data: Any, file: str) -> list[ConfigError]:
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        # Pydantic appends the member type of unions (e.g. 'Location'); drop them.
        loc = _trim_loc(data, loc)
        where_file, line = locate(data, loc, file)
        out.append(ConfigError(where_file, line, key_path(loc), _message(err)))
    return out


def _trim_loc(data: Any, loc: list[int | str]) -> list[int | str]:
    node, kept = data, list[int | str]()
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            kept.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            kept.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif node is None and kept[-1:] != [part]:
            kept.append(part)  # a missing key: name it
            break
        else:
            continue
    return kept


def _resolve(path: Path, model: ConfigModel, data: SourceDict, env: Mapping[str, str],
             secrets: bool = True) -> tuple[Config, list[ConfigError]]:
    errors: list[ConfigError] = []

    def err(loc: list[int | str], message: str) -> None:
        file, line = locate(data, loc, str(path))
        errors.append(ConfigError(file, line, key_path(loc), message))

    sites: dict[str, SiteConfig] = {}
    for i, site in enumerate(model.sites):
        if site.id in sites:
            err(["sites", i, "id"], f"duplicate site id {site.id!r}")
        sites[site.id] = site

    _check_engineers(model, sites, err)
    _check_checklists(model, err)

    credentials: dict[str, Credential] = {}
    for name, spec in model.credentials.items():
        if not secrets:
            credentials[name] = Credential(name=name, username=spec.username,
                                           settings=dict(spec.settings))
            continue
        credentials[name] = _resolve_credential(name, spec, path.parent, env,
                                                lambda m, n=name: err(["credentials", n], m))

    kinds = builtin_kinds()
    for name, kind_spec in model.kinds.items():
        kinds[name] = kind_spec
        for j, check in enumerate(kind_spec.checks):
            if check.type not in known_types():
                err(["kinds", name, "checks", j, "type"], _unknown_type(check.type))
            else:
                _check_options(check, ["kinds", name, "checks", j], err)

    ids: dict[str, int] = {}
    for i, dev in enumerate(model.devices):
        if dev.id in ids:
            err(["devices", i, "id"], f"duplicate device id {dev.id!r} "
                                      f"(also devices[{ids[dev.id]}])")
        else:
            ids[dev.id] = i

    devices: dict[str, Device] = {}
    for i, dev in enumerate(model.devices):
        if dev.site not in sites:
            err(["devices", i, "site"], f"unknown site {dev.site!r}")
        if dev.credentials is not None and dev.credentials not in credentials:
            err(["devices", i, "credentials"], f"unknown credentials {dev.credentials!r}")
        for j, parent in enumerate(dev.depends_on):
            if parent not in ids:
                err(["devices", i, "depends_on", j], f"unknown device {parent!r}")
            elif parent == dev.id:
                err(["devices", i, "depends_on", j], "a device cannot depend on itself")
        kind = kinds.get(dev.kind)
        if kind is None and (dev.system is None or dev.checks is None):
            err(["devices", i, "kind"],
                f"unknown kind {dev.kind!r}: give system and checks, or define it under "
                f"kinds: (built in: {', '.join(sorted(kinds))})")
            continue
        system = dev.system or (kind.system if kind else System.NETWORK)
        checks = _resolve_checks(model, kind, dev, i, err)
        cred = credentials.get(dev.credentials) if dev.credentials else None
        target = Target(device=dev.id, host=dev.host, site=dev.site, system=system.value,
                        kind=dev.kind, credential=cred, ports=dict(dev.ports))
        devices.setdefault(dev.id, Device(dev, system, target, checks))

    for cycle in _cycles({d.id: d.parents for d in devices.values()}):
        err(["devices", ids[cycle[0]], "depends_on"],
            "dependency cycle: " + " → ".join([*cycle, cycle[0]]))
    _check_uplinks(devices, ids, err)

    for name, receiver in model.notify.receivers.items():
        if receiver.credentials is not None and receiver.credentials not in credentials:
            err(["notify", "receivers", name, "credentials"],
                f"unknown credentials {receiver.credentials!r}")
    for i, site_config in enumerate(model.sites):
        for j, via in enumerate(site_config.escalate_via):
            if via not in model.notify.receivers:
                err(["sites", i, "escalate_via", j], f"unknown receiver {via!r} (notify."
                    f"receivers: {', '.join(sorted(model.notify.receivers)) or 'none'})")
    if secrets:  # without them, no receiver could be built: read-only commands build none
        check_receivers(model.notify, credentials, err)
    for name, module in model.probe.modules.items():
        if module.credentials is not None and module.credentials not in credentials:
            err(["probe", "modules", name, "credentials"],
                f"unknown credentials {module.credentials!r}")
    check_store_url(model.storage.url, err)
    spool = model.storage.notify_spool
    spool = spool if spool.is_absolute() else path.parent.resolve() / spool
    if not spool.parent.is_dir():
        err(["storage", "notify_spool"], f"directory {spool.parent} does not exist")
    model = model.model_copy(update={
        "storage": model.storage.model_copy(update={"notify_spool": spool})})
    token_file = resolve_token_file(model.http.token_file, path.parent, err)
    if token_file != model.http.token_file:
        model = model.model_copy(update={
            "http": model.http.model_copy(update={"token_file": token_file})})

    sources: dict[str, BaseModel | None] = {}
    for name, section in model.sources.items():
        source = PUSH.get(name)
        if source is None:
            err(["sources", name], f"unknown source {name!r} (known: "
                                   f"{', '.join(sorted(PUSH)) or 'none'})")
        elif source.settings is None:
            sources[name] = None
        else:
            try:
                sources[name] = source.settings.model_validate(section)
            except ValidationError as exc:
                for e in exc.errors():
                    err(["sources", name, *[p for p in e["loc"] if isinstance(p, int | str)]],
                        _message(e))

    _check_mqtt_references(model, sources.get("mqtt"), credentials, err)

    storage_url = model.storage.url or f"sqlite+aiosqlite:///{path.parent.resolve()}/elvwatch.db"
    config = Config(path=path, model=model, devices=devices, sites=sites,
                    storage_url=storage_url, credentials=credentials, sources=sources)
    return config, errors


def _check_engineers(model: ConfigModel, sites: Mapping[str, SiteConfig], err: Any) -> None:
    seen: set[str] = set()
    for i, engineer in enumerate(model.engineers):
        if engineer.id in seen:
            err(["engineers", i, "id"], f"duplicate engineer id {engineer.id!r}")
        seen.add(engineer.id)
        for j, site in enumerate(engineer.sites):
            if site not in sites:
                err(["engineers", i, "sites", j], f"unknown site {site!r}")


def _check_checklists(model: ConfigModel, err: Any) -> None:
    lists = [(["checklists", "systems", str(k)], v) for k, v in model.checklists.systems.items()]
    lists += [(["checklists", "kinds", k], v) for k, v in model.checklists.kinds.items()]
    for loc, items in lists:
        seen: set[str] = set()
        for j, item in enumerate(items):
            if item.id in seen:
                err([*loc, j, "id"], f"duplicate checklist item {item.id!r}")
            seen.add(item.id)


def _check_uplinks(devices: Mapping[str, Device], ids: Mapping[str, int], err: Any) -> None:
    for device in devices.values():
        uplink = device.config.uplink
        if uplink is None:
            continue
        where = ["devices", ids[device.id], "uplink", "device"]
        switch = devices.get(uplink.device)
        if uplink.device == device.id:
            err(where, "a device cannot be its own uplink")
        elif switch is None:
            err(where, f"unknown device {uplink.device!r}")
        elif not any(c.type == "snmp" for c in switch.checks):
            err(where, f"device {uplink.device!r} has no snmp check: its port values "
                       "cannot be attributed")


def _check_mqtt_references(model: ConfigModel, settings: BaseModel | None,
                           credentials: Mapping[str, Credential], err: Any) -> None:
    """A broker naming unknown credentials, and an mqtt check naming an unknown broker
    (or none when there are several), would only show up at run time as an ``unknown``
    device; they are config errors."""
    brokers = settings.brokers if isinstance(settings, MqttSettings) else {}
    for name, broker in brokers.items():
        if broker.credentials is not None and broker.credentials not in credentials:
            err(["sources", "mqtt", "brokers", name, "credentials"],
                f"unknown credentials {broker.credentials!r}")
    known = ", ".join(sorted(brokers)) or "none"
    places: list[tuple[list[int | str], CheckConfig]] = []
    for kind_name, kind_spec in model.kinds.items():
        places += [(["kinds", kind_name, "checks", j], c) for j, c in enumerate(kind_spec.checks)]
    for i, dev in enumerate(model.devices):
        places += [(["devices", i, "checks", j], c) for j, c in enumerate(dev.checks or [])]
    for loc, spec in places:
        if spec.type != "mqtt":
            continue
        broker_name = spec.params.get("broker")
        if broker_name is None:
            if len(brokers) != 1:
                err([*loc, "params"], f"name the MQTT broker in params.broker "
                                      f"(sources.mqtt.brokers: {known})")
        elif broker_name not in brokers:
            err([*loc, "params", "broker"],
                f"unknown MQTT broker {broker_name!r} (sources.mqtt.brokers: {known})")


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return str(error["msg"])


def _check_options(spec: CheckConfig, loc: list[int | str], err: Any) -> object | None:
    model = options_model(spec.type)
    if model is None:
        return None
    try:
        return model.model_validate(spec.params)
    except ValidationError as exc:
        for e in exc.errors():
            err([*loc, "params", *[p for p in e["loc"] if isinstance(p, int | str)]],
                _message(e))
        return None


def _unknown_type(name: str) -> str:
    return f"unknown check type {name!r} (known: {', '.join(known_types())})"


def _resolve_checks(model: ConfigModel, kind: KindDefaults | None, dev: DeviceConfig,
                    index: int, err: Any) -> tuple[Check, ...]:
    specs = dev.checks if dev.checks is not None else (kind.checks if kind else [])
    interval = dev.interval or (kind.interval if kind else None) or model.interval
    timeout = dev.timeout or (kind.timeout if kind else None) or model.timeout
    out: list[Check] = []
    seen: set[str] = set()
    for j, spec in enumerate(specs):
        loc: list[int | str] = ["devices", index, "checks", j]
        if spec.type not in known_types():
            if dev.checks is not None:
                err([*loc, "type"], _unknown_type(spec.type))
            continue
        name = spec.check_name
        if name in seen:
            err([*loc, "name"] if dev.checks is not None else ["devices", index, "kind"],
                f"duplicate check name {name!r}; give each check a distinct name")
            continue
        seen.add(name)
        check_timeout = spec.timeout or timeout
        check_interval = spec.interval or interval
        if check_timeout > check_interval:
            err(loc if dev.checks is not None else ["devices", index],
                f"check {name!r}: timeout {check_timeout:g}s exceeds interval "
                f"{check_interval:g}s")
        options = _check_options(spec, loc, err) if dev.checks is not None else \
            _check_options(spec, ["devices", index, "kind"], err)
        out.append(Check(name=name, type=spec.type, interval=check_interval,
                         timeout=check_timeout, port=spec.port, params=dict(spec.params),
                         options=options))
    return tuple(out)


def _resolve_credential(name: str, cred: CredentialConfig, base: Path,
                        env: Mapping[str, str], err: Any) -> Credential:
    username = cred.username
    if cred.username_env:
        username = env.get(cred.username_env)
        if username is None:
            err(f"environment variable {cred.username_env} (username_env) is not set")
    password: Secret | None = None
    if cred.password_env:
        value = env.get(cred.password_env)
        if value is None:
            err(f"environment variable {cred.password_env} (password_env) is not set")
        else:
            password = Secret(value)
    elif cred.password_file:
        secret_path = cred.password_file if cred.password_file.is_absolute() \
            else base / cred.password_file
        try:
            password = Secret(secret_path.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            err(f"password_file {secret_path}: {exc.strerror or exc}")
    secrets: dict[str, Secret] = {}
    for key, ref in cred.secrets.items():
        if ref.env is not None:
            value = env.get(ref.env)
            if value is None:
                err(f"environment variable {ref.env} (secrets.{key}) is not set")
                continue
            secrets[key] = Secret(value)
        elif ref.file is not None:
            secret_path = ref.file if ref.file.is_absolute() else base / ref.file
            try:
                secrets[key] = Secret(secret_path.read_text(encoding="utf-8").rstrip("\r\n"))
            except OSError as exc:
                err(f"secrets.{key} file {secret_path}: {exc.strerror or exc}")
    return Credential(name=name, username=username, password=password, secrets=secrets,
                      settings=dict(cred.settings))


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each dependency cycle once, as the list of its members."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        color[node] = grey
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in color:
                continue
            if color[nxt] == grey:
                found.append(stack[stack.index(nxt):])
            elif color[nxt] == white:
                visit(nxt)
        stack.pop()
        color[node] = black

    for node in graph:
        if color[node] == white:
            visit(node)
    return found
