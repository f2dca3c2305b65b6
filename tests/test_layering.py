"""Data flows one way (DESIGN.md): every import of every module — at the top, inside a
function, under ``TYPE_CHECKING`` — goes to its own room or a room below it, and no
modules import each other round in a circle.

The rooms, each a top-level folder installed as ``elvwatch.<room>``::

                        cli
                     ↙   ↓   ↘
               daemon    ↓    web        (daemon never imports web, web never daemon:
                     ↘   ↓   ↙            web reads the running daemon through its
                       config             view Protocol; cli composes the two)
                         ↓
      exporters → tickets → rules → probes        (the stages)

``lab`` (simulated devices) is imported by the demo alone, never on the way of
``elvwatch run``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_daemon import free_port

ROOT = Path(__file__).resolve().parent.parent

# Room → the rooms it may import (besides itself).
STAGES = ("probes", "rules", "tickets", "exporters")
ALLOWED: dict[str, set[str]] = {
    "probes": set(),
    "rules": {"probes"},
    "tickets": {"probes", "rules"},
    "exporters": {"probes", "rules", "tickets"},
    "config": set(STAGES),
    "daemon": {"config", *STAGES},
    "web": {"config", *STAGES},
    "cli": {"daemon", "web", "config", "lab", *STAGES},
    "lab": {"probes"},
}


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    line: int
    eager: bool  # run when the module is imported (not in a function, not TYPE_CHECKING)


def folders() -> dict[str, Path]:
    """Installed package name → its folder, from pyproject.toml's mapping."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items() if name != "elvwatch"}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in folders().items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if "migrations" in parts:
                continue  # run by Alembic, not imported by the program
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def arrows(name: str, path: Path, known: set[str]) -> Iterator[Arrow]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    lazy: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lazy.update(id(n) for n in ast.walk(node) if n is not node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lazy.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for target in targets:
            if target.split(".")[0] in {"elvwatch", *(n.split(".")[1] for n in folders())}:
                yield Arrow(name, target, node.lineno, id(node) not in lazy)


def graph() -> list[Arrow]:
    found = modules()
    return [a for name, path in found.items() for a in arrows(name, path, set(found))]


def room(module: str) -> str:
    return module.split(".")[1] if module.startswith("elvwatch.") else module.split(".")[0]


def test_every_import_names_the_installed_namespace() -> None:
    # A bare ``import probes…`` would load a second copy of the module from the
    # checkout's folder (and fail once installed).
    bare = [f"{a.source}:{a.line} imports {a.target}" for a in graph()
            if not a.target.startswith("elvwatch.")]
    assert bare == []


def test_every_import_goes_to_its_own_room_or_one_below() -> None:
    wrong = [f"{a.source}:{a.line} imports {a.target}" for a in graph()
             if room(a.target) != room(a.source)
             and room(a.target) not in ALLOWED[room(a.source)]]
    assert wrong == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges: dict[str, set[str]] = {}
    for a in graph():
        if a.target != a.source:
            edges.setdefault(a.source, set()).add(a.target)
    circles = strongly_connected(edges)
    assert circles == []


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that reach each other (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_the_circle_finder_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert strongly_connected(edges) == [["a", "b", "c"]]


def test_web_reads_the_daemon_through_its_view_and_daemon_never_imports_web() -> None:
    crossing = [f"{a.source}:{a.line} imports {a.target}" for a in graph()
                if {room(a.source), room(a.target)} == {"daemon", "web"}]
    assert crossing == []


def test_only_the_demo_imports_lab_and_elvwatch_run_never_reaches_it() -> None:
    found = graph()
    users = {a.source for a in found if room(a.target) == "lab" and room(a.source) != "lab"}
    assert users == {"elvwatch.cli.demo"}
    # What ``elvwatch run`` loads: the command line's modules as imported, then
    # everything the run command and the daemon it starts import, lazily or not.
    eager: dict[str, set[str]] = {}
    every: dict[str, set[str]] = {}
    for a in found:
        every.setdefault(a.source, set()).add(a.target)
        if a.eager:
            eager.setdefault(a.source, set()).add(a.target)
    loaded = reach({"elvwatch.cli.main"}, eager)
    loaded = reach(loaded | {"elvwatch.cli.run"}, every, skip={"elvwatch.cli.main"})
    assert not [m for m in loaded if room(m) == "lab"]


def reach(start: set[str], edges: dict[str, set[str]], skip: set[str] = frozenset()
          ) -> set[str]:
    seen, todo = set(start), [m for m in start if m not in skip]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.slow
def test_a_running_daemon_has_no_lab_module_loaded(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    port = free_port()
    config.write_text(f"http:\n  listen: 127.0.0.1:{port}\n"
                      "sites: [{id: s1, name: s1}]\n"
                      "devices: [{id: d1, site: s1, kind: switch, host: 127.0.0.1,\n"
                      "           checks: [{type: tcp, port: 1}]}]\n", encoding="utf-8")
    script = (
        "import os, signal, sys, threading, time, urllib.request\n"
        "from elvwatch.cli.main import main\n"
        # Stopped once it serves /metrics (running, its checks scheduled), not after a
        # fixed time a loaded host may not be ready in; bounded at 45 s either way.
        "def stop():\n"
        "    deadline = time.monotonic() + 45\n"
        "    while time.monotonic() < deadline:\n"
        "        try:\n"
        f"            urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=2)\n"
        "            break\n"
        "        except OSError:\n"
        "            time.sleep(0.1)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=stop, daemon=True).start()\n"
        f"code = main(['--log-level', 'warning', 'run', '-c', {str(config)!r}])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith('elvwatch.lab')))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.stdout.split(maxsplit=1) == ["0", "[]\n"], done.stderr
