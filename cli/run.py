"""``elvwatch run``: the daemon composed with its HTTP listener and run until
SIGTERM/SIGINT (SIGHUP reloads).  The daemon never imports web/: it is handed the
listener, which reads it through web/'s DaemonView."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.daemon.app import App
from elvwatch.daemon.reload import ConfigUnusable
from elvwatch.tickets.store import StoreError
from elvwatch.web.server import HttpListener

log = logging.getLogger(__name__)


async def run_daemon(config_path: Path) -> int:
    try:
        config = await asyncio.to_thread(load_config, config_path)
    except ConfigInvalid as exc:
        log.error("%s: config invalid:\n%s", config_path, exc)
        return 1
    app = App(config, HttpListener())
    try:
        await app.start()
    except (StoreError, ConfigUnusable, OSError) as exc:  # OSError: the HTTP port
        log.error("cannot start: %s", exc)
        await app.stop()
        return 1
    try:
        await app.run_forever()
    finally:
        await app.stop()
    return 0
