"""A small SIP responder (UDP and TCP) standing in for a door station in the demo.

It answers every request with one final response (``code``/``reason``, 200 OK by
default), echoing Via, From, To, Call-ID and CSeq as RFC 3261 asks.  ``silent`` makes it
drop requests (a hung SIP stack).

With ``registrar=True`` it stands in for a site's SIP server instead: REGISTER adds the
To user to its table (``Expires: 0`` removes it), ``register()``/``unregister()`` do the
same from code, and a request for ``sip:USER@…`` answers 200 when USER is registered
(as if routed to the station) and 404 Not Found when not, as a proxy/registrar does.

The tests use sipp as the peer; this is for the demo
and for anyone without sipp::

    python -m elvwatch.lab.sip --listen 127.0.0.1:5060 [--code 200] [--registrar --register 8101]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import cast

READY_PREFIX = "sip lab ready:"
MAX_REQUEST = 8192
_ECHO = ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")


def _request_line(request: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, request-URI user (or "") and lower-cased headers of a SIP request."""
    head = request[:MAX_REQUEST].split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    lines = head.split("\r\n")
    method, uri = ([*lines[0].split(" "), "", ""])[:2]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return method, _user_of(uri), headers


def _user_of(uri: str) -> str:
    uri = uri.strip().strip("<>").split(">", 1)[0].lstrip("<")
    if "sip:" not in uri:
        return ""
    rest = uri.split("sip:", 1)[1]
    return rest.split("@", 1)[0] if "@" in rest else ""


def answer(request: bytes, code: int, reason: str) -> bytes | None:
    """The response to ``request``, or None if it is not a SIP request."""
    head = request[:MAX_REQUEST].split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    lines = head.split("\r\n")
    if len(lines[0].split(" ")) != 3 or not lines[0].endswith("SIP/2.0"):
        return None
    echoed = [line for line in lines[1:]
              if line.split(":", 1)[0].strip().lower() in _ECHO]
    out = [f"SIP/2.0 {code} {reason}", *echoed, "Server: elvwatch-lab",
           "Content-Length: 0"]
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class SipResponder:
    def __init__(self, host: str = "127.0.0.1", port: int = 5060, code: int = 200,
                 reason: str = "OK", *, registrar: bool = False) -> None:
        self.host, self.port, self.code, self.reason = host, port, code, reason
        self.silent = False
        self.requests = 0
        # The location table of a registrar: registered users (None: not a registrar).
        self.registered: set[str] | None = set() if registrar else None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, self.port))
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None

    def register(self, user: str) -> None:
        assert self.registered is not None, "not a registrar"
        self.registered.add(user)

    def unregister(self, user: str) -> None:
        assert self.registered is not None, "not a registrar"
        self.registered.discard(user)

    def respond(self, request: bytes) -> bytes | None:
        self.requests += 1
        if self.silent:
            return None
        if self.registered is None:
            return answer(request, self.code, self.reason)
        method, user, headers = _request_line(request)
        if method == "REGISTER":
            who = _user_of(headers.get("to", headers.get("t", "")))
            expires = headers.get("expires", "")
            if "expires=0" in headers.get("contact", headers.get("m", "")).replace(" ", "") \
                    or expires == "0":
                self.registered.discard(who)
            elif who:
                self.registered.add(who)
            return answer(request, 200, "OK")
        if user and user not in self.registered:
            return answer(request, 404, "Not Found")
        return answer(request, self.code, self.reason)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                response = self.respond(request)
                if response:
                    writer.write(response)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipResponder) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        response = self.owner.respond(data)
        if response and self.transport is not None:
            self.transport.sendto(response, addr)


async def _serve(host: str, port: int, code: int, registered: Sequence[str] | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    responder = SipResponder(host, port, code, "OK" if code == 200 else "Lab",
                             registrar=registered is not None)
    for user in registered or ():
        responder.register(user)
    await responder.start()
    try:
        role = f" registrar users={','.join(registered)}" if registered is not None else ""
        print(f"{READY_PREFIX} {host}:{port} udp+tcp{role}", flush=True)
        await stop.wait()
    finally:
        await responder.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elvwatch.lab.sip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:5060", help="HOST:PORT (loopback)")
    parser.add_argument("--code", type=int, default=200, help="final response code")
    parser.add_argument("--registrar", action="store_true",
                        help="act as the site's SIP server (REGISTER, 404 for unknown users)")
    parser.add_argument("--register", action="append", default=[], metavar="USER",
                        help="a user registered from the start (repeatable; implies "
                             "--registrar)")
    args = parser.parse_args(argv)
    host, _, port = str(args.listen).rpartition(":")
    if not host.startswith("127.") and host != "::1":
        parser.error("the lab listens on loopback only")
    if not port.isdigit() or not 0 < int(port) < 65536 or not 200 <= args.code <= 699:
        parser.error("--listen must be HOST:PORT and --code 200-699")
    with contextlib.suppress(KeyboardInterrupt):
        registered = list(args.register) if args.registrar or args.register else None
        asyncio.run(_serve(host, int(port), args.code, registered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
