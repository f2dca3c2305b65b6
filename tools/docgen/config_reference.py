"""The configuration reference page, rendered from the config's JSON Schema.

One section per object of the schema (the top level, then every model in the order a
reader meets it from the top), each a table of its keys: type, default, description.
Types that are models link to their section.  Nothing here knows a key by name: a key
added to a model shows up on the next build.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from tools.docgen.config_schema import Schema, definitions, json_schema

ROOT_ANCHOR = "top-level"


def anchor(def_name: str) -> str:
    return ROOT_ANCHOR if not def_name else def_name.lower()


def _def_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


def reading_order(schema: Schema) -> list[tuple[str, list[str]]]:
    """(definition, the paths a reader finds it at, nearest first), breadth first from
    the top level.  Paths read like the YAML: ``devices[].checks[]``,
    ``credentials.<name>``."""
    paths: dict[str, list[str]] = {"": [""]}
    queue: deque[tuple[str, Schema]] = deque([("", schema)])
    defs = schema.get("$defs", {})
    while queue:
        path, node = queue.popleft()
        for sub_path, sub in _children(path, node):
            for ref, suffix in _refs(sub):
                name = _def_name(ref)
                if "properties" not in defs.get(name, {}):
                    continue
                if name in paths:
                    if sub_path + suffix not in paths[name] and len(paths[name]) < 4:
                        paths[name].append(sub_path + suffix)
                    continue
                paths[name] = [sub_path + suffix]
                queue.append((sub_path + suffix, defs[name]))
    # Anything not reachable from the top (should not happen) still gets its section.
    for name, _ in definitions(schema):
        paths.setdefault(name, [name])
    return list(paths.items())


def _children(path: str, node: Schema) -> list[tuple[str, Schema]]:
    prefix = f"{path}." if path else ""
    props = node.get("properties", {})
    # Devices first: a check's sections then read devices[].checks[], where people
    # write checks, rather than kinds.<name>.checks[].
    keys = sorted(props, key=lambda key: key != "devices") if not path else list(props)
    out = [(f"{prefix}{key}", props[key]) for key in keys]
    for branch in node.get("allOf", []):
        then = branch.get("then", {}).get("properties", {})
        kind = branch.get("if", {}).get("properties", {}).get("type", {}).get("const")
        out += [(f"{prefix}{key} (type: {kind})", sub) for key, sub in then.items()]
    return out


def _refs(node: Any, suffix: str = "") -> list[tuple[str, str]]:
    """The models a property's value may be, looking through lists, maps and unions,
    each with how the path goes on to it (``[]`` for a list item, ``.<name>`` for a map
    value)."""
    if not isinstance(node, dict):
        return []
    found = [(node["$ref"], suffix)] if "$ref" in node else []
    for key, sub in node.get("properties", {}).items():
        found += _refs(sub, f"{suffix}.{key}")
    found += _refs(node.get("items"), suffix + "[]")
    found += _refs(node.get("additionalProperties"), suffix + ".<name>")
    for sub in node.get("patternProperties", {}).values():
        found += _refs(sub, suffix + ".<name>")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            found += _refs(sub, suffix)
    return found


def type_text(node: Any, defs: Schema) -> str:
    """A property's type in words, models linked to their section."""
    if not isinstance(node, dict) or not node:
        return "any"
    if "$ref" in node:
        name = _def_name(node["$ref"])
        target = defs.get(name, {})
        if "enum" in target:
            return " \\| ".join(f"`{json.dumps(v, ensure_ascii=False)}`" for v in target["enum"])
        return f"[{name}](#{anchor(name)})"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v, ensure_ascii=False)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'], ensure_ascii=False)}`"
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts = [type_text(sub, defs) for sub in node[key]]
            return " or ".join(dict.fromkeys(parts))
    kind = node.get("type")
    if kind == "array":
        return f"list of {type_text(node.get('items'), defs)}"
    if kind == "object":
        extra = node.get("additionalProperties")
        for value in node.get("patternProperties", {}).values():
            return f"map of name → {type_text(value, defs)}"
        if isinstance(extra, dict):
            key = type_text(node.get("propertyNames"), defs) \
                if node.get("propertyNames") else "name"
            return f"map of {key} → {type_text(extra, defs)}"
        return "object"
    if kind == "string":
        fmt = node.get("format")
        return f"string ({fmt})" if fmt else "string"
    if isinstance(kind, str):
        return kind
    return "any"


def _discriminator(node: Schema) -> str:
    """`` (type: email)`` for one member of a union told apart by its ``type``."""
    kind = node.get("properties", {}).get("type", {})
    value = kind.get("const", (kind.get("enum") or [None, None])[0]
                     if len(kind.get("enum", [])) == 1 else None)
    return f" (type: {value})" if isinstance(value, str) else ""


def _limits(node: Schema) -> str:
    words = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<",
             "minLength": "length ≥", "maxLength": "length ≤", "minItems": "items ≥",
             "maxItems": "items ≤"}
    parts = [f"{words[k]} {node[k]}" for k in words if k in node]
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    for sub in node.get("anyOf", []):
        if isinstance(sub, dict) and sub.get("type") != "null":
            inner = _limits(sub)
            if inner:
                parts.append(inner)
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _default(prop: Schema, required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop or ("$ref" in prop and isinstance(prop["default"], dict)):
        return ""  # a model's defaults are in its own section
    value = prop["default"]
    if value in ({}, []) or value is None:
        return f"`{json.dumps(value)}`"
    return _cell(f"`{json.dumps(value, ensure_ascii=False)}`")


def render(schema: Schema | None = None) -> str:
    """The reference page (Markdown for MkDocs with the attr_list extension)."""
    schema = json_schema() if schema is None else schema
    defs = schema.get("$defs", {})
    lines = [
        "# Configuration reference",
        "",
        "Every key of the config file, generated from the config models' JSON Schema when",
        "the docs are built. The same schema is published for editors as",
        "[`config.schema.json`](../config.schema.json) (`elvwatch config schema` prints it):",
        "with the YAML language server (VS Code's",
        "YAML extension, and others), the line",
        "`# yaml-language-server: $schema=…` at the top of a config file (as in",
        "`config.example.yaml`) gives completion, these descriptions on hover and errors as",
        "you type. `elvwatch check -c FILE` remains the judge: it also checks what a schema",
        "cannot say (references between sites, devices and credentials, secrets that can be",
        "read, dependency cycles).",
        "",
        "Durations in seconds unless the key says otherwise; *required* keys have no default.",
        "",
    ]
    for name, paths in reading_order(schema):
        node = schema if not name else defs[name]
        title = "Top level" if not name else f"`{paths[0]}`{_discriminator(node)}"
        lines += [f"## {title} {{#{anchor(name)}}}", ""]
        if len(paths) > 1:
            lines += ["Also at " + ", ".join(f"`{p}`" for p in paths[1:]) + ".", ""]
        if name and node.get("description"):
            lines += [_cell(node["description"]), ""]
        if name:
            lines += [f"*{name}*", ""]
        lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        required = set(node.get("required", []))
        for key, prop in node.get("properties", {}).items():
            limits = _limits(prop)
            words = _cell(prop.get("description", ""))
            if limits:
                words = f"{words} ({limits})" if words else f"({limits})"
            lines.append(f"| `{key}` | {type_text(prop, defs)} | "
                         f"{_default(prop, key in required)} | {words} |")
        lines.append("")
    return "\n".join(lines)
