"""What the page tests share: Debian's chromium driven by Playwright, the tickets a
daemon opened for its down devices, and the command line run beside a running loop."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, redirect_stdout
from pathlib import Path

import pytest

from elvwatch.cli.main import main
from elvwatch.daemon.app import App

try:
    from playwright.async_api import Browser, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
NEEDS_CHROMIUM = [
    pytest.mark.skipif(async_playwright is None, reason="playwright not installed (test extra)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="chromium not installed (Debian package chromium)")]
PHONE = {"width": 375, "height": 812}


@asynccontextmanager
async def launched() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def tickets_for(app: App, devices: Iterable[str], tries: int = 200) -> dict[str, str]:
    """Device → the number of its live ticket, once each of ``devices`` has one."""
    wanted = set(devices)
    found: dict[str, str] = {}
    for _ in range(tries):
        live = await app.tickets.list_tickets(state="live")  # type: ignore[union-attr]
        found = {t.device: t.number for t in live if t.device}
        if wanted <= found.keys():
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ticket for {sorted(wanted - found.keys())}")


async def cli(*args: str) -> tuple[int, str]:
    """``elvwatch ARGS`` in a thread (it runs its own event loop) and what it printed."""
    out = io.StringIO()

    def run() -> int:
        with redirect_stdout(out):
            return main(list(args))

    code = await asyncio.to_thread(run)
    return code, out.getvalue()
