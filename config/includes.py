"""``include:`` of inventory files: patterns relative to the config or absolute, globs
allowed (``**`` too); each included file holds only a ``devices:`` list, whose items
keep their own file:line for error messages."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from elvwatch.config.yamlsource import ConfigError, SourceDict, SourceList, load_yaml


def include_matches(base: Path, pattern: str) -> list[Path]:
    """The files ``pattern`` names, sorted; relative patterns start at ``base``.

    ``glob.glob`` rather than ``Path.glob``: the latter refuses absolute patterns
    and empty ones with an exception."""
    full = os.path.expanduser(pattern)
    if not os.path.isabs(full):
        full = str(base / full)
    return sorted(Path(p) for p in glob.glob(full, recursive=True) if os.path.isfile(p))


def merge_includes(path: Path, data: SourceDict, files: list[Path]) -> list[ConfigError]:
    """Append the ``devices:`` of each included file to ``data``; list them in ``files``."""
    errors: list[ConfigError] = []
    includes = data.get("include") or []
    if not isinstance(includes, list):
        return errors  # the model reports the wrong type
    devices = data.get("devices")
    if devices is None:
        devices = SourceList()
        devices.file, devices.line, devices.lines = data.file, data.line, []
        data["devices"] = devices
        data.lines["devices"] = data.line
    if not isinstance(devices, SourceList):
        return errors
    for index, pattern in enumerate(includes):
        line = includes.lines[index] if isinstance(includes, SourceList) else None
        if not isinstance(pattern, str) or not pattern.strip():
            errors.append(ConfigError(data.file, line, f"include[{index}]",
                                      "give a file name or a glob pattern"))
            continue
        matches = include_matches(path.parent, pattern)
        if not matches:
            errors.append(ConfigError(data.file, line, f"include[{index}]",
                                      f"no file matches {pattern!r}"))
        for included in matches:
            files.append(included)
            sub, sub_errors = load_yaml(included)
            errors += sub_errors
            if sub is None:
                continue
            if not isinstance(sub, SourceDict) or set(sub) - {"devices"}:
                errors.append(ConfigError(str(included), 1, "",
                                          "an included file holds only a 'devices:' list"))
                continue
            items = sub.get("devices") or SourceList()
            if isinstance(items, SourceList):
                devices.extend(items)
                devices.lines.extend(items.lines)
                # Each included item is a SourceDict with its own file; locate() uses it.
    return errors
