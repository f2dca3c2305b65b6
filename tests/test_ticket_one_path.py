"""Every action is an event, whoever takes it and through what: a preventive visit worked
from the command line (another process), the JSON API, the sign-off page and the
daemon's own ticket stage is notified alike, opens and ends the visit's silence alike,
and leaves an audit trail naming who acted and how — through one running daemon."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.tickets.records import Actor
from elvwatch.web import links
from elvwatch.web.server import HttpListener
from tests.helpers import until
from tests.notify_peers import WEBHOOK_SECRET, http_receiver
from tests.test_daemon import free_port

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ["preventive_due", "acknowledged", "resolved", "signed_off", "closed", "feedback"]


def one_path_config(path: Path, listen: str, token_file: Path, hook: str) -> Path:
    path.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'e.db'}"},
        "http": {"listen": listen, "token_file": str(token_file)},
        "credentials": {"hook": {"password_env": "ELVWATCH_TEST_HOOK_SECRET"}},
        "sites": [{"id": "garden", "name": "阳光花园",
                   "contract": {"start": date.today().replace(day=1).isoformat(),
                                "preventive": "monthly"}}],
        "notify": {"receivers": {"noc": {"type": "webhook", "credentials": "hook",
                                         "options": {"url": hook}}},
                   "routes": [{"receivers": ["noc"], "events": EVENTS}]},
        "devices": [{"id": "cam-01", "site": "garden", "kind": "camera",
                     "host": "127.0.0.1", "checks": [{"type": "tcp", "port": free_port()}]}],
    }, allow_unicode=True), encoding="utf-8")
    return path


async def cli(path: Path, *args: str) -> str:
    """``elvwatch ARGS -c PATH`` in its own process, without the daemon's secrets."""
    env = {k: v for k, v in os.environ.items() if k != "ELVWATCH_TEST_HOOK_SECRET"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "elvwatch.cli", *args, "-c", str(path), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0, err.decode()
    return out.decode()


async def test_cli_api_page_and_daemon_actions_notify_silence_and_audit_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_HOOK_SECRET", WEBHOOK_SECRET)
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with http_receiver() as peer:
        path = one_path_config(tmp_path / "c.yaml", f"127.0.0.1:{port}", token_file,
                               f"{peer.url}/hook")
        app = App(load_config(path), HttpListener())
        await app.start()
        tickets = app.tickets
        assert tickets is not None

        def told() -> list[tuple[str, str, str]]:
            return [(e["ticket"], e["kind"], e["actor"]) for r in peer.accepted("/hook")
                    for e in r.json()["events"]]

        def muting(number: str) -> bool:
            return app.silencer.mutes({"site": "garden", "system": "cctv",
                                       "device": "cam-01"}) == f"visit-{number}"

        try:
            orders: list[Any] = []
            for _ in range(100):
                orders = await tickets.list_tickets(kind="preventive", state="live")
                if orders:
                    break
                await asyncio.sleep(0.1)
            (order,) = orders
            number = order.number

            # On site: acknowledged from the command line, in another process.
            await cli(path, "tickets", "ack", number, "--by", "王工", "--note", "到场")
            await until(lambda: (number, "acknowledged", "王工") in told(), timeout=10,
                        what="the CLI's acknowledgement notified")
            await until(lambda: muting(number), timeout=5, what="the visit's silence")

            # Done: completed through the JSON API.
            headers = {"Authorization": f"Bearer {token}"}
            results = {item: {"ok": True} for item in order.checklist}
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/api/v1/tickets/{number}/resolve",
                                     headers=headers, json={
                                         "actor": "王工", "engineer": "王工",
                                         "results": results}) as resp:
                    assert resp.status == 200, await resp.text()
                await until(lambda: (number, "resolved", "王工") in told(), timeout=10,
                            what="the API's completion notified")
                await until(lambda: not muting(number), timeout=5,
                            what="the visit's silence ended")

                # Accepted through the sign-off page, by the site representative.
                link = links.sign(token, number)
                async with http.post(f"{base}/tickets/{number}/signoff?link={link}",
                                     data={"name": "张经理", "comment": "保养完成"},
                                     allow_redirects=False) as resp:
                    assert resp.status == 303
            await until(lambda: (number, "signed_off", "张经理") in told()
                        and (number, "closed", "张经理") in told(), timeout=10,
                        what="the page's sign-off notified")

            # And the daemon's own ticket stage (what a page of the daemon calls).
            await tickets.add_feedback(number, Actor("客服小刘", "page"), 5, "满意")
            await until(lambda: (number, "feedback", "客服小刘") in told(), timeout=10,
                        what="the feedback notified")

            detail = await tickets.get(number)
            assert [(e.kind, e.actor, e.via) for e in detail.events] == [
                ("preventive_due", "system", "system"),
                ("acknowledged", "王工", "cli"),
                ("resolved", "王工", "api"),
                ("signed_off", "张经理", "link"),   # through the signed link
                ("closed", "张经理", "link"),
                ("feedback", "客服小刘", "page")]
            # Each told once, though the daemon follows the store every second.
            assert sorted(k for t, k, _ in told() if t == number) == sorted(EVENTS)
        finally:
            await app.stop()
