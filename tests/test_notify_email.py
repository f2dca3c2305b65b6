"""Email notifier against a real SMTP server (aiosmtpd) on loopback: STARTTLS and
implicit TLS with a certificate made by the test's own CA (trustme), AUTH, headers and
encodings of Chinese and English mail."""

from __future__ import annotations

import asyncio
import email
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from elvwatch.exporters.notify.base import Message
from elvwatch.exporters.notify.messages import render
from elvwatch.exporters.notify.smtp import EmailNotifier
from elvwatch.probes.base import Credential, Secret
from tests.notify_peers import event

USER, PASSWORD = "noc@sunny.example", "s3cret-密码"


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    data_reply: str = "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content or envelope.content))
        return self.data_reply


@dataclass
class Smtp:
    host: str
    port: int
    mailbox: Mailbox
    ca_file: Path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _authenticator(mailbox: Mailbox) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str,
              auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER \
            and auth_data.password.decode() == PASSWORD
        if ok:
            mailbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: server says 535
    return check


@asynccontextmanager
async def _serve(ca: trustme.CA, tmp_path: Path, *, implicit_tls: bool) -> AsyncIterator[Smtp]:
    """aiosmtpd's SMTP protocol served in the test's own loop on a free loopback port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mailbox = Mailbox()
    kwargs: dict[str, Any] = {"hostname": "mx.test"}
    if not implicit_tls:
        # aiosmtpd cannot tell an implicit-TLS connection from plain text, and would
        # refuse AUTH over it: login is proven over STARTTLS only.
        kwargs.update(authenticator=_authenticator(mailbox), auth_required=True,
                      tls_context=context, require_starttls=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox, **kwargs), "127.0.0.1", 0,
                                      ssl=context if implicit_tls else None)
    try:
        yield Smtp("127.0.0.1", server.sockets[0].getsockname()[1], mailbox, ca_file)
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def starttls(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Smtp]:
    async with _serve(ca, tmp_path, implicit_tls=False) as smtp:
        yield smtp


@pytest.fixture
async def implicit(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Smtp]:
    async with _serve(ca, tmp_path, implicit_tls=True) as smtp:
        yield smtp


def notifier(smtp: Smtp, *, security: str = "starttls", password: str | None = PASSWORD,
             ca_file: Path | None = None) -> EmailNotifier:
    credential = Credential(name="smtp", username=USER, password=Secret(password)) \
        if password is not None else None
    return EmailNotifier("mail", host=smtp.host, port=smtp.port, sender="elvwatch@sunny.example",
                         to=("noc@sunny.example", "张工 <zhang@sunny.example>"),
                         security=security, credential=credential, timeout=5,
                         ca_file=ca_file or smtp.ca_file)


def message(**kw: Any) -> Message:
    return replace(render(event(9, **kw)), id="0123abcd")


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_chinese_mail_over_starttls_with_login_arrives_intact(starttls: Smtp) -> None:
    sent = message(note="请尽快到场 <script>")
    result = await notifier(starttls).send(sent)
    assert result.ok, result.error
    assert starttls.mailbox.logins == [USER]
    [(mail_from, rcpt, raw)] = starttls.mailbox.messages
    assert mail_from == "elvwatch@sunny.example"
    assert rcpt == ["noc@sunny.example", "zhang@sunny.example"]
    mail = parse(raw)
    assert mail["Subject"] == sent.subject and "摄像机离线" in mail["Subject"]
    raw_headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in raw_headers.lower()  # RFC 2047, not raw 8-bit in a header
    assert raw_headers.isascii()
    assert mail["Message-ID"] == "<0123abcd@sunny.example>"
    assert mail["Content-Language"] == "zh-CN" and mail["X-Elvwatch-Delivery"] == "0123abcd"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert "阳光花园" in plain.get_content() and "请尽快到场 <script>" in plain.get_content()
    assert "请尽快到场 &lt;script&gt;" in html.get_content() and "<script>" not in \
        html.get_content()


async def test_english_site_gets_english_mail(starttls: Smtp) -> None:
    assert (await notifier(starttls).send(message(language="en"))).ok
    mail = parse(starttls.mailbox.messages[0][2])
    assert mail["Subject"].startswith("[elvwatch] [major]Ticket opened T-2026-000009")
    assert mail["Content-Language"] == "en"
    body = mail.get_body(("plain",))
    assert body is not None and "Response due" in body.get_content()


async def test_implicit_tls_delivers(implicit: Smtp) -> None:
    assert (await notifier(implicit, security="ssl", password=None).send(message())).ok
    assert len(implicit.mailbox.messages) == 1


async def test_wrong_password_is_not_retried_and_not_told(starttls: Smtp) -> None:
    result = await notifier(starttls, password="wrong-password").send(message())
    assert not result.ok and not result.recoverable
    assert "wrong-password" not in (result.error or "")
    assert starttls.mailbox.messages == []


async def test_server_certificate_from_an_unknown_ca_is_refused(
        starttls: Smtp, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    result = await notifier(starttls, ca_file=other).send(message())
    assert not result.ok and not result.recoverable
    assert starttls.mailbox.messages == [] and starttls.mailbox.logins == []


@pytest.mark.parametrize(("reply", "recoverable"), [("451 4.3.0 try again later", True),
                                                    ("554 5.7.1 rejected", False)])
async def test_smtp_4xx_is_transient_and_5xx_permanent(
        starttls: Smtp, reply: str, recoverable: bool) -> None:
    starttls.mailbox.data_reply = reply
    result = await notifier(starttls).send(message())
    assert not result.ok and result.recoverable is recoverable
    assert result.status == int(reply[:3])
