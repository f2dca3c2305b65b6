"""The poller's buffer: observations waiting for the centre, in a SQLite file, oldest
first, bounded.

sqlite3 from the standard library, not the store's SQLAlchemy: this is one append-only
queue on the poller's own disk, with no schema history to migrate and no second
database to support, and every call runs on one worker thread that owns the
connection.  Each row's number (its ``seq``) is the observation's sequence number for
the centre; AUTOINCREMENT never hands out a number twice, and a new file starts at the
current time in microseconds, so a buffer lost with its disk does not start again below
what the centre has already applied.

Full, it drops the oldest observations (the newest say what the devices are now) and
says so: a log line with how many and from when to when, and a counter in /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dropped:
    count: int
    first_time: float
    last_time: float


class PollerBuffer:
    """Open with ``await PollerBuffer.open(path, limit)``; every method runs on the
    buffer's own thread, in call order."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.dropped = 0
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poller-buffer")

    @classmethod
    async def open(cls, path: Path, limit: int) -> PollerBuffer:
        buffer = cls(path, limit)
        await buffer._run(buffer._open)
        return buffer

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: a power cut loses at most the last commit
        db.execute("CREATE TABLE IF NOT EXISTS observations ("
                   "seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, body TEXT NOT NULL)")
        if db.execute("SELECT count(*) FROM sqlite_sequence WHERE name='observations'"
                      ).fetchone()[0] == 0:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('observations', ?)",
                       (int(time.time() * 1_000_000),))
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    async def append(self, items: list[tuple[float, dict[str, object]]]) -> Dropped | None:
        """Add (time, observation) in order; what had to go to make room, if anything."""
        return await self._run(self._append, items)  # type: ignore[no-any-return]

    def _append(self, items: list[tuple[float, dict[str, object]]]) -> Dropped | None:
        db = self._connection()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO observations (at, body) VALUES (?, ?)",
                           [(at, json.dumps(body, ensure_ascii=False)) for at, body in items])
            over = db.execute("SELECT count(*) FROM observations").fetchone()[0] - self.limit
            if over <= 0:
                return None
            first, last, cut = db.execute(
                "SELECT min(at), max(at), max(seq) FROM (SELECT at, seq FROM observations "
                "ORDER BY seq LIMIT ?)", (over,)).fetchone()
            db.execute("DELETE FROM observations WHERE seq <= ?", (cut,))
        self.dropped += over
        return Dropped(over, first, last)

    async def head(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest ``limit`` observations with their numbers."""
        return await self._run(self._head, limit)  # type: ignore[no-any-return]

    def _head(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        rows = self._connection().execute(
            "SELECT seq, body FROM observations ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, json.loads(body)) for seq, body in rows]

    async def remove_through(self, seq: int) -> None:
        """Forget what the centre has taken: every observation numbered up to ``seq``."""
        await self._run(self._remove_through, seq)

    def _remove_through(self, seq: int) -> None:
        self._connection().execute("DELETE FROM observations WHERE seq <= ?", (seq,))

    async def count(self) -> int:
        return await self._run(self._count)  # type: ignore[no-any-return]

    def _count(self) -> int:
        return int(self._connection().execute("SELECT count(*) FROM observations").fetchone()[0])

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the poller buffer is closed")
        return self._db


def describe(dropped: Dropped, limit: int) -> str:
    """The log line for observations dropped to make room."""
    def stamp(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    return (f"poller buffer full ({limit} observations): dropped the oldest {dropped.count}, "
            f"made from {stamp(dropped.first_time)} to {stamp(dropped.last_time)}; the centre "
            "will not see them (raise poller.buffer.max_observations for longer outages)")
