"""Tables and progress for the command line: rich on a terminal, plain text off one.

On a terminal (the stream's ``isatty()``) tables are drawn by rich — a bold header rule,
numbers right-aligned, states in colour, CJK text aligned by its display width — and
long operations show a progress bar.  Anywhere else (a pipe, a file, a cron mail)
tables are plain text that scripts and ``grep`` can rely on: one line per row, no ANSI
codes and no box characters, columns separated by two spaces and padded to the display
width (a CJK character takes two columns), trailing spaces removed, a table's title
(if it has one) on its own line as ``== TITLE``; progress is silent.

Cells are text, never markup: device-reported strings go through ``rich.text.Text``
(``[bold]`` stays literal) and control characters (ESC, CR, LF, ...) become spaces in
both forms, so a device cannot move the cursor, recolour the terminal or break a line.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # rich loads when something is drawn on a terminal, not for a pipe
    from rich.console import Console
    from rich.progress import Progress as Bars
    from rich.progress import TaskID
    from rich.table import Table as RichTable

Counter = Callable[[int, int], None]   # (done, total) of one stage of work

# Faults stand out; "ok"/"up" are quiet.
STATE_STYLES = {"down": "bold red", "degraded": "yellow", "unknown": "dim",
                "up": "green", "ok": "green", "open": "bold", "breached": "bold red"}
_CONTROL = {c: " " for c in (*range(0x20), *range(0x7F, 0xA0))}


@dataclass(frozen=True, slots=True)
class Styled:
    """A cell drawn in a rich style on a terminal (plain text elsewhere)."""

    text: str
    style: str = ""


Cell = str | Styled


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    title: str = ""
    right: frozenset[int] = field(default_factory=frozenset)   # right-aligned columns
    note: str = ""          # a line under the table (definitions, totals)


def table(columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, title: str = "",
          right: Sequence[int] = (), note: str = "") -> Table:
    return Table(tuple(columns), tuple(tuple(r) for r in rows), title, frozenset(right),
                 note)


def state(text: str) -> Styled:
    """A state word (down, degraded, ok, ...) in its colour."""
    return Styled(text, STATE_STYLES.get(text, ""))


def clean(text: object) -> str:
    return str(text).translate(_CONTROL)


def _text(cell: Cell) -> str:
    return clean(cell.text if isinstance(cell, Styled) else cell)


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):   # closed or not a real stream
        return False


def width(text: str) -> int:
    """Terminal columns of ``text``: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    """``text`` left-aligned in ``columns`` terminal columns."""
    return text + " " * max(0, columns - width(text))


def plain(t: Table) -> str:
    """The table as plain, stable text (see the module docstring)."""
    rows = [list(t.columns), *([_text(c) for c in row] for row in t.rows)]
    widths = [max(width(r[i]) for r in rows) for i in range(len(t.columns))]
    lines = [f"== {clean(t.title)}"] if t.title else []
    for row in rows:
        lines.append("  ".join(pad(cell, w) for cell, w in zip(row, widths, strict=True))
                     .rstrip())
    if t.note:
        lines.append(clean(t.note))
    return "\n".join(lines) + "\n"


def write(tables: Sequence[Table], stream: IO[str] | None = None, *,
          rich: bool | None = None) -> None:
    """Print ``tables`` (a blank line between them) to ``stream`` (stdout): rich when
    ``rich`` is True or, if None, when the stream is a terminal; plain text otherwise."""
    out = sys.stdout if stream is None else stream
    if not (is_terminal(out) if rich is None else rich):
        out.write("\n".join(plain(t) for t in tables))
        out.flush()
        return
    from rich.text import Text

    console = _console(out, force=rich is True)
    for index, t in enumerate(tables):
        if index:
            console.print()
        console.print(_rich_table(t))
        if t.note:
            console.print(Text(clean(t.note), style="dim"))


def lines(texts: Sequence[Cell], stream: IO[str] | None = None, *,
          rich: bool | None = None) -> None:
    """Print free lines (a heading, a notice) the same way: styled on a terminal."""
    out = sys.stdout if stream is None else stream
    if not (is_terminal(out) if rich is None else rich):
        out.write("".join(_text(t) + "\n" for t in texts))
        out.flush()
        return
    from rich.text import Text

    console = _console(out, force=rich is True)
    for t in texts:
        console.print(Text(_text(t), style=t.style if isinstance(t, Styled) else ""))


def _console(out: IO[str], *, force: bool) -> Console:
    from rich.console import Console

    # No markup, emoji codes or number highlighting: cells are data, drawn as given.
    return Console(file=out, force_terminal=True if force else None, markup=False,
                   emoji=False, highlight=False)


def _rich_table(t: Table) -> RichTable:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    grid = RichTable(title=clean(t.title) or None, title_justify="left",
                     title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                     header_style="bold")
    for index, column in enumerate(t.columns):
        grid.add_column(column, justify="right" if index in t.right else "left",
                        overflow="fold")
    for row in t.rows:
        grid.add_row(*(Text(_text(c), style=c.style if isinstance(c, Styled) else "")
                       for c in row))
    return grid


class Progress:
    """Progress bars on stderr while a long operation runs, one per stage.

    ``with Progress() as progress: work(progress=progress.counter("devices"))``.  The
    counters take ``(done, total)``; on a terminal each draws a rich bar, elsewhere they
    only remember the last count (``progress.counts``) and print nothing.
    """

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self.counts: dict[str, tuple[int, int]] = {}
        self._bars: Bars | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bars

            console = Console(file=self.stream, force_terminal=True, markup=False,
                              highlight=False)
            # stdout is the report itself: the bar must not capture or wrap it.
            bars = Bars(TextColumn("{task.description}", markup=False), BarColumn(),
                        MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                        redirect_stdout=False, redirect_stderr=False)
            bars.start()
            self._bars = bars
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def counter(self, label: str) -> Counter:
        def count(done: int, total: int) -> None:
            self.counts[label] = (done, total)
            bars = self._bars
            if bars is None:
                return
            if label not in self._tasks:
                self._tasks[label] = bars.add_task(clean(label), total=total)
            bars.update(self._tasks[label], completed=done, total=total)
        return count
