"""Listeners on loopback that keep every byte a client sends them: the proof that a
secret did, or did not, leave the process.

With an ``upstream`` a TCP capture relays both ways, so the client talks to a real peer
(a lab camera, a broker) and goes as far as it would with a real device — past the
login, if it has one to give.  Without one it answers nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

READ_SECONDS = 10.0  # a silent listener drops a client after this long


@dataclass
class Captured:
    host: str
    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    def saw(self, secret: str) -> bool:
        return secret.encode() in self.received


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                record: bytearray | None) -> None:
    try:
        while chunk := await reader.read(65536):
            if record is not None:
                record += chunk
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tcp_capture(host: str, upstream: tuple[str, int] | None = None
                      ) -> AsyncIterator[Captured]:
    captured = Captured(host)
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        captured.connections += 1
        if upstream is None:
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                async with asyncio.timeout(READ_SECONDS):
                    while chunk := await reader.read(65536):
                        captured.received += chunk
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, up_writer, captured.received),
                                 _pump(up_reader, writer, None))
        finally:
            up_writer.close()
            writer.close()

    def spawn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # closed at the end even if its task never ran
        task = asyncio.create_task(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(spawn, host, 0)
    captured.port = server.sockets[0].getsockname()[1]
    try:
        yield captured
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        await server.wait_closed()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, captured: Captured) -> None:
        self.captured = captured

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.captured.connections += 1
        self.captured.received += data


@contextlib.asynccontextmanager
async def udp_capture(host: str) -> AsyncIterator[Captured]:
    """A UDP socket that keeps every datagram and answers none (an SNMP agent that
    says nothing: the client retries, showing the same request again)."""
    captured = Captured(host)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(captured),
                                                       local_addr=(host, 0))
    captured.port = transport.get_extra_info("sockname")[1]
    try:
        yield captured
    finally:
        transport.close()
