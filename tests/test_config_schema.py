"""``elvwatch config schema``: the JSON Schema editors validate a config file with
(``# yaml-language-server: $schema=…``) accepts what the loader accepts and refuses an
unknown key or a wrong type at the same place the loader names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from elvwatch.config.loading import ConfigInvalid, load_config

ROOT = Path(__file__).resolve().parent.parent


class EditorLoader(yaml.SafeLoader):
    """YAML as an editor's language server reads it: dates stay text."""


EditorLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def printed_schema() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "elvwatch.cli", "config", "schema"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    schema: dict[str, Any] = json.loads(done.stdout)
    return schema


def problems(schema: dict[str, Any], document: object) -> list[tuple[list[object], str]]:
    validator = jsonschema.Draft202012Validator(schema)
    return [(list(e.absolute_path), e.message) for e in validator.iter_errors(document)]


def test_the_printed_schema_accepts_the_example_config() -> None:
    schema = printed_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "elvwatch configuration"
    example = yaml.load((ROOT / "config.example.yaml").read_text(encoding="utf-8"),
                        Loader=EditorLoader)
    assert problems(schema, example) == []


def test_the_schema_refuses_an_unknown_key_and_a_wrong_type_where_the_loader_does(
        tmp_path: Path) -> None:
    config = {"sites": [{"id": "s1", "name": "一号小区"}],
              "devices": [{"id": "cam-1", "site": "s1", "kind": "camera", "host": "10.0.0.5",
                           "colour": "red"}],
              "scheduler": {"down_after": "three"},
              "tickets": {"reopen_window": "7d"}}
    found = problems(printed_schema(), config)
    assert sorted(str(path) for path, _ in found) == \
        sorted([str(["devices", 0]), str(["scheduler", "down_after"])])
    assert any("'colour' was unexpected" in message for _, message in found)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as refused:
        load_config(path)
    assert sorted(e.key for e in refused.value.errors) == \
        ["devices[0].colour", "scheduler.down_after"]
