"""Checks of a config that ``run`` would otherwise meet only at start: the store URL,
the bearer token file, the notifiers.  ``load_config`` runs them, so ``elvwatch check``
and ``elvwatch run`` (and a reload) accept and refuse the same configs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from elvwatch.config.fields import SecretRef
from elvwatch.probes.base import Secret

if TYPE_CHECKING:
    from elvwatch.exporters.notify.config import NotifyConfig
    from elvwatch.probes.base import Credential

Report = Callable[[list[int | str], str], None]

# The async drivers the store runs on (tickets/store.py).
STORE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def check_store_url(url: str | None, report: Report) -> None:
    if url is None:
        return
    # SQLAlchemy loads here, for a config that names a database, not for every command.
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        # Not quoted: a URL may carry the database password.
        report(["storage", "url"], "not a database URL, e.g. "
                                   "postgresql+asyncpg://USER@HOST/DB")
        return
    if parsed.drivername not in STORE_DRIVERS:
        report(["storage", "url"],
               f"unsupported database {parsed.drivername!r} (use sqlite+aiosqlite:///PATH "
               f"or postgresql+asyncpg://USER@HOST/DB)")
    elif parsed.get_backend_name() == "sqlite" and parsed.database and \
            parsed.database != ":memory:" and not parsed.database.startswith("file:") and \
            not Path(parsed.database).parent.is_dir():
        report(["storage", "url"], f"directory {Path(parsed.database).parent} does not exist")


def read_secret(ref: SecretRef, base: Path, env: Mapping[str, str], label: str,
                err: Callable[[str], None]) -> Secret | None:
    """The secret ``ref`` points at (an environment variable or a file relative to
    ``base``); None, with the problem reported under ``label``, when it cannot be read."""
    if ref.env is not None:
        value = env.get(ref.env)
        if value is None:
            err(f"environment variable {ref.env} ({label}) is not set")
            return None
        return Secret(value)
    assert ref.file is not None  # SecretRef holds exactly one
    path = ref.file if ref.file.is_absolute() else base / ref.file
    try:
        return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        err(f"{label} file {path}: {exc.strerror or exc}")
        return None


def resolve_token_file(token_file: Path | None, base: Path, report: Report) -> Path | None:
    """The token file's path (a relative one is next to the config, like password_file),
    read once here so a missing or empty file is a config error, not a daemon that
    answers every request with 401."""
    if token_file is None:
        return None
    path = token_file if token_file.is_absolute() else base / token_file
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        report(["http", "token_file"], f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        report(["http", "token_file"], f"{path} is not UTF-8 text")
    else:
        if not token:
            report(["http", "token_file"], f"{path} is empty: write the bearer token in it")
    return path


def check_receivers(notify: NotifyConfig, credentials: Mapping[str, Credential],
                    report: Report) -> None:
    """What building the notifiers would refuse (missing bot keys, half an SMTP login,
    an unreadable ca_file), at the receiver's line.  Unknown credentials are reported
    by the config's own reference check."""
    if not notify.receivers:
        return
    from elvwatch.exporters.notify.receivers import receiver_problems  # the notifiers' libraries

    for name, problems in receiver_problems(notify, credentials).items():
        receiver = notify.receivers[name]
        if receiver.credentials is not None and receiver.credentials not in credentials:
            continue
        for problem in problems:
            report(["notify", "receivers", name], _without_prefix(problem, name))


def _without_prefix(problem: str, name: str) -> str:
    for prefix in (f"notify.receivers.{name}: ", f"receiver {name}: "):
        if problem.startswith(prefix):
            return problem[len(prefix):]
    return problem
