"""The editors' copy of the config's JSON Schema, and walking it for the reference.

``python -m tools.docgen.config_schema [-o FILE]`` prints or writes the schema
(``elvwatch.config.json_schema``); the committed copy is ``docs/config.schema.json``,
which ``tests/test_docs.py`` keeps current.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from elvwatch.config.json_schema import Schema, json_schema, schema_text
from tools.docgen import output

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "config.schema.json"

__all__ = ["COMMITTED", "Schema", "definitions", "json_schema", "schema_text"]


def definitions(schema: Schema) -> Iterator[tuple[str, Schema]]:
    """Every object schema with properties: the root (``""``) and each ``$defs`` entry."""
    yield "", schema
    for name, sub in schema.get("$defs", {}).items():
        if isinstance(sub, dict) and "properties" in sub:
            yield name, sub


def main(argv: list[str] | None = None) -> int:
    args = output.parser("python -m tools.docgen.config_schema",
                         "write the config's JSON Schema").parse_args(argv)
    return output.emit(schema_text(), args.output)


if __name__ == "__main__":
    raise SystemExit(main())
