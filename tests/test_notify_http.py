"""Webhook, WeCom and DingTalk notifiers against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import logging
import socket
from types import MappingProxyType
from urllib.parse import unquote

import pytest

from elvwatch.exporters.notify.base import Message
from elvwatch.exporters.notify.bots import WECOM_MAX_BYTES, DingTalkNotifier, WeComNotifier
from elvwatch.exporters.notify.messages import render, render_summary
from elvwatch.exporters.notify.webhook import WebhookNotifier
from elvwatch.probes.base import Credential, Secret
from tests.notify_peers import (
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    WEBHOOK_SECRET,
    WECOM_KEY,
    event,
    http_receiver,
)


def cred(**secrets: str) -> Credential:
    return Credential(name="c", secrets=MappingProxyType({k: Secret(v)
                                                          for k, v in secrets.items()}))


def message(n: int = 1, **kw: object) -> Message:
    from dataclasses import replace
    return replace(render(event(n, **kw)), id=f"msg-{n}")  # type: ignore[arg-type]


async def test_webhook_body_is_signed_json_the_receiver_verifies() -> None:
    async with http_receiver() as peer:
        notifier = WebhookNotifier("noc", f"{peer.url}/hook", credential=cred(hmac=WEBHOOK_SECRET))
        try:
            result = await notifier.send(message(7))
        finally:
            await notifier.close()
    assert result.ok and result.status == 200
    [got] = peer.accepted("/hook")
    body = got.json()
    assert body["id"] == "msg-7" and body["receiver"] == "noc" and body["summary"] is False
    assert body["events"][0]["id"] == "ev-00007" and body["events"][0]["kind"] == "opened"
    assert "摄像机离线" in body["subject"]  # UTF-8 JSON, not \u escapes
    assert "摄像机离线".encode() in got.body
    assert got.headers["X-Elvwatch-Delivery"] == "msg-7"
    assert got.headers["Content-Type"].startswith("application/json")


async def test_webhook_with_wrong_secret_is_refused_and_not_retried() -> None:
    async with http_receiver() as peer:
        notifier = WebhookNotifier("noc", f"{peer.url}/hook", credential=cred(hmac="wrong"))
        try:
            result = await notifier.send(message())
        finally:
            await notifier.close()
    assert not result.ok and result.status == 401 and not result.recoverable
    assert peer.received and not peer.accepted("/hook")


@pytest.mark.parametrize(("status", "recoverable"),
                         [(500, True), (502, True), (503, True), (429, True),
                          (400, False), (403, False), (404, False)])
async def test_webhook_says_5xx_and_429_are_worth_retrying_4xx_not(
        status: int, recoverable: bool) -> None:
    async with http_receiver() as peer:
        peer.script["/hook"] = [(status, {"error": "nope"})]
        notifier = WebhookNotifier("noc", f"{peer.url}/hook", credential=cred(hmac=WEBHOOK_SECRET))
        try:
            result = await notifier.send(message())
        finally:
            await notifier.close()
    assert not result.ok and result.status == status and result.recoverable is recoverable


async def test_webhook_timeout_and_refused_connection_are_recoverable() -> None:
    async with http_receiver() as peer:
        peer.delay = 1.0
        notifier = WebhookNotifier("noc", f"{peer.url}/hook", timeout=0.2,
                                   credential=cred(hmac=WEBHOOK_SECRET))
        try:
            slow = await notifier.send(message())
        finally:
            await notifier.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    notifier = WebhookNotifier("noc", f"http://127.0.0.1:{closed_port}/hook")
    try:
        refused = await notifier.send(message())
    finally:
        await notifier.close()
    assert not slow.ok and slow.recoverable and "0.2s" in (slow.error or "")
    assert not refused.ok and refused.recoverable


async def test_wecom_posts_markdown_with_key_from_credentials() -> None:
    async with http_receiver() as peer:
        notifier = WeComNotifier("ops", f"{peer.url}/wecom", credential=cred(key=WECOM_KEY))
        try:
            result = await notifier.send(message(3, severity="emergency"))
        finally:
            await notifier.close()
    assert result.ok
    [got] = peer.accepted("/wecom")
    body = got.json()
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("### 【紧急】新工单 T\\-2026\\-000003")
    assert '<font color="warning">摄像机离线</font>' in content
    assert "[查看工单](http://127.0.0.1:9780/tickets/T-2026-000003)" in content


async def test_wecom_markdown_is_cut_to_4096_bytes_on_a_character_boundary() -> None:
    events = [event(i, title_zh="长" * 60) for i in range(200)]
    big = render_summary(events)
    async with http_receiver() as peer:
        notifier = WeComNotifier("ops", f"{peer.url}/wecom", credential=cred(key=WECOM_KEY))
        try:
            assert (await notifier.send(big)).ok
        finally:
            await notifier.close()
    content = peer.accepted("/wecom")[0].json()["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MAX_BYTES and content.endswith("…")


@pytest.mark.parametrize(("errcode", "recoverable"), [(45009, True), (-1, True),
                                                      (93000, False), (40008, False)])
async def test_wecom_errcode_decides_whether_to_retry(errcode: int, recoverable: bool) -> None:
    async with http_receiver() as peer:
        peer.script["/wecom"] = [(200, {"errcode": errcode, "errmsg": "x"})]
        notifier = WeComNotifier("ops", f"{peer.url}/wecom", credential=cred(key=WECOM_KEY))
        try:
            result = await notifier.send(message())
        finally:
            await notifier.close()
    assert not result.ok and result.recoverable is recoverable
    assert f"errcode {errcode}" in (result.error or "")


async def test_dingtalk_signed_request_is_verified_by_the_receiver() -> None:
    async with http_receiver() as peer:
        notifier = DingTalkNotifier(
            "ops", f"{peer.url}/dingtalk",
            credential=cred(access_token=DINGTALK_TOKEN, secret=DINGTALK_SECRET),
            at_mobiles=("13800001111",))
        try:
            result = await notifier.send(message(5, severity="emergency"))
        finally:
            await notifier.close()
    assert result.ok
    [got] = peer.accepted("/dingtalk")
    body = got.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[elvwatch] 【紧急】新工单")
    assert body["markdown"]["text"].endswith("@13800001111")
    assert body["at"] == {"atMobiles": ["13800001111"], "isAtAll": False}


async def test_dingtalk_with_a_wrong_secret_fails_without_retry() -> None:
    async with http_receiver() as peer:
        notifier = DingTalkNotifier(
            "ops", f"{peer.url}/dingtalk",
            credential=cred(access_token=DINGTALK_TOKEN, secret="SECwrong"))
        try:
            result = await notifier.send(message(severity="general"))
        finally:
            await notifier.close()
    assert peer.received and not peer.accepted("/dingtalk")
    assert not result.ok and not result.recoverable and "310000" in (result.error or "")
    # The bot mentions nobody on a non-emergency message.
    assert json.loads(peer.received[0].body)["at"]["atMobiles"] == []


@pytest.mark.parametrize("errcode", [130101, -1])
async def test_dingtalk_throttling_is_recoverable(errcode: int) -> None:
    async with http_receiver() as peer:
        peer.script["/dingtalk"] = [(200, {"errcode": errcode, "errmsg": "send too fast"})]
        notifier = DingTalkNotifier("ops", f"{peer.url}/dingtalk",
                                    credential=cred(access_token=DINGTALK_TOKEN))
        try:
            result = await notifier.send(message())
        finally:
            await notifier.close()
    assert not result.ok and result.recoverable


async def test_bot_keys_never_appear_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{closed_port}"
    wecom = WeComNotifier("ops", f"{base}/wecom", credential=cred(key=WECOM_KEY))
    ding = DingTalkNotifier("ding", f"{base}/dingtalk",
                            credential=cred(access_token=DINGTALK_TOKEN, secret=DINGTALK_SECRET))
    try:
        results = [await wecom.send(message()), await ding.send(message())]
    finally:
        await wecom.close()
        await ding.close()
    texts = [r.error or "" for r in results] + [caplog.text]
    assert all(not r.ok and r.recoverable for r in results)
    for text in texts:
        for secret in (WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET):
            assert secret not in text and unquote(secret) not in text
