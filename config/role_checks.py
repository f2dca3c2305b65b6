"""The roles checked against the rest of the config (config/roles.py): a section only
for its role, the sites a poller serves, the tokens read, HTTPS where tokens travel.
Relative paths are made absolute against the config file's folder, like token_file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from elvwatch.config.checks import read_secret
from elvwatch.config.schema import ConfigModel
from elvwatch.probes.base import Secret

Report = Callable[[list[int | str], str], None]


def check_roles(model: ConfigModel, base: Path, env: Mapping[str, str], secrets: bool,
                err: Report) -> tuple[ConfigModel, dict[str, Secret]]:
    """``model`` with its role's paths made absolute, and the tokens of the role: a
    poller's own under its id, a centre's under each poller's id."""
    sites = {s.id for s in model.sites}
    for section, role in (("poller", "poller"), ("centre", "centre")):
        if getattr(model, section) is not None and model.role != role:
            err([section], f"only for role: {role} (role is {model.role!r})")
    if model.role != "standalone" and getattr(model, model.role) is None:
        err(["role"], f"role {model.role} needs a {model.role}: section")
    http = model.http
    if (http.tls_cert is None) != (http.tls_key is None):
        err(["http"], "give both tls_cert and tls_key, or neither")
    tls = {name: _absolute(getattr(http, name), base) for name in ("tls_cert", "tls_key")}
    for name, file in tls.items():
        if file is not None and not file.is_file():
            err(["http", name], f"no such file: {file}")
    model = model.model_copy(update={"http": http.model_copy(update=tls)})
    tokens: dict[str, Secret] = {}
    if model.role == "poller" and model.poller is not None:
        poller = model.poller
        for j, site in enumerate(poller.sites):
            if site not in sites:
                err(["poller", "sites", j], f"unknown site {site!r}")
        for i, device in enumerate(model.devices):
            if device.site not in poller.sites and device.site in sites:
                err(["devices", i, "site"], f"site {device.site!r} is not in poller.sites: "
                                            "a poller probes only the sites it serves")
        ca_file = _absolute(poller.ca_file, base)
        if ca_file is not None and not ca_file.is_file():
            err(["poller", "ca_file"], f"no such file: {ca_file}")
        buffer = poller.buffer.model_copy(update={"path": _absolute(poller.buffer.path, base)})
        if not buffer.path.parent.is_dir():
            err(["poller", "buffer", "path"], f"directory {buffer.path.parent} does not exist")
        if secrets:
            token = read_secret(poller.token, base, env, "token", _at(err, ["poller", "token"]))
            if token is not None:
                tokens[poller.id] = token
        model = model.model_copy(update={"poller": poller.model_copy(
            update={"ca_file": ca_file, "buffer": buffer})})
    if model.role == "centre" and model.centre is not None:
        if http.tls_cert is None:
            err(["http", "tls_cert"], "role centre serves HTTPS only: pollers send their "
                                      "tokens to it (give tls_cert and tls_key)")
        for name, peer in model.centre.pollers.items():
            for j, site in enumerate(peer.sites):
                if site not in sites:
                    err(["centre", "pollers", name, "sites", j], f"unknown site {site!r}")
            if secrets:
                token = read_secret(peer.token, base, env, "token",
                                    _at(err, ["centre", "pollers", name, "token"]))
                if token is not None:
                    tokens[name] = token
    return model, tokens


def _at(err: Report, where: list[int | str]) -> Callable[[str], None]:
    return lambda message: err(where, message)


def _absolute(path: Path | None, base: Path) -> Path | None:
    if path is None or path.is_absolute():
        return path
    return base / path
