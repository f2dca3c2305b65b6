"""``elvwatch run``: the daemon composed and run until SIGTERM/SIGINT (SIGHUP reloads)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.daemon.app import App
from elvwatch.daemon.reload import ConfigUnusable
from elvwatch.tickets.store import StoreError

log = logging.getLogger(__name__)


async def run_daemon(config_path: Path) -> int:
    try:
        config = await asyncio.to_thread(load_config, config_path)
    except ConfigInvalid as exc:
        log.error("%s: config invalid:\n%s", config_path, exc)
        return 1
    app = App(config)
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
