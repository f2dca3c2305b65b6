"""A simulated RTSP server on loopback: OPTIONS and DESCRIBE with digest auth.

Paths map to streams (``/Streaming/Channels/101`` → H.264 1920x1080, …); DESCRIBE of
an unknown path answers 404, ``no_stream=True`` makes every path 404, ``silent=True``
accepts connections and never answers (a hung encoder), ``huge_sdp=True`` answers
DESCRIBE with a body of ``HUGE_SDP_BYTES`` (announced, then written until the client
hangs up; ``huge_sent`` counts what the socket took).  The SDP is what cameras
send: H.264 with ``sprop-parameter-sets`` (an SPS encoding the resolution) and
``a=framesize``, or H.265 with ``a=framesize`` only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
from dataclasses import dataclass

from elvwatch.lab.devices import LOOPBACK
from elvwatch.lab.digest import DigestRealm

MAX_REQUEST = 16384
HUGE_SDP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Stream:
    codec: str          # "H264" or "H265"
    width: int
    height: int
    framesize: bool = True   # write a=framesize (else H.264 size only in the SPS)


DEFAULT_STREAMS = {
    "/Streaming/Channels/101": Stream("H264", 1920, 1080),
    "/Streaming/Channels/201": Stream("H264", 640, 360, framesize=False),
    "/Streaming/Channels/301": Stream("H265", 2560, 1440),
}


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
        # Emulation prevention (H.264 7.4.1), as an encoder writes it.
        out, zeros = bytearray(), 0
        for byte in raw:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def h264_sps(width: int, height: int) -> bytes:
    """A Main-profile (77) SPS for width x height, cropping to sizes not /16."""
    bits = _BitWriter()
    bits.u(8, 77)
    bits.u(8, 0)
    bits.u(8, 40)
    bits.ue(0)          # sps id
    bits.ue(0)          # log2_max_frame_num_minus4
    bits.ue(0)          # pic_order_cnt_type
    bits.ue(0)          # log2_max_pic_order_cnt_lsb_minus4
    bits.ue(1)          # max_num_ref_frames
    bits.u(1, 0)
    mbs_w, mbs_h = -(-width // 16), -(-height // 16)
    bits.ue(mbs_w - 1)
    bits.ue(mbs_h - 1)
    bits.u(1, 1)        # frame_mbs_only
    bits.u(1, 1)        # direct_8x8_inference
    crop_right, crop_bottom = (mbs_w * 16 - width) // 2, (mbs_h * 16 - height) // 2
    if crop_right or crop_bottom:
        bits.u(1, 1)
        for value in (0, crop_right, 0, crop_bottom):
            bits.ue(value)
    else:
        bits.u(1, 0)
    bits.u(1, 0)        # vui_parameters_present
    return b"\x67" + bits.rbsp()


def sdp_for(host: str, path: str, stream: Stream) -> str:
    lines = ["v=0", f"o=- 1 1 IN IP4 {host}", "s=Media Presentation", "c=IN IP4 0.0.0.0",
             "t=0 0", "a=control:*", "a=range:npt=now-"]
    if stream.codec == "H264":
        sps = base64.b64encode(h264_sps(stream.width, stream.height)).decode()
        lines += ["m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000",
                  f"a=fmtp:96 profile-level-id=4d0028;packetization-mode=1;"
                  f"sprop-parameter-sets={sps},aO48gA=="]
    else:
        lines += ["m=video 0 RTP/AVP 98", "a=rtpmap:98 H265/90000"]
    if stream.framesize:
        pt = 96 if stream.codec == "H264" else 98
        lines.append(f"a=framesize:{pt} {stream.width}-{stream.height}")
    lines += ["a=control:trackID=1", "m=audio 0 RTP/AVP 8", "a=rtpmap:8 PCMA/8000",
              "a=control:trackID=2"]
    return "\r\n".join(lines) + "\r\n"


class RtspResponder:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, username: str = "admin",
                 password: str = "secret", streams: dict[str, Stream] | None = None) -> None:
        if ipaddress.ip_address(host) not in LOOPBACK:
            raise ValueError(f"the lab binds loopback addresses only, not {host!r}")
        self.host, self.port = host, port
        self.streams = dict(DEFAULT_STREAMS if streams is None else streams)
        self.realm = DigestRealm("IP Camera", username, password)
        self.no_stream = False
        self.silent = False
        self.huge_sdp = False
        self.huge_sent: list[int] = []      # per huge DESCRIBE body, once ended
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._also: list[asyncio.Server] = []
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  limit=MAX_REQUEST, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def listen_also(self, host: str) -> None:
        """Answer on ``host`` too (same port, same streams): one responder for many
        camera addresses in a benchmark."""
        if ipaddress.ip_address(host) not in LOOPBACK:
            raise ValueError(f"the lab binds loopback addresses only, not {host!r}")
        self._also.append(await asyncio.start_server(
            self._serve, host, self.port, limit=MAX_REQUEST, reuse_address=True))

    async def stop(self) -> None:
        for server in self._also:
            server.close()
        self._also.clear()
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RtspResponder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if self.silent:
                    continue
                answer, owed = self._answer(head.decode("latin-1"))
                writer.write(answer)
                await writer.drain()
                if owed:
                    await self._send_blanks(writer, owed)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _send_blanks(self, writer: asyncio.StreamWriter, count: int) -> None:
        sent, chunk = 0, b" " * 65536
        try:
            while sent < count:
                piece = chunk[: count - sent]
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
        finally:
            self.huge_sent.append(sent)

    def _answer(self, head: str) -> tuple[bytes, int]:
        """The reply, and how many body bytes are still owed after it (huge_sdp)."""
        request, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        method, url = ([*request.split(" "), "", ""])[:2]
        self.requests.append(method)
        cseq = headers.get("cseq", "0")
        if method == "OPTIONS":
            return _reply(cseq, 200, "OK", {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, "
                                                     "TEARDOWN, GET_PARAMETER"}), 0
        if method != "DESCRIBE":
            return _reply(cseq, 405, "Method Not Allowed"), 0
        if not self.realm.verify(headers.get("authorization"), "DESCRIBE"):
            return _reply(cseq, 401, "Unauthorized",
                          {"WWW-Authenticate": self.realm.challenge()}), 0
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
        stream = None if self.no_stream else self.streams.get(path.split("?")[0])
        if stream is None:
            return _reply(cseq, 404, "Not Found"), 0
        body = sdp_for(self.host, path, stream).encode()
        headers = {"Content-Type": "application/sdp", "Content-Base": url + "/"}
        if self.huge_sdp:
            reply = _reply(cseq, 200, "OK", {**headers, "Content-Length": str(HUGE_SDP_BYTES)})
            return reply + body, HUGE_SDP_BYTES - len(body)
        return _reply(cseq, 200, "OK", headers, body), 0


def _reply(cseq: str, status: int, reason: str, headers: dict[str, str] | None = None,
           body: bytes = b"") -> bytes:
    lines = [f"RTSP/1.0 {status} {reason}", f"CSeq: {cseq}", "Server: elvwatch-lab"]
    headers = {"Content-Length": str(len(body)), **(headers or {})}
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
