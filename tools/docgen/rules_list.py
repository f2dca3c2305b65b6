"""The page listing every built-in rule, rendered from ``rules/builtin/*.yaml``.

Each file is one system (its first comment line says which); each rule is read with the
rule model the daemon uses (:class:`rules.model.RuleConfig`), so a rule file the daemon
would refuse fails the docs build too.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

import yaml

from elvwatch.rules.model import Hold, RuleConfig


def rule_files() -> list[Traversable]:
    folder = resources.files("elvwatch.rules").joinpath("builtin")
    return sorted((e for e in folder.iterdir() if e.name.endswith(".yaml")),
                  key=lambda e: e.name)


def _title(text: str, fallback: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if first.startswith("#"):
        return first.lstrip("#").strip().rstrip(".")
    return fallback


def _hold(hold: Hold) -> str:
    if hold.seconds is not None:
        return f"{hold.seconds:g} s"
    polls = hold.polls or 1
    return f"{polls} poll" if polls == 1 else f"{polls} polls"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _match(rule: RuleConfig) -> str:
    parts = [f"{key}: {', '.join(values)}"
             for key, values in rule.match.model_dump().items() if values]
    return _cell("; ".join(parts)) if parts else "every device"


def builtin_rules() -> list[tuple[str, str, list[RuleConfig]]]:
    """(file name, its title, its rules) for each built-in rule file."""
    out = []
    for entry in rule_files():
        text = entry.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or []
        rules = [RuleConfig.model_validate(item) for item in raw]
        out.append((entry.name, _title(text, entry.name), rules))
    return out


def render() -> str:
    groups = builtin_rules()
    count = sum(len(rules) for _, _, rules in groups)
    lines = [
        "# Built-in rules",
        "",
        f"The {count} rules elvwatch ships, generated from `rules/builtin/*.yaml` when the",
        "docs are built. A site rule with the same `id` under `rules:` in the config",
        "replaces one (`enabled: false` switches it off); see [Rule engine](../rules.md)",
        "and [Rules in detail](../rules-language.md) for the condition language and every",
        "value name.",
        "",
        "*for* is how long the condition must hold before the fault fires, *clear* how",
        "long it must be false before it clears (polls of the check that reports the",
        "value, or a duration). *cause* / *explains* place the fault in the topology: a",
        "firing fault explains its children's faults of the causes it lists.",
        "",
    ]
    for name, title, rules in groups:
        lines += [f"## {title}", "", f"`rules/builtin/{name}`", "",
                  "| rule | severity | applies to | condition | for / clear | topology | "
                  "what it means |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for rule in rules:
            topology = "; ".join(
                p for p in (f"cause {rule.cause}" if rule.cause else "",
                            f"explains {', '.join(rule.explains)}" if rule.explains else "")
                if p)
            lines.append(
                f"| `{rule.id}`<br>{_cell(rule.name_zh)}<br>{_cell(rule.name_en)} | "
                f"{rule.severity.value} | {_match(rule)} | `{_cell(rule.condition)}` | "
                f"{_hold(rule.for_)} / {_hold(rule.clear)} | {topology} | "
                f"{_cell(rule.description)} |")
        lines.append("")
    return "\n".join(lines)
