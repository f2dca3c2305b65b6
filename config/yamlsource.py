"""YAML loading that remembers where every key came from.

Mappings load as :class:`SourceDict` and sequences as :class:`SourceList`; both
carry the file name and the line of each of their entries, so a validation error at
``devices[3].kind`` can be reported as ``site.yaml:41``.  Duplicate keys, which
PyYAML silently keeps the last of, are collected as errors instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, SequenceNode


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem in a config file, with where it is."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SourceDict(dict[str, Any]):
    """A mapping that knows its file, its own line and the line of each key."""

    file: str
    line: int
    lines: dict[str, int]


class SourceList(list[Any]):
    """A sequence that knows its file, its own line and the line of each item."""

    file: str
    line: int
    lines: list[int]


# libyaml's parser where PyYAML was built with it: 20,000 devices parse in about a
# second instead of ten; the constructors below are the same for both.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.file = file
        self.duplicate_keys: list[ConfigError] = []


def _construct_mapping(loader: _Loader, node: MappingNode) -> Iterator[SourceDict]:
    loader.flatten_mapping(node)
    result = SourceDict()
    result.file, result.line, result.lines = loader.file, node.start_mark.line + 1, {}
    yield result
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "mapping key is not hashable", key_node.start_mark)
        skey = str(key)
        line = key_node.start_mark.line + 1
        if skey in result:
            loader.duplicate_keys.append(ConfigError(
                loader.file, line, skey,
                f"duplicate key (first given on line {result.lines[skey]})"))
            continue
        result[skey] = loader.construct_object(value_node, deep=True)
        result.lines[skey] = line


def _construct_sequence(loader: _Loader, node: SequenceNode) -> Iterator[SourceList]:
    result = SourceList()
    result.file, result.line = loader.file, node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    yield result
    result.extend(loader.construct_object(child, deep=True) for child in node.value)


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    # Dates stay text here; the models parse them and report a bad one with its line.
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_yaml(path: Path) -> tuple[Any, list[ConfigError]]:
    """Load one YAML file; syntax errors and duplicate keys come back as errors."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [ConfigError(name, None, "", f"cannot read: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [_not_utf8(name, raw, exc)]
    loader = _Loader(text, name)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return None, [ConfigError(name, line, "", f"YAML syntax: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [ConfigError(name, None, "", f"YAML: {exc}")]
    finally:
        loader.dispose()
    return data, loader.duplicate_keys


def _not_utf8(name: str, raw: bytes, exc: UnicodeDecodeError) -> ConfigError:
    # Spreadsheets exported on Chinese Windows are often GBK: say where, so the one
    # pasted cell can be found.
    line_start = raw.rfind(b"\n", 0, exc.start) + 1
    column = exc.start - line_start + 1
    return ConfigError(name, raw.count(b"\n", 0, exc.start) + 1, "",
                       f"not UTF-8 text (byte 0x{raw[exc.start]:02x} in column {column}: "
                       f"{exc.reason}); save the file as UTF-8")


def key_path(loc: Sequence[int | str]) -> str:
    """``('devices', 3, 'kind')`` → ``devices[3].kind``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def locate(root: Any, loc: Sequence[int | str], default_file: str) -> tuple[str, int | None]:
    """File and line of the deepest node of ``loc`` that the loaded data still has."""
    file, line = default_file, None
    node = root
    for part in loc:
        if isinstance(node, SourceDict) and isinstance(part, str) and part in node:
            file, line = node.file, node.lines.get(part, node.line)
            node = node[part]
        elif isinstance(node, SourceList) and isinstance(part, int) and 0 <= part < len(node):
            file, line = node.file, node.lines[part]
            node = node[part]
        else:
            if isinstance(node, SourceDict | SourceList) and line is None:
                file, line = node.file, node.line
            break
    return file, line


