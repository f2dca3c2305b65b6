"""The files the docs build generates into ``docs/`` (git ignores them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tools.docgen import cli_reference, config_reference, rules_list

GENERATED: dict[str, Callable[[], str]] = {
    "reference/configuration.md": config_reference.render,
    "reference/builtin-rules.md": rules_list.render,
    "reference/cli.md": cli_reference.markdown,
    "elvwatch.1": cli_reference.manpage,
}


def write(docs_dir: Path) -> list[Path]:
    """Write every generated file under ``docs_dir``; a file whose content is already
    right is left alone (``mkdocs serve`` would rebuild on every touch)."""
    written = []
    for uri, render in GENERATED.items():
        path = docs_dir / uri
        content = render()
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
