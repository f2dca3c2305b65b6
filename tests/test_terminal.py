"""Command-line output: rich tables and progress bars on a terminal, plain text elsewhere.

The terminal cases run the real command with its stdout and stderr on a pseudo-terminal
(what an engineer's ssh session gives it); the pipe cases run it as a script would.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from rich.cells import cell_len

from elvwatch.exporters import terminal
from tests.test_reports import SITE, config  # noqa: F401  (the seeded store fixture)

ROOT = Path(__file__).parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile(r"[─━│┃┌┐└┘├┤┬┴┼╸╺]")
CHINESE_ROWS = [["cam-a", "北门摄像机", "1栋 / 1F / 北门", "down"],
                ["sw-01", "弱电间交换机", "B1", "up"],
                ["[bold]x[/bold]", "\x1b[31mred\x1b[0m\nline", "", "degraded"]]


def chinese_table() -> terminal.Table:
    return terminal.table(["DEVICE", "名称", "位置", "STATE"],
                          [[*r[:3], terminal.state(r[3])] for r in CHINESE_ROWS],
                          title="设备 · 湖畔花园")


def column_starts(line: str, cells: list[str]) -> list[int]:
    """Display column where each of ``cells`` starts in ``line``."""
    starts, at = [], 0
    for cell in cells:
        index = line.index(cell, at)
        starts.append(cell_len(line[:index]))
        at = index + len(cell)
    return starts


def test_plain_table_is_stable_text_with_chinese_aligned_and_device_text_inert() -> None:
    text = terminal.plain(chinese_table())
    assert not ANSI.search(text) and not BOX.search(text)
    lines = text.splitlines()
    assert lines[0] == "== 设备 · 湖畔花园"
    assert lines[1].split() == ["DEVICE", "名称", "位置", "STATE"]
    # Columns start at the same display column in every row, CJK counted double.
    starts = {tuple(column_starts(lines[i], cells)) for i, cells in
              ((2, ["cam-a", "北门摄像机", "1栋", "down"]),
               (3, ["sw-01", "弱电间交换机", "B1", "up"]))}
    assert len(starts) == 1
    # Markup stays literal, ESC and the line break become spaces: one line per row.
    assert lines[4].startswith("[bold]x[/bold]  ") and " [31mred [0m line" in lines[4]
    assert len(lines) == 5 and all(line == line.rstrip() for line in lines)


def test_rich_table_aligns_chinese_by_display_width_and_draws_markup_as_text() -> None:
    out = io.StringIO()
    terminal.write([chinese_table()], out, rich=True)
    drawn = out.getvalue()
    assert "\x1b[" in drawn and "─" in drawn           # styled, with a header rule
    lines = ANSI.sub("", drawn).splitlines()
    assert lines[0].strip() == "设备 · 湖畔花园"
    body = lines[1:]
    assert len({cell_len(line) for line in body}) == 1, body
    assert len({tuple(column_starts(line, cells)) for line, cells in (
        (body[2], ["cam-a", "北门摄像机", "1栋", "down"]),
        (body[3], ["sw-01", "弱电间交换机", "B1", "up"]))}) == 1
    assert "[bold]x[/bold]" in lines[5] and "\x1b[31mred" not in drawn
    assert "\x1b[1;31mdown" in drawn                    # the state's colour


def test_progress_draws_a_bar_on_a_terminal_and_is_silent_elsewhere() -> None:
    shown = io.StringIO()
    with terminal.Progress(shown, enabled=True) as bars:
        count = bars.counter("inventory[/x].xlsx")          # a file name, not markup
        for done in range(1, 10):
            count(done, 9)
    assert "inventory[/x].xlsx" in shown.getvalue() and "9/9" in shown.getvalue()
    quiet = io.StringIO()                                  # not a terminal
    with terminal.Progress(quiet) as bars:
        assert not bars.enabled
        count = bars.counter("devices")
        for done in range(1, 10):
            count(done, 9)
    assert quiet.getvalue() == "" and bars.counts == {"devices": (9, 9)}


def run_on_terminal(*args: str, columns: int = 150) -> tuple[int, str]:
    """The CLI with stdout and stderr on a pseudo-terminal ``columns`` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "elvwatch.cli", "--log-level", "warning",
                             *args], stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower, cwd=ROOT,
                            env={**env, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)})
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:           # the child closed its side
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


def run_in_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elvwatch.cli", "--log-level", "warning",
                           *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_report_on_a_terminal_is_rich_tables_with_a_progress_bar(config: Path) -> None:  # noqa: F811
    code, drawn = run_on_terminal("report", "availability", "-c", str(config), "--site", SITE,
                                  "--from", "2026-01-15", "--to", "2026-03-10")
    assert code == 0, drawn
    text = ANSI.sub("", drawn.replace("\r\n", "\n"))
    assert "9/9" in text and "━" in text                 # the bar reached every device
    assert "设备运行情况记录 · 湖畔花园 (lakeside) · 2026-02" in text
    tables = text.split("设备运行情况记录 · 湖畔花园 (lakeside) · ")[1:]
    assert [t.split()[0] for t in tables] == ["2026-01-15..2026-01-31", "2026-02",
                                              "2026-03-01..2026-03-10"]
    for drawn_table in tables:
        rows = [line for line in drawn_table.splitlines()
                if line.startswith((" cam-", " sw-", " gate-"))]
        assert len(rows) == 9
        # Downtime is right-aligned: it ends in one display column whatever Chinese
        # names and locations come before it.
        ends = {cell_len(r[:re.search(r"\d+:\d\d:\d\d", r).end()]) for r in rows}
        assert len(ends) == 1, rows
    feb_a = next(r for r in tables[1].splitlines() if r.startswith(" cam-a "))
    assert feb_a.split()[-4:] == ["99.78", "1:30:00", "1", "0"]


def test_report_in_a_pipe_is_plain_text_and_stderr_stays_empty(config: Path) -> None:  # noqa: F811
    result = run_in_pipe("report", "availability", "-c", str(config), "--site", SITE,
                         "--from", "2026-01-15", "--to", "2026-03-10", "--format", "text")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""                             # no progress off a terminal
    assert not ANSI.search(result.stdout) and not BOX.search(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0] == "== 设备运行情况记录 · 湖畔花园 (lakeside) · 2026-01-15..2026-01-31"
    assert lines[1].split() == ["设备", "名称", "位置", "可用率", "%", "故障时长", "故障次数",
                                "故障工单", "工单"]
    jan_a = next(line for line in lines if line.startswith("cam-a "))
    assert jan_a.split()[-5:] == ["99.26", "3:00:00", "2", "1", "T-2026-000001"]


def test_ticket_list_is_a_rich_table_on_a_terminal_and_plain_in_a_pipe(
        config: Path) -> None:  # noqa: F811
    code, drawn = run_on_terminal("tickets", "list", "-c", str(config))
    assert code == 0, drawn
    text = ANSI.sub("", drawn.replace("\r\n", "\n"))
    rows = [line for line in text.splitlines() if line.startswith(" T-2026-")]
    assert rows and "─" in text
    # Every ticket's RESPOND BY starts in the same column despite Chinese titles.
    due = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
    starts = {cell_len(r[:due.search(r).start()]) for r in rows if "设备离线" in r}
    assert len(starts) == 1 and len(rows) >= 8, rows
    piped = run_in_pipe("tickets", "list", "-c", str(config))
    assert piped.returncode == 0 and not ANSI.search(piped.stdout)
    assert not BOX.search(piped.stdout)
    assert piped.stdout.splitlines()[0].split()[:3] == ["TICKET", "STATE", "SEVERITY"]
