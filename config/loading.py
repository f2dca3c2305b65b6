"""Loading a config file: ``load_config(path)`` returns a resolved
:class:`~elvwatch.config.resolved.Config` or raises :class:`ConfigInvalid` carrying
*every* problem found (YAML syntax, unknown keys, wrong types, duplicate ids, references
to unknown sites/devices/credentials, dependency cycles, unknown check types,
unreadable secrets), each naming file, line and key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from elvwatch.config.includes import merge_includes
from elvwatch.config.resolution import message_of, resolve
from elvwatch.config.resolved import Config
from elvwatch.config.schema import ConfigModel, KindDefaults
from elvwatch.config.yamlsource import ConfigError, SourceDict, key_path, load_yaml, locate


class ConfigInvalid(Exception):
    """The config has problems; ``errors`` lists every one of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))

def builtin_kinds() -> dict[str, KindDefaults]:
    text = resources.files("elvwatch.config").joinpath("kinds.yaml").read_text(encoding="utf-8")
    import yaml

    # libyaml's parser where PyYAML has it: this runs on every command's start.
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
    config, semantic = resolve(path, model, data, env, secrets, builtin_kinds())
    errors += semantic
    if errors:
        raise ConfigInvalid(errors)
    return Config(path=config.path, model=config.model, devices=config.devices,
                  sites=config.sites, storage_url=config.storage_url,
                  credentials=config.credentials, sources=config.sources, files=tuple(files),
                  tokens=config.tokens)


def _pydantic_errors(exc: ValidationError, data: Any, file: str) -> list[ConfigError]:
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        # Pydantic appends the member type of unions (e.g. 'Location'); drop them.
        loc = _trim_loc(data, loc)
        where_file, line = locate(data, loc, file)
        out.append(ConfigError(where_file, line, key_path(loc), message_of(err)))
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
