"""Resolution of a validated config model: references checked (sites, devices,
credentials, receivers, brokers), kinds' defaults applied, secrets read, dependency
cycles found.  Every problem is reported with where it is; none stops the others."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from elvwatch.config.checks import (
    check_receivers,
    check_store_url,
    read_secret,
    resolve_token_file,
)
from elvwatch.config.resolved import Config, Device
from elvwatch.config.role_checks import check_roles
from elvwatch.config.schema import (
    CheckConfig,
    ConfigModel,
    CredentialConfig,
    DeviceConfig,
    KindDefaults,
    SiteConfig,
    System,
)
from elvwatch.config.yamlsource import ConfigError, SourceDict, key_path, locate
from elvwatch.probes.base import Check, Credential, Secret, Target
from elvwatch.probes.registry import PUSH, known_types, options_model

if TYPE_CHECKING:
    from elvwatch.probes.mqtt_settings import BrokerSettings

# Reports one problem: where (a key path) and what.
Report = Callable[[list[int | str], str], None]


def resolve(path: Path, model: ConfigModel, data: SourceDict, env: Mapping[str, str],
            secrets: bool, builtin: Mapping[str, KindDefaults]) -> tuple[Config, list[ConfigError]]:
    """The runnable config of ``model`` (loaded from ``path`` as ``data``), and every
    problem found; ``builtin`` are the kinds shipped with the program."""
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
                                                _under(err, ["credentials", name]))

    kinds = dict(builtin)
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
                        message_of(e))

    _check_mqtt_references(model, sources.get("mqtt"), credentials, err)

    model, tokens = check_roles(model, path.parent, env, secrets, err)
    storage_url = model.storage.url or f"sqlite+aiosqlite:///{path.parent.resolve()}/elvwatch.db"
    config = Config(path=path, model=model, devices=devices, sites=sites,
                    storage_url=storage_url, credentials=credentials, sources=sources,
                    tokens=tokens)
    return config, errors


def _under(err: Report, loc: list[int | str]) -> Callable[[str], None]:
    """``err`` for problems that are all at ``loc``."""
    return lambda message: err(loc, message)


def _check_engineers(model: ConfigModel, sites: Mapping[str, SiteConfig], err: Report) -> None:
    seen: set[str] = set()
    for i, engineer in enumerate(model.engineers):
        if engineer.id in seen:
            err(["engineers", i, "id"], f"duplicate engineer id {engineer.id!r}")
        seen.add(engineer.id)
        for j, site in enumerate(engineer.sites):
            if site not in sites:
                err(["engineers", i, "sites", j], f"unknown site {site!r}")


def _check_checklists(model: ConfigModel, err: Report) -> None:
    lists = [(["checklists", "systems", str(k)], v) for k, v in model.checklists.systems.items()]
    lists += [(["checklists", "kinds", k], v) for k, v in model.checklists.kinds.items()]
    for loc, items in lists:
        seen: set[str] = set()
        for j, item in enumerate(items):
            if item.id in seen:
                err([*loc, j, "id"], f"duplicate checklist item {item.id!r}")
            seen.add(item.id)


def _check_uplinks(devices: Mapping[str, Device], ids: Mapping[str, int], err: Report) -> None:
    for device in devices.values():
        uplink = device.config.uplink
        if uplink is None:
            continue
        where: list[int | str] = ["devices", ids[device.id], "uplink", "device"]
        switch = devices.get(uplink.device)
        if uplink.device == device.id:
            err(where, "a device cannot be its own uplink")
        elif switch is None:
            err(where, f"unknown device {uplink.device!r}")
        elif not any(c.type == "snmp" for c in switch.checks):
            err(where, f"device {uplink.device!r} has no snmp check: its port values "
                       "cannot be attributed")


def _check_mqtt_references(model: ConfigModel, settings: BaseModel | None,
                           credentials: Mapping[str, Credential], err: Report) -> None:
    """A broker naming unknown credentials, and an mqtt check naming an unknown broker
    (or none when there are several), would only show up at run time as an ``unknown``
    device; they are config errors."""
    brokers: Mapping[str, BrokerSettings] = {}
    if settings is not None:  # the MQTT library loads only for a config that uses it
        from elvwatch.probes.mqtt_settings import MqttSettings

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


def message_of(error: Any) -> str:
    """A pydantic error in the words the config errors use."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return str(error["msg"])


def _check_options(spec: CheckConfig, loc: list[int | str], err: Report) -> object | None:
    model = options_model(spec.type)
    if model is None:
        return None
    try:
        return model.model_validate(spec.params)
    except ValidationError as exc:
        for e in exc.errors():
            err([*loc, "params", *[p for p in e["loc"] if isinstance(p, int | str)]],
                message_of(e))
        return None


def _unknown_type(name: str) -> str:
    return f"unknown check type {name!r} (known: {', '.join(known_types())})"


def _resolve_checks(model: ConfigModel, kind: KindDefaults | None, dev: DeviceConfig,
                    index: int, err: Report) -> tuple[Check, ...]:
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
                        env: Mapping[str, str], err: Callable[[str], None]) -> Credential:
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
        secret = read_secret(ref, base, env, f"secrets.{key}", err)
        if secret is not None:
            secrets[key] = secret
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
