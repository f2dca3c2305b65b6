"""The JSON Schema of the config file, as editors and the configuration reference use it.

The config models (``daemon.config.ConfigModel``) leave two parts open because other
models check them when the config loads: ``sources.<type>`` (a push source's settings
model) and a check's ``params`` (its probe's options model, chosen by ``type``).  This
schema fills both in from the probe registry, so an editor knows a ``snmp`` check's
``params.version`` as well as ``http.listen``; descriptions come from the models'
comments (:mod:`tools.docgen.comments`).

``python -m tools.docgen.config_schema [-o FILE]`` prints or writes it; the committed
copy is ``docs/config.schema.json`` (``tests/test_docs.py`` keeps it current).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from daemon.config import ConfigModel
from probes.registry import PULL, PUSH, known_types, options_model
from tools.docgen.comments import field_comments

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "config.schema.json"

Schema = dict[str, Any]


class _Described(GenerateJsonSchema):
    """Pydantic's generator, with each field's comment as its description and without
    the titles it derives from field names ("Name Zh" says nothing a key does not)."""

    def model_schema(self, schema: Any) -> Schema:
        out = super().model_schema(schema)
        model = schema.get("cls")
        props = out.get("properties") if isinstance(out, dict) else None
        if not (isinstance(model, type) and issubclass(model, BaseModel) and props):
            return out
        comments = field_comments(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            prop = props.get(key)
            if not isinstance(prop, dict):
                continue
            prop.pop("title", None)
            if "description" not in prop and name in comments:
                prop["description"] = comments[name]
        return out


def _source_models() -> dict[str, type[BaseModel] | None]:
    return {name: spec.settings for name, spec in sorted(PUSH.items())}


def _option_models() -> dict[str, type[BaseModel]]:
    return {t: m for t in known_types() if (m := options_model(t)) is not None}


def config_schema() -> Schema:
    """The whole config file's schema (draft 2020-12), one ``$defs`` for every model."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ConfigModel, "validation")]
    sources = _source_models()
    options = _option_models()
    extra = [m for m in [*sources.values(), *options.values()] if m is not None]
    models += [(m, "validation") for m in dict.fromkeys(extra)]
    refs, top = models_json_schema(models, schema_generator=_Described,
                                   ref_template="#/$defs/{model}")
    defs: Schema = top["$defs"]

    def ref(model: type[BaseModel]) -> str:
        return str(refs[(model, "validation")]["$ref"])

    root_ref = ref(ConfigModel).rsplit("/", 1)[1]
    root: Schema = dict(defs.pop(root_ref))

    root["properties"]["sources"] = {
        "type": "object",
        "description": root["properties"]["sources"].get("description", ""),
        "additionalProperties": False,
        "properties": {
            name: ({"$ref": ref(model)} if model is not None else
                   {"type": "object", "description": f"the {name} source takes no settings"})
            for name, model in sources.items()
        },
    }
    check = defs["CheckConfig"]
    check["properties"]["type"] = {
        "enum": known_types(),
        "description": "what the check runs: a pull probe "
                       f"({', '.join(sorted(PULL))}) or a push source ({', '.join(sorted(PUSH))})",
    }
    check["properties"]["params"].setdefault(
        "description", "the probe's parameters; which ones depends on type")
    check["allOf"] = [
        {"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
         "then": {"properties": {"params": {"$ref": ref(model)}}}}
        for name, model in options.items()
    ]
    _prune(root, defs)
    _close_maps(root)
    for sub in defs.values():
        _close_maps(sub)
    schema: Schema = {
        "$schema": SCHEMA_DIALECT,
        "title": "elvwatch configuration",
        "description": "The config file of elvwatch (elvwatch run -c FILE). Unknown keys "
                       "are errors.",
        **{k: v for k, v in root.items() if k not in ("title", "description")},
        "$defs": dict(sorted(defs.items())),
    }
    return schema


def _prune(root: Schema, defs: Schema) -> None:
    """Drop definitions nothing refers to (a model whose field reads another input type
    in the schema, e.g. a rule's ``for: 3`` for its Hold)."""
    text = json.dumps(root)
    used: set[str] = set()
    while True:
        found = {name for name in defs if f'"#/$defs/{name}"' in text} - used
        if not found:
            break
        used |= found
        text = json.dumps([defs[name] for name in found])
    for name in set(defs) - used:
        del defs[name]


def _close_maps(node: Any) -> None:
    """A map keyed by a pattern (``dict[Identifier, …]``) refuses other keys when the
    config loads; say so in the schema too (pydantic leaves additionalProperties out)."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_maps(value)


def schema_json(schema: Schema | None = None) -> str:
    """The schema as the committed file holds it (stable key order, one final newline)."""
    return json.dumps(config_schema() if schema is None else schema, indent=2,
                      ensure_ascii=False) + "\n"


def definitions(schema: Schema) -> Iterator[tuple[str, Schema]]:
    """Every object schema with properties: the root (``""``) and each ``$defs`` entry."""
    yield "", schema
    for name, sub in schema.get("$defs", {}).items():
        if isinstance(sub, dict) and "properties" in sub:
            yield name, sub


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docgen.config_schema",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    args = parser.parse_args(argv)
    text = schema_json()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
