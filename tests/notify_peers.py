"""Real local receivers for the notifier tests: one aiohttp server on loopback that plays
a generic webhook endpoint, a WeCom bot and a DingTalk bot, and checks what it is sent
the way the real services do (HMAC signature, bot key, DingTalk's sign); and a plain
SMTP server (aiosmtpd) that keeps every mail with its envelope."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP

from elvwatch.tickets.events import TicketEvent, TicketEventKind

WEBHOOK_SECRET = "whsec-7f3a"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DINGTALK_TOKEN = "ding-token-5e1c"
DINGTALK_SECRET = "SEC0123456789abcdef"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    verified: bool
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; ``script[path]`` lists (status, json answer) to give next."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    delay: float = 0.0

    def accepted(self, path: str) -> list[Received]:
        """Requests the receiver verified and answered with success."""
        return [r for r in self.received if r.path == path and r.verified
                and r.status == 200]


def _verify_webhook(request_body: bytes, headers: dict[str, str]) -> bool:
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request_body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Elvwatch-Signature", ""), expected)


def _verify_dingtalk(query: dict[str, str]) -> bool:
    if query.get("access_token") != DINGTALK_TOKEN:
        return False
    timestamp = query.get("timestamp", "")
    if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > 3600_000:
        return False
    digest = hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(),
                      hashlib.sha256).digest()
    # aiohttp has already URL-decoded the query: compare with the plain base64.
    return hmac.compare_digest(query.get("sign", ""), base64.b64encode(digest).decode())


@asynccontextmanager
async def http_receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        query = dict(request.query)
        path = request.path
        if path == "/hook":
            verified = _verify_webhook(body, headers)
        elif path == "/wecom":
            verified = query.get("key") == WECOM_KEY
        elif path == "/dingtalk":
            verified = _verify_dingtalk(query)
        else:
            verified = False
        got = Received(path, headers, query, body, verified)
        state.received.append(got)
        if state.delay:
            await asyncio.sleep(state.delay)
        scripted = state.script.get(path)
        if scripted:
            status, answer = scripted.pop(0)
            # A bot's refusal comes as HTTP 200 with an errcode: not a success either.
            got.status = -1 if answer.get("errcode", 0) != 0 else status
            return web.json_response(answer, status=status)
        if not verified:
            if path == "/hook":
                got.status = 401
                return web.json_response({"error": "bad signature"}, status=401)
            got.status = -1
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        got.status = 200
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def event(n: int = 1, *, kind: TicketEventKind = TicketEventKind.OPENED,
          severity: str = "major", site: str = "sunny", language: str = "zh-CN",
          title_zh: str = "摄像机离线", title_en: str = "Camera down",
          device: str | None = "cam-gate-01", at: float | None = None,
          note: str = "") -> TicketEvent:
    return TicketEvent(
        id=f"ev-{n:05d}", kind=kind, ticket=f"T-2026-{n:06d}",
        at=at if at is not None else 1_780_000_000.0 + n, site=site,
        site_name="阳光花园" if language == "zh-CN" else "Sunny Garden",
        language=language, severity=severity, title_zh=title_zh, title_en=title_en,
        device=device, system="cctv", location="1号楼 / B1 / 大门", state="open",
        response_due=1_780_043_200.0, resolve_due=None, note=note,
        url=f"http://127.0.0.1:9780/tickets/T-2026-{n:06d}")


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    raw: bytes

    def parsed(self) -> Any:
        import email
        from email.policy import default as default_policy

        return email.message_from_bytes(self.raw, policy=default_policy)


@dataclass
class SmtpReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                               envelope.original_content or envelope.content))
        return "250 OK"


@asynccontextmanager
async def smtp_receiver() -> AsyncIterator[SmtpReceiver]:
    """aiosmtpd's SMTP protocol without TLS or login, in the test's own loop."""
    state = SmtpReceiver()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(state, hostname="mx.test"), "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
