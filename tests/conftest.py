"""Shared fixtures: a real PostgreSQL server started by the suite, and store URLs.

``postgres_url`` (session) runs initdb on a fresh cluster in a temp dir and starts
``postgres`` on a free 127.0.0.1 port, unix sockets in the temp dir, password auth over
TCP.  Binaries come from ``$ELVWATCH_PG_BIN`` or the newest /usr/lib/postgresql/*/bin.
initdb refuses to run as root, so under root the server runs as the ``postgres`` user
(the Debian ``postgresql`` package creates it).

``store_url`` gives each test a fresh database, once on SQLite and once on PostgreSQL.
``PostgresServer`` is the same cluster as a class, for a test that stops and starts
its own server (tests/test_notify_outage.py).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from elvwatch.tickets.store import Store
from tests.ticket_fixtures import Clock

PG_USER = "elvwatch"
PG_PASSWORD = "elv-" + secrets.token_hex(8)
PG_START_TIMEOUT = 30  # seconds; initdb + start take ~2 s on a laptop, CI runners are slower


def _pg_bin() -> Path:
    configured = os.environ.get("ELVWATCH_PG_BIN")
    if configured:
        candidates = [Path(configured)]
    else:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                            reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    pytest.fail("PostgreSQL server binaries not found (looked in $ELVWATCH_PG_BIN and "
                "/usr/lib/postgresql/*/bin): install the Debian 'postgresql' package",
                pytrace=False)


def _run_as() -> list[str]:
    """Command prefix that drops root to the postgres user; empty when not root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root but there is no 'postgres' system user to run the "
                    "PostgreSQL server (initdb refuses root): install the Debian 'postgresql' "
                    "package, or `useradd --system postgres`", pytrace=False)
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh",
                                                             "-c", 'exec "$0" "$@"']


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check(command: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=PG_START_TIMEOUT,
                            check=False)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace") if log and log.exists() else ""
        pytest.fail(f"{what} failed ({result.returncode}): {' '.join(command)}\n"
                    f"{result.stdout}{result.stderr}{server_log}", pytrace=False)


class PostgresServer:
    """A PostgreSQL cluster of our own in ``root``: ``start``/``stop`` run pg_ctl, so a
    test can take the database away and bring it back on the same port."""

    def __init__(self, root: Path) -> None:
        self.bindir, self.prefix = _pg_bin(), _run_as()
        self.root = root
        self.data, self.log = root / "data", root / "server.log"
        self.port = _free_port()
        if self.prefix:
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self.prefix:
            shutil.chown(pwfile, "postgres", "postgres")
        _check([*self.prefix, str(self.bindir / "initdb"), "-D", str(self.data), "-U", PG_USER,
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--locale=C", "--no-sync"], "initdb")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        _check([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                str(self.log), "-o", options, "-w", "-t", str(PG_START_TIMEOUT), "start"],
               "pg_ctl start", self.log)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                        "-m", mode, "-w", "stop"], capture_output=True,
                       timeout=PG_START_TIMEOUT, check=False)

    def createdb(self, name: str) -> str:
        """Create database ``name``; its URL."""
        _check([*self.prefix, str(self.bindir / "createdb"), "-h", str(self.root), "-p",
                str(self.port), "-U", PG_USER, name], "createdb", self.log)
        return URL.create("postgresql+asyncpg", username=PG_USER, password=PG_PASSWORD,
                          host="127.0.0.1", port=self.port, database=name
                          ).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of our own for the session; yields the URL of database ``elvwatch``."""
    with tempfile.TemporaryDirectory(prefix="elvwatch-pg-") as tmp:
        server = PostgresServer(Path(tmp))
        server.start()
        try:
            yield server.createdb("elvwatch")
        finally:
            server.stop()


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'elvwatch.db'}"
        return
    base = make_url(request.getfixturevalue("postgres_url"))
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_asyncpg_dsn(base), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield base.set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(_asyncpg_dsn(base), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A fresh store (SQLite, then PostgreSQL) holding the ticket tests' equipment archive
    (tests/ticket_fixtures.py) as of their T0."""
    from tests.ticket_fixtures import T0, archive

    async with await Store.open(store_url) as opened:
        await opened.sync_archive(archive(), datetime.fromtimestamp(T0, UTC))
        yield opened


@pytest.fixture
def clock() -> Clock:
    """The ticket tests' settable clock, at their T0."""
    return Clock()
