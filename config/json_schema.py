"""The JSON Schema of a config file: what editors validate against (``elvwatch config
schema``; the copy in the repository is docs/config.schema.json) and what the
configuration reference is made from.

The models of config/schema.py leave two parts open because other models check them
when the config loads: ``sources.<type>`` (a push source's settings model) and a
check's ``params`` (its probe's options model, chosen by ``type``).  This schema fills
both in from the probe registry, so an editor knows an ``snmp`` check's
``params.version`` as well as ``http.listen``.

The models explain their fields with ``#`` comments (why a field exists, what its value
means) rather than ``Field(description=…)``; the schema carries those words, so editors
show them on hover and the reference cannot drift from the code: the comment block
right above a field, or the comment at the end of its line, is its description.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import textwrap
import tokenize
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from elvwatch.config.schema import ConfigModel
from elvwatch.probes.registry import PULL, PUSH, known_types, options_model

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]


def json_schema() -> Schema:
    """The whole config file's schema (draft 2020-12), one ``$defs`` for every model."""
    sources = {name: spec.settings for name, spec in sorted(PUSH.items())}
    options = {t: m for t in known_types() if (m := options_model(t)) is not None}
    extra = [m for m in [*sources.values(), *options.values()] if m is not None]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ConfigModel, "validation")]
    models += [(m, "validation") for m in dict.fromkeys(extra)]
    refs, top = models_json_schema(models, schema_generator=_Described,
                                   ref_template="#/$defs/{model}")
    defs: Schema = top["$defs"]

    def ref(model: type[BaseModel]) -> str:
        return str(refs[(model, "validation")]["$ref"])

    root: Schema = dict(defs.pop(ref(ConfigModel).rsplit("/", 1)[1]))
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
    _close_maps(defs)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "elvwatch configuration",
        "description": "The config file of elvwatch (elvwatch run -c FILE). Unknown keys "
                       "are errors.",
        **{k: v for k, v in root.items() if k not in ("title", "description")},
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """The schema as the published file holds it (stable order, one final newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


class _Described(GenerateJsonSchema):
    """Pydantic's generator, with each field's comment as its description and without
    the titles it derives from field names ("Name Zh" says nothing a key does not)."""

    def model_schema(self, schema: Any) -> Schema:
        out: Schema = super().model_schema(schema)
        model = schema.get("cls")
        props = out.get("properties")
        if not (isinstance(model, type) and issubclass(model, BaseModel) and props):
            return out
        comments: dict[str, str] = {}
        for base in reversed(model.__mro__):  # a field's comment is where it is declared
            if isinstance(base, type) and issubclass(base, BaseModel) and base is not BaseModel:
                comments.update(field_comments(base))
        for name, field in model.model_fields.items():
            prop = props.get(field.alias or name)
            if not isinstance(prop, dict):
                continue
            prop.pop("title", None)
            if "description" not in prop and name in comments:
                prop["description"] = comments[name]
        return out


@cache
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name → the comment describing it, for the fields ``model`` declares."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):  # no source (a model made at run time): no comments
        return {}
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    code_lines = {n for n, line in enumerate(source.splitlines(), 1)
                  if line.strip() and not line.strip().startswith("#")}
    found: dict[str, str] = {}
    cls = ast.parse(source).body[0]
    for node in cls.body if isinstance(cls, ast.ClassDef) else []:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in comments and line not in code_lines:
            above.insert(0, comments[line])
            line -= 1
        last = node.end_lineno or node.lineno
        trailing = [comments[n] for n in range(node.lineno, last + 1)
                    if n in comments and n in code_lines]
        text = " ".join([*above, *trailing]).strip()
        if text:
            found[node.target.id] = text
    return found


def _prune(root: Schema, defs: Schema) -> None:
    """Drop definitions nothing refers to (a model a field reads in another shape, e.g.
    a rule's ``for: 3`` for its Hold)."""
    text = json.dumps(root)
    used: set[str] = set()
    while found := {name for name in defs if f'"#/$defs/{name}"' in text} - used:
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
