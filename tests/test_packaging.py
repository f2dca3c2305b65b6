"""The one namespace: every package of the checkout is installed under ``elvwatch.``
(pyproject.toml's package-dir mapping), and elvwatch/ links each mapped folder so the
tools that read the source tree see the installed names."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setuptools_table() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table = tomllib.load(f)["tool"]["setuptools"]
    assert isinstance(table, dict)
    return table


def test_every_package_folder_is_installed_under_elvwatch() -> None:
    table = setuptools_table()
    mapping = table["package-dir"]
    assert isinstance(mapping, dict)
    listed = set(table["packages"])
    found = {"elvwatch"}
    for name, folder in mapping.items():
        if name == "elvwatch":
            continue
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            inner = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *inner)))
    assert found == listed, f"packages not listed: {sorted(found - listed)}; " \
                            f"listed without a folder: {sorted(listed - found)}"


def test_elvwatch_folder_links_every_mapped_folder() -> None:
    mapping = setuptools_table()["package-dir"]
    assert isinstance(mapping, dict)
    for name, folder in mapping.items():
        if name == "elvwatch":
            continue
        link = ROOT / "elvwatch" / name.removeprefix("elvwatch.")
        assert link.is_symlink(), f"elvwatch/{link.name} is not a link to {folder}/"
        assert link.resolve() == (ROOT / folder).resolve()
    links = {p.name for p in (ROOT / "elvwatch").iterdir() if p.is_symlink()}
    mapped = {n.removeprefix("elvwatch.") for n in mapping if n != "elvwatch"}
    assert links == mapped
