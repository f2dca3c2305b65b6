"""Notifiers that POST JSON: a generic signed webhook, and the shared HTTP plumbing the
WeCom and DingTalk bots use.

The generic webhook body is ``{"version": 1, "id", "receiver", "summary", "language",
"subject", "text", "events": [...]}`` (UTF-8 JSON).  ``X-Elvwatch-Signature:
sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes under the credential's
``secrets.hmac`` (or its password); ``X-Elvwatch-Delivery`` is the message id, the same
on every retry and after a restart, so a receiver can drop a copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

import aiohttp

from elvwatch.exporters.notify.base import Message, SendResult, http_status_recoverable, scrub
from elvwatch.exporters.notify.messages import event_json
from elvwatch.probes.base import Credential, bounded

USER_AGENT = "elvwatch-notify/0.1"
# Enough of a response body to read a bot's {"errcode": …}; a receiver that sends more
# is not read further.
MAX_RESPONSE = 64 * 1024

# Errors that say the peer is misconfigured (TLS, bad URL): retrying repeats them.
_PERMANENT_CLIENT_ERRORS = (aiohttp.ClientSSLError, aiohttp.InvalidURL)


class HttpPoster:
    """One aiohttp session per receiver, opened on first use; failures become results."""

    def __init__(self, timeout: float, secrets: tuple[str, ...] = ()) -> None:
        self._timeout = timeout
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes,
                   headers: Mapping[str, str]) -> tuple[int, bytes] | SendResult:
        """(status, first bytes of the body), or a failure that never quotes the URL."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": USER_AGENT})
        try:
            async with self._session.post(url, data=body, headers=dict(headers),
                                          allow_redirects=False) as response:
                return response.status, await response.content.read(MAX_RESPONSE)
        except TimeoutError:
            return SendResult.failure(f"no answer within {self._timeout:g}s", recoverable=True)
        except _PERMANENT_CLIENT_ERRORS as exc:
            return SendResult.failure(self._describe(exc), recoverable=False)
        except (aiohttp.ClientError, OSError) as exc:
            return SendResult.failure(self._describe(exc), recoverable=True)

    def _describe(self, exc: BaseException) -> str:
        # aiohttp's messages may quote the whole URL, query (the bot key) included.
        return bounded(f"{type(exc).__name__}: {scrub(str(exc), self._secrets)}")

    def scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def http_result(status: int, body: bytes, scrubber: HttpPoster) -> SendResult:
    """A plain HTTP answer: any 2xx is delivered."""
    if 200 <= status < 300:
        return SendResult.success(status)
    snippet = scrubber.scrub(bounded(body.decode("utf-8", "replace"), 200))
    return SendResult.failure(f"HTTP {status}: {snippet}".rstrip(": "),
                              recoverable=http_status_recoverable(status), status=status)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Elvwatch-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _secret(credential: Credential | None, name: str) -> str | None:
    if credential is None:
        return None
    if name in credential.secrets:
        return credential.secrets[name].value
    return credential.password.value if credential.password else None


class WebhookNotifier:
    """POSTs the message and its events as signed JSON to one URL."""

    def __init__(self, name: str, url: str, *, credential: Credential | None = None,
                 timeout: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._secret = _secret(credential, "hmac")
        self._http = HttpPoster(timeout, (self._secret,) if self._secret else ())

    def body(self, message: Message) -> bytes:
        payload = {
            "version": 1, "id": message.id, "receiver": self.name,
            "summary": message.summary, "language": message.language,
            "subject": message.subject, "text": message.plain,
            "events": [event_json(e) for e in message.events],
        }
        return json.dumps(payload, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode("utf-8")

    async def send(self, message: Message) -> SendResult:
        body = self.body(message)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Elvwatch-Delivery": message.id}
        if self._secret:
            headers["X-Elvwatch-Signature"] = sign(self._secret, body)
        answer = await self._http.post(self._url, body, headers)
        if isinstance(answer, SendResult):
            return answer
        return http_result(*answer, self._http)

    async def close(self) -> None:
        await self._http.close()
