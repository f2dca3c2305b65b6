"""The documentation stays true to the code: every config key documented, the editors'
schema current and as strict as the loader, the example config within the schema, every
built-in rule and every command listed, the README short and its links alive."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.rules.model import load_builtin_configs
from tools.docgen import cli_reference, config_reference, rules_list
from tools.docgen.config_schema import COMMITTED, definitions, json_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "config.example.yaml"
# The pages NOC staff, engineers and the site's representative read, in both languages.
BILINGUAL = ["index", "getting-started", "tickets", "notifications", "pages", "reports"]


class _YamlAsEditors(yaml.SafeLoader):
    """YAML as the YAML language server reads it for the schema: dates stay strings."""


_YamlAsEditors.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _as_editors_read(text: str) -> Any:
    return yaml.load(text, Loader=_YamlAsEditors)  # a SafeLoader subclass


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _sections(page: str) -> dict[str, list[str]]:
    """anchor → the keys in that section's table."""
    out: dict[str, list[str]] = {}
    current = None
    for line in page.splitlines():
        heading = re.match(r"^## .*\{#([a-z0-9-]+)\}$", line)
        if heading:
            current = out.setdefault(heading.group(1), [])
        elif current is not None and (row := re.match(r"^\| `([^`]+)` \|", line)):
            current.append(row.group(1))
    return out


