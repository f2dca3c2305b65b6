"""RTSP stream check: OPTIONS + DESCRIBE (digest or basic auth) and the SDP it returns.

Written on asyncio streams: two requests need no library.  Every read is bounded in
size (``MAX_HEADER``, ``sdp.MAX_SDP``); the caller owns the time (scheduler timeout).

Values: ``rtsp.describe_seconds``, ``rtsp.width``/``rtsp.height`` (first video stream,
when the SDP gives them), ``rtsp.codec`` (string), ``rtsp.streams`` (m= sections).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from elvwatch.probes.base import (
    Check,
    Observation,
    ProbeError,
    Reason,
    Status,
    Target,
    bounded,
    down,
)
from elvwatch.probes.network import network_failure, reason_of
from elvwatch.probes.sdp import MAX_SDP, MediaDescription, parse_sdp

MAX_HEADER = 16384
USER_AGENT = "elvwatch"
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')
IO_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class RtspError(ProbeError):
    """The RTSP exchange failed: ``word`` starts the error's text, ``reason`` says why
    in the words rules match (from ``word`` unless given)."""

    def __init__(self, word: str, message: str, reason: Reason | None = None) -> None:
        super().__init__(f"{word}: {message}")
        self.word = word
        self.reason = reason_of(word) if reason is None else reason


class RtspOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field("/", description="stream path, e.g. /Streaming/Channels/101")
    require_video: bool = Field(True, description="fail when the SDP has no video stream")


@dataclass(frozen=True, slots=True)
class RtspDescription:
    media: list[MediaDescription]

    @property
    def video(self) -> MediaDescription | None:
        return next((m for m in self.media if m.kind == "video"), None)


async def describe(host: str, port: int, url: str, username: str | None = None,
                   password: str | None = None) -> RtspDescription:
    """OPTIONS then DESCRIBE ``url`` on host:port; RtspError on any failure."""
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADER)
    except OSError as exc:
        failure = network_failure(exc)
        raise RtspError("unreachable", f"connect to {port}: {failure.text}",
                        failure.reason) from exc
    try:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        session = _Session(reader, writer, url, where)
        status, _, _ = await session.request("OPTIONS", {})
        headers = {"Accept": "application/sdp"}
        status, answer, body = await session.request("DESCRIBE", headers)
        if status == 401 and username is not None:
            headers["Authorization"] = _authorization(
                answer.get("www-authenticate", ""), "DESCRIBE", url, username, password or "")
            status, answer, body = await session.request("DESCRIBE", headers)
        if status == 401:
            raise RtspError("authentication", "DESCRIBE refused (401)")
        if status == 404:
            raise RtspError("no stream", "stream not found (404)")
        if status != 200:
            raise RtspError("no stream", f"DESCRIBE answered {status}")
        try:
            return RtspDescription(parse_sdp(body.decode("utf-8", "replace")))
        except ValueError as exc:
            raise RtspError("malformed", str(exc)) from exc
    except IO_ERRORS as exc:
        if isinstance(exc, asyncio.LimitOverrunError):
            raise RtspError("protocol", "answer header too long") from exc
        if isinstance(exc, ValueError):
            raise RtspError("protocol", bounded(str(exc), 120) or type(exc).__name__) from exc
        failure = network_failure(exc)
        raise RtspError("protocol", failure.text, failure.reason) from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 url: str, where: str) -> None:
        self.reader, self.writer, self.url, self.cseq = reader, writer, url, 0
        self.where = where

    async def request(self, method: str,
                      headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {self.url} RTSP/1.0", f"CSeq: {self.cseq}",
                 f"User-Agent: {USER_AGENT}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("RTSP/") or not parts[1].isdigit():
            raise ValueError(f"not an RTSP answer: {bounded(status_line, 60)!r}")
        answer: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                answer[name.strip().lower()] = value.strip()
        length = int(answer.get("content-length", "0") or 0)
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        if length > MAX_SDP:
            # Refused from the header: the body is never read.
            raise RtspError("too large", f"{self.where} announced a {method} answer of "
                                         f"{length} bytes, over the {MAX_SDP}-byte limit")
        body = await self.reader.readexactly(length) if length else b""
        return int(parts[1]), answer, body


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _authorization(challenge: str, method: str, uri: str, username: str,
                   password: str) -> str:
    if challenge.lower().startswith("basic"):
        import base64
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return f"Basic {token}"
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(challenge[6:])}
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    header = (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", '
              f'uri="{uri}"')
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        header += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in params:
        header += f', opaque="{params["opaque"]}"'
    return header + f', response="{response}", algorithm=MD5'


def stream_values(found: RtspDescription, prefix: str = "rtsp") -> dict[str, float | str]:
    values: dict[str, float | str] = {f"{prefix}.streams": float(len(found.media))}
    video = found.video
    if video is not None:
        values[f"{prefix}.codec"] = bounded(video.codec, 32)
        if video.width and video.height:
            values[f"{prefix}.width"] = float(video.width)
            values[f"{prefix}.height"] = float(video.height)
    return values


async def probe_rtsp(target: Target, check: Check) -> Observation:
    options = check.options if isinstance(check.options, RtspOptions) else RtspOptions()
    port = check.port or target.ports.get("rtsp") or 554
    path = options.path if options.path.startswith("/") else "/" + options.path
    host = f"[{target.host}]" if ":" in target.host else target.host
    url = f"rtsp://{host}:{port}{path}"
    credential = target.credential
    username = credential.username if credential else None
    password = credential.password.value if credential and credential.password else None
    started = time.perf_counter()
    try:
        found = await describe(target.host, port, url, username, password)
    except RtspError as exc:
        return down(target, check, str(exc), latency=time.perf_counter() - started,
                    reason=exc.reason)
    latency = time.perf_counter() - started
    values = {"rtsp.describe_seconds": latency, **stream_values(found)}
    if options.require_video and found.video is None:
        return down(target, check, "no stream: the SDP has no video", latency, values,
                    reason=Reason.NO_STREAM)
    return Observation(target.device, check.name, Status.OK, values=values, latency=latency)


def split_rtsp_uri(uri: str) -> tuple[int, str]:
    """(port, path with query) of an rtsp:// URI; ValueError when it is not one."""
    split = urlsplit(uri.strip())
    if split.scheme.lower() not in ("rtsp", "rtsps"):
        raise ValueError(f"not an rtsp:// URI ({split.scheme or 'no scheme'})")
    path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    return split.port or 554, path

