"""Escalation really happens, through a running daemon to real receivers: each site's
escalation contacts get mail (aiosmtpd) and DingTalk @-mentions (a signed bot endpoint)
when a deadline passes, and at once for an emergency — each site's own contacts only.
The emergency is reported from the command line, in another process: the daemon
notifies it from the store like its own events."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

import elvwatch.daemon.ticket_stage
from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.exporters.notify.config import (
    DingTalkReceiver,
    EmailReceiver,
    EscalationContact,
    NotifyConfig,
    SiteEscalation,
    with_escalation,
)
from elvwatch.tickets.events import TicketEventKind
from tests.helpers import until
from tests.notify_peers import (
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    WEBHOOK_SECRET,
    Mail,
    http_receiver,
    smtp_receiver,
)
from tests.test_daemon import free_port

ROOT = Path(__file__).resolve().parent.parent
ZHANG, LI = "zhang@lakeside.example", "li@harbour.example"
SECRETS = {"ELVWATCH_TEST_HOOK_SECRET": WEBHOOK_SECRET,
           "ELVWATCH_TEST_DING_TOKEN": DINGTALK_TOKEN,
           "ELVWATCH_TEST_DING_SECRET": DINGTALK_SECRET}


def escalation_config(path: Path, smtp_port: int, http_url: str) -> Path:
    start = date.today().replace(day=1).isoformat()
    path.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'e.db'}"},
        "interval": 0.2, "timeout": 0.2, "scheduler": {"down_after": 2, "jitter": 0.0},
        "credentials": {
            "hook": {"password_env": "ELVWATCH_TEST_HOOK_SECRET"},
            "ding": {"secrets": {"access_token": {"env": "ELVWATCH_TEST_DING_TOKEN"},
                                 "secret": {"env": "ELVWATCH_TEST_DING_SECRET"}}}},
        "sites": [
            {"id": "lakeside", "name": "湖畔花园",
             "contract": {"start": start, "emergency_response_hours": 0},
             "escalation": [{"name": "张经理", "phone": "13800001111", "email": ZHANG}],
             "escalate_via": ["mail"]},
            {"id": "harbour", "name": "海港城",
             # A response deadline of under two seconds: passed while the test watches.
             "contract": {"start": start, "response_hours": 0.0005},
             "escalation": [{"name": "李总", "phone": "138 0000 2222", "email": LI}],
             "escalate_via": ["mail", "ding"]}],
        "notify": {
            "receivers": {
                "noc": {"type": "webhook", "credentials": "hook",
                        "options": {"url": f"{http_url}/hook"}},
                "mail": {"type": "email", "options": {
                    "host": "127.0.0.1", "port": smtp_port, "security": "none",
                    "sender": "elvwatch@noc.example", "to": ["noc@noc.example"]}},
                "ding": {"type": "dingtalk", "credentials": "ding",
                         "options": {"url": f"{http_url}/dingtalk"}}},
            "routes": [{"receivers": ["noc"]}]},
        "devices": [{"id": "h-cam", "site": "harbour", "kind": "camera",
                     "host": "127.0.0.1", "checks": [{"type": "tcp", "port": free_port()}]}],
    }, allow_unicode=True), encoding="utf-8")
    return path


def to(mails: list[Mail], address: str) -> list[Mail]:
    return [m for m in mails if address in m.recipients]


def text_of(mail: Mail) -> str:
    body = mail.parsed().get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


async def test_each_sites_escalation_contacts_are_told_at_once_and_when_a_deadline_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(elvwatch.daemon.ticket_stage, "TICKET_TICK_SECONDS", 0.5)
    async with smtp_receiver() as smtp, http_receiver() as peer:
        path = escalation_config(tmp_path / "c.yaml", smtp.port, peer.url)
        app = App(load_config(path))
        await app.start()
        try:
            assert app.tickets is not None
            # The command line runs without the daemon's secrets in its environment.
            env = {k: v for k, v in os.environ.items() if k not in SECRETS}
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "elvwatch.cli", "tickets", "create", "-c", str(path),
                "--site", "lakeside", "--location", "监控中心", "--severity", "emergency",
                "--description", "监控中心机房断电", "--reporter", "保安老陈",
                "--channel", "phone", "--by", "值班员", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(child.communicate(), 30)
            assert child.returncode == 0, err.decode()
            created = time.monotonic()
            emergency = out.decode().split(":")[0]
            await until(lambda: to(smtp.mails, ZHANG), timeout=15, what="emergency mail")
            assert time.monotonic() - created < 5   # at once, not at a deadline

            await until(lambda: to(smtp.mails, LI), timeout=30, what="breach mail")
            await asyncio.sleep(1.5)   # a few more ticket rounds: nothing is told twice
            (to_zhang,) = to(smtp.mails, ZHANG)
            (to_li,) = to(smtp.mails, LI)
            # Each site's contacts only, and only them: the receiver's own "to" is not used.
            assert to_zhang.recipients == [ZHANG] and to_li.recipients == [LI]
            assert emergency in to_zhang.parsed()["Subject"]
            assert "工单升级" in to_zhang.parsed()["Subject"]
            assert "湖畔花园" in text_of(to_zhang) and "已立即通知 张经理" in text_of(to_zhang)
            harbour_text = text_of(to_li)
            assert "海港城" in harbour_text and "湖畔花园" not in harbour_text
            assert "响应期限已过：已通知 李总" in harbour_text
            assert all(m.recipients in ([ZHANG], [LI]) for m in smtp.mails)

            # The harbour's DingTalk bot @-mentions its contact; the lakeside's is never
            # mentioned (it has no DingTalk route).
            await until(lambda: peer.accepted("/dingtalk"), timeout=10, what="dingtalk")
            pings = [r.json() for r in peer.accepted("/dingtalk")]
            assert any(p["at"]["atMobiles"] == ["13800002222"]
                       and "@13800002222" in p["markdown"]["text"] for p in pings)
            assert not any("13800001111" in json.dumps(p) for p in pings)

            # The NOC's own route saw both tickets open.
            opened = [e for r in peer.accepted("/hook") for e in r.json()["events"]
                      if e["kind"] == "opened"]
            assert {e["site"] for e in opened} == {"lakeside", "harbour"}
            # The emergency's "immediately" breach is on record, escalated once only.
            detail = await app.tickets.get(emergency)
            assert [e.kind for e in detail.events].count("escalated") == 1
            assert detail.ticket.response_breached
        finally:
            await app.stop()


def test_escalation_receivers_reach_the_sites_contacts_and_route_only_its_escalations(
) -> None:
    notify = NotifyConfig.model_validate({
        "receivers": {
            "mail": {"type": "email", "options": {"host": "smtp.example", "sender":
                                                  "e@noc.example", "to": ["noc@noc.example"]}},
            "ding": {"type": "dingtalk", "options": {"at_mobiles": ["13900000000"]}},
            "noc": {"type": "webhook", "options": {"url": "https://noc.example/hook"}}},
        "routes": [{"receivers": ["noc"]}]})
    sites = {
        "lakeside": SiteEscalation(("mail", "ding", "noc"), (
            EscalationContact("张经理", "138-0000-1111", ZHANG),
            EscalationContact("值班室", "ext. 8", None))),
        "harbour": SiteEscalation(("mail",), (EscalationContact("李总"),))}
    out = with_escalation(notify, sites)
    mail = out.receivers["mail:lakeside"]
    ding = out.receivers["ding:lakeside"]
    assert isinstance(mail, EmailReceiver) and mail.options.to == [ZHANG]
    assert isinstance(ding, DingTalkReceiver)
    assert ding.options.at_mobiles == ["13900000000", "138-0000-1111"]
    assert out.receivers["noc:lakeside"] == notify.receivers["noc"]
    harbour = out.receivers["mail:harbour"]   # nobody with an address: the NOC's "to"
    assert isinstance(harbour, EmailReceiver) and harbour.options.to == ["noc@noc.example"]
    routes = {tuple(r.sites): (r.receivers, r.events) for r in out.routes[1:]}
    assert routes == {
        ("harbour",): (["mail:harbour"], [TicketEventKind.ESCALATED]),
        ("lakeside",): (["mail:lakeside", "ding:lakeside", "noc:lakeside"],
                        [TicketEventKind.ESCALATED])}
    assert notify.receivers.keys() == {"mail", "ding", "noc"}   # the original untouched