def test_the_published_schema_is_what_elvwatch_config_schema_prints() -> None:
    printed = subprocess.run([sys.executable, "-m", "elvwatch.cli", "config", "schema"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT,
                             check=True).stdout
    assert printed == schema_text()
    assert COMMITTED.read_text(encoding="utf-8") == printed, (
        "docs/config.schema.json is stale: python3 -m tools.docgen.config_schema "
        "-o docs/config.schema.json")


def test_config_example_points_editors_at_the_published_schema() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=docs/config.schema.json"
    assert (EXAMPLE.parent / "docs" / "config.schema.json").is_file()


def test_every_key_of_the_schema_is_in_the_configuration_reference(
        schema: dict[str, Any]) -> None:
    sections = _sections(config_reference.render(schema))
    missing = []
    for name, node in definitions(schema):
        rows = sections.get(config_reference.anchor(name))
        if rows is None:
            missing.append(f"{name or 'top level'}: no section")
            continue
        missing += [f"{name or 'top level'}.{key}" for key in node["properties"]
                    if key not in rows]
    assert missing == []
    # The top level and the per-type params are there, not just any table.
    assert {"storage", "devices", "notify"} <= set(sections["top-level"])
    assert {"version", "profiles", "max_rows"} <= set(sections["snmpoptions"])


def _resolve(node: Any, schema: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _unknown_keys(value: Any, node: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Keys of ``value`` the schema ``node`` does not name, with where they are; a map
    the schema leaves free (a check's params without a model) names none."""
    node = _resolve(node, schema)
    if not isinstance(node, dict):
        return []
    for union in ("anyOf", "oneOf"):
        if union in node:
            tries = [_unknown_keys(value, b, schema, path) for b in node[union]
                     if _kind_fits(value, _resolve(b, schema))]
            return min(tries, key=len) if tries else []
    if isinstance(value, list):
        return [k for i, item in enumerate(value)
                for k in _unknown_keys(item, node.get("items"), schema, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    props = dict(node.get("properties", {}))
    for branch in node.get("allOf", []):  # a check's params, chosen by its type
        if all(value.get(k) == v.get("const") for k, v in branch["if"]["properties"].items()):
            props.update(branch["then"]["properties"])
    found: list[str] = []
    for key, sub in value.items():
        where = f"{path}.{key}".lstrip(".")
        patterns = [s for p, s in node.get("patternProperties", {}).items()
                    if re.search(p, str(key))]
        extra = node.get("additionalProperties")
        if key in props:
            found += _unknown_keys(sub, props[key], schema, where)
        elif patterns:
            found += _unknown_keys(sub, patterns[0], schema, where)
        elif isinstance(extra, dict):
            found += _unknown_keys(sub, extra, schema, where)
        elif extra is False or props or "patternProperties" in node:
            found.append(where)
    return found


def _kind_fits(value: Any, node: Any) -> bool:
    kind = node.get("type") if isinstance(node, dict) else None
    return (kind is None or (kind == "object") == isinstance(value, dict)) and \
        (kind != "array" or isinstance(value, list)) and (kind != "null" or value is None)


def test_every_key_config_example_uses_exists_in_the_schema(schema: dict[str, Any]) -> None:
    example = _as_editors_read(EXAMPLE.read_text(encoding="utf-8"))
    assert _unknown_keys(example, schema, schema, "") == []
    # and the walk does find a key the schema does not know, wherever it is
    example["devices"].append({"id": "x", "site": "s", "kind": "switch", "host": "h",
                               "checks": [{"type": "snmp", "params": {"verison": "2c"}}]})
    example["http"]["colour"] = "red"
    unknown = _unknown_keys(example, schema, schema, "")
    assert "http.colour" in unknown
    assert any(u.endswith(".params.verison") for u in unknown)


@pytest.mark.parametrize(("text", "where"), [
    ("storage: {colour: red}", "storage"),
    ("devices: [{id: d, site: s, kind: camera, host: h,\n"
     "           checks: [{type: snmp, params: {verison: 2c}}]}]", "devices.0.checks.0.params"),
    ("devices: [{id: d, site: s, kind: camera, host: h,\n"
     "           checks: [{type: pigeon}]}]", "devices.0.checks.0.type"),
    ("sources: {mqtt: {brokers: {b: {host: h, prot: 1}}}}", "sources.mqtt.brokers.b"),
    ("credentials: {'bad name': {username: u}}", "credentials"),
    ("notify: {receivers: {x: {type: email, options: {hots: h}}}}", "notify.receivers.x"),
])
def test_the_schema_refuses_what_the_loader_refuses(
        tmp_path: Path, validator: jsonschema.Draft202012Validator, text: str,
        where: str) -> None:
    errors = list(validator.iter_errors(_as_editors_read(text)))
    assert errors, f"the schema accepts {text!r}"
    assert any(".".join(map(str, e.absolute_path)).startswith(where) or
               any(".".join(map(str, s.absolute_path)).startswith(where)
                   for s in e.context or []) for e in errors), [e.message for e in errors]
    config = tmp_path / "config.yaml"
    config.write_text(f"sites: [{{id: s, name: S}}]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid):
        load_config(config, environ={})


@pytest.mark.parametrize("text", [
    "rules: [{id: r, name_zh: 规则, name_en: Rule, condition: 'state == \"down\"', for: 5m, "
    "clear: 3, match: {system: cctv}}]",
    "tickets: {reopen_window: 7d}",
    "silences: [{matchers: {site: s}, who: 王工, why: 保养, until: '2030-01-01T00:00:00Z'}]",
    "devices: [{id: d, site: s, kind: camera, host: h, location: 1栋大堂,\n"
    "           checks: [{type: snmp, params: {version: 3, profiles: 'system,if'}}]}]",
])
def test_the_schema_accepts_the_short_forms_the_loader_accepts(
        tmp_path: Path, validator: jsonschema.Draft202012Validator, text: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"sites: [{{id: s, name: S}}]\n{text}\n", encoding="utf-8")
    load_config(config, environ={})
    errors = [e.message for e in validator.iter_errors(_as_editors_read(config.read_text()))]
    assert errors == []


def test_the_built_in_rules_page_lists_every_rule_the_daemon_loads() -> None:
    page = rules_list.render()
    loaded = [rule.id for rule in load_builtin_configs()]
    listed = re.findall(r"^\| `([a-z0-9_]+)`<br>", page, flags=re.M)
    assert listed == loaded
    assert f"The {len(loaded)} rules elvwatch ships" in page
    assert "| `device_unreachable`<br>设备离线<br>Device unreachable | general |" in page


def test_the_command_line_reference_has_every_command() -> None:
    page = cli_reference.markdown()
    names = [name for name, _ in cli_reference.commands(cli_reference.parser())]
    assert {"elvwatch", "elvwatch run", "elvwatch tickets list", "elvwatch report",
            "elvwatch devices import", "elvwatch silence add"} <= set(names)
    for name in names:
        assert f"## `{name}`\n\n```text\nusage: {name}" in page


def test_the_man_page_renders_cleanly_with_every_command_and_option(tmp_path: Path) -> None:
    page = tmp_path / "elvwatch.1"
    page.write_text(cli_reference.manpage(version="0.0-test"), encoding="ascii")
    lint = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert lint.stderr == ""
    # Long lines and no hyphenation: every option is on the page in one piece.
    shown = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=400n", "-rHY=0",
                            str(page)], capture_output=True, text=True, timeout=60,
                           check=True).stdout
    flat = " ".join(shown.split())
    assert "EXIT STATUS" in flat and "ELVWATCH_ONVIF_PASSWORD" in flat
    for name, cmd in cli_reference.commands(cli_reference.parser()):
        assert f"'{name}'" in flat or name == "elvwatch"
        for action in cmd._actions:
            if isinstance(action, argparse._HelpAction):
                continue  # every command has -h; the man page is where the help is
            for option in action.option_strings:
                assert option in flat, f"{name} {option}"
    assert "CSV/XLSX spreadsheet → inventory YAML" in flat


def test_the_readme_is_short_and_its_links_lead_to_files() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "pip install -e '.[demo]' && elvwatch demo" in text
    assert "bash .ci/run" in text
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    broken = [link for link in links if not link.startswith("http")
              and not (ROOT / link).exists()]
    assert broken == []


def test_the_pages_people_read_are_in_chinese_too() -> None:
    for name in BILINGUAL:
        assert (DOCS / f"{name}.md").is_file(), name
        assert (DOCS / f"{name}.zh-CN.md").is_file(), f"{name}.zh-CN.md is missing"
    for page in DOCS.rglob("*.zh-CN.md"):
        assert page.with_name(page.name.replace(".zh-CN.md", ".md")).is_file()


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)


@pytest.mark.parametrize("name", BILINGUAL)
def test_a_chinese_page_carries_the_same_commands_and_examples_as_the_english(
        name: str) -> None:
    english = _code_blocks((DOCS / f"{name}.md").read_text(encoding="utf-8"))
    chinese = _code_blocks((DOCS / f"{name}.zh-CN.md").read_text(encoding="utf-8"))
    assert chinese == english


def test_the_schema_lists_every_check_type_and_push_source(schema: dict[str, Any]) -> None:
    from elvwatch.probes.registry import PUSH, known_types

    check = schema["$defs"]["CheckConfig"]
    assert check["properties"]["type"]["enum"] == known_types()
    assert set(schema["properties"]["sources"]["properties"]) == set(PUSH)


def test_every_key_of_the_schema_says_what_it_is(schema: dict[str, Any]) -> None:
    """A key's description is the comment above its field in the model: a new key
    without one fails here, naming the model."""
    undescribed = [f"{name or 'ConfigModel'}.{key}" for name, node in definitions(schema)
                   for key, prop in node["properties"].items() if not prop.get("description")]
    assert undescribed == []
    http = schema["$defs"]["HttpConfig"]["properties"]
    assert http["loopback_reads"]["description"].startswith("Reads from loopback need no token.")
