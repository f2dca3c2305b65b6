"""Group chat bots: WeCom (企业微信) and DingTalk (钉钉), markdown messages.

Both answer HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` on success and a non-zero
``errcode`` otherwise; throttling (WeCom 45009, DingTalk 130101/410100) and "system busy"
(-1) are worth retrying, the rest (bad key, bad signature, bad message) are not.

The bot's key is part of its URL (WeCom ``?key=``, DingTalk ``?access_token=``), so it is
taken from the credential and never appears in a log line or an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from elvwatch.exporters.notify.base import Message, NotifyConfigError, SendResult
from elvwatch.exporters.notify.webhook import HttpPoster, http_result
from elvwatch.probes.base import Credential, bounded
from elvwatch.tickets.events import TicketEventKind

# WeCom rejects markdown content over 4096 bytes of UTF-8.
WECOM_MAX_BYTES = 4096
# DingTalk's markdown text limit is not documented precisely; 18 KB is well inside it.
DINGTALK_MAX_BYTES = 18_000
_WECOM_RETRY = {-1, 45009}
_DINGTALK_RETRY = {-1, 130101, 410100}


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _bot_answer(status: int, body: bytes, http: HttpPoster, retry: set[int]) -> SendResult:
    if status != 200:
        return http_result(status, body, http)
    try:
        answer = json.loads(body)
        code = int(answer.get("errcode", -1))
        detail = str(answer.get("errmsg", ""))
    except (ValueError, AttributeError, TypeError):
        return SendResult.failure("HTTP 200 but not a bot answer", recoverable=True, status=200)
    if code == 0:
        return SendResult.success(200)
    return SendResult.failure(f"errcode {code}: {http.scrub(bounded(detail, 200))}",
                              recoverable=code in retry, status=200)


def _required(credential: Credential | None, receiver: str, *names: str) -> str:
    if credential is not None:
        for name in names:
            if name in credential.secrets:
                return credential.secrets[name].value
        if credential.password is not None:
            return credential.password.value
    raise NotifyConfigError([f"receiver {receiver}: credentials must give secrets."
                             f"{names[0]} (or a password)"])


class WeComNotifier:
    """企业微信群机器人: ``POST {url}?key=KEY`` with a markdown message."""

    def __init__(self, name: str, url: str, *, credential: Credential | None,
                 timeout: float = 10.0) -> None:
        self.name = name
        self._key = _required(credential, name, "key")
        self._url = f"{url}?key={quote(self._key, safe='')}"
        self._http = HttpPoster(timeout, (self._key,))

    @staticmethod
    def body(message: Message) -> bytes:
        payload = {"msgtype": "markdown",
                   "markdown": {"content": cut_utf8(message.markdown, WECOM_MAX_BYTES)}}
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    async def send(self, message: Message) -> SendResult:
        answer = await self._http.post(self._url, self.body(message),
                                       {"Content-Type": "application/json; charset=utf-8"})
        if isinstance(answer, SendResult):
            return answer
        return _bot_answer(*answer, self._http, _WECOM_RETRY)

    async def close(self) -> None:
        await self._http.close()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signed-secret mode: base64(HMAC-SHA256(secret, "ts\\nsecret")),
    before URL encoding."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkNotifier:
    """钉钉自定义机器人: ``POST {url}?access_token=T[&timestamp=&sign=]``, markdown.

    With ``secrets.secret`` (the ``SEC…`` string) every request is signed; the timestamp
    must be within an hour of DingTalk's clock, so it is taken per attempt."""

    def __init__(self, name: str, url: str, *, credential: Credential | None,
                 timeout: float = 10.0, at_mobiles: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._token = _required(credential, name, "access_token")
        self._secret = credential.secrets["secret"].value \
            if credential is not None and "secret" in credential.secrets else None
        self._base = url
        self._at_mobiles = at_mobiles
        self._clock = clock
        self._http = HttpPoster(timeout, tuple(s for s in (self._token, self._secret) if s))

    def url(self) -> str:
        url = f"{self._base}?access_token={quote(self._token, safe='')}"
        if self._secret:
            timestamp = int(self._clock() * 1000)
            signature = quote_plus(dingtalk_sign(self._secret, timestamp))
            url += f"&timestamp={timestamp}&sign={signature}"
        return url

    def body(self, message: Message) -> bytes:
        text = message.markdown
        # Emergencies and escalations page people: the mentioned numbers are notified.
        mobiles = list(self._at_mobiles) \
            if any(e.severity == "emergency" or e.kind is TicketEventKind.ESCALATED
                   for e in message.events) else []
        if mobiles:
            # DingTalk only notifies a mentioned number that also appears in the text.
            text += "\n\n" + " ".join(f"@{m}" for m in mobiles)
        payload = {"msgtype": "markdown",
                   "markdown": {"title": bounded(message.subject, 64),
                                "text": cut_utf8(text, DINGTALK_MAX_BYTES)},
                   "at": {"atMobiles": mobiles, "isAtAll": False}}
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    async def send(self, message: Message) -> SendResult:
        answer = await self._http.post(self.url(), self.body(message),
                                       {"Content-Type": "application/json; charset=utf-8"})
        if isinstance(answer, SendResult):
            return answer
        return _bot_answer(*answer, self._http, _DINGTALK_RETRY)

    async def close(self) -> None:
        await self._http.close()
