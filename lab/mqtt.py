"""Simulated MQTT devices publishing to a real broker (Mosquitto, see lab.mosquitto).

A :class:`SimDevice` speaks just enough MQTT 3.1.1 (CONNECT with a Last Will, PUBLISH
QoS 0, PINGREQ, DISCONNECT) over a plain socket, so that it can do what a real device
does and a library client hides:

- ``start()``     connect with a Will on its availability topic, publish ``online``
                  (retained) and start heartbeats;
- ``set(...)``    publish a state change;
- ``silence()``   keep the connection but stop heartbeats (a hung controller);
- ``crash()``     drop the TCP connection without DISCONNECT: the broker publishes the
                  Will (``offline``), as when a device loses power;
- ``flood()``     write many PUBLISH packets in one go (benchmarks, queue overflow).

:func:`access_door` builds one in the ``access_control`` profile's layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterable, Sequence

# A device that sends nothing for 1.5 x keepalive is cut off by the broker; pings go
# out at half of it so a silenced (but connected) device stays connected.
KEEPALIVE = 30
CONNECT_TIMEOUT = 5.0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def publish_packet(topic: str, payload: bytes | str, retain: bool = False) -> bytes:
    body = _str(topic) + (payload.encode() if isinstance(payload, str) else payload)
    return bytes([0x30 | (1 if retain else 0)]) + _varint(len(body)) + body


def connect_packet(client_id: str, *, will: tuple[str, bytes] | None = None,
                   username: str | None = None, password: str | None = None,
                   keepalive: int = KEEPALIVE) -> bytes:
    flags = 0x02  # clean session
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | 0x20  # will, retained
        payload += _str(will[0]) + _str(will[1])
    if username is not None:
        flags |= 0x80
        payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return bytes([0x10]) + _varint(len(body)) + body


class SimDevice:
    def __init__(self, host: str, port: int, client_id: str, *,
                 availability_topic: str | None = None, heartbeat_topic: str | None = None,
                 heartbeat_seconds: float = 1.0, username: str | None = None,
                 password: str | None = None) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.availability_topic = availability_topic
        self.heartbeat_topic = heartbeat_topic
        self.heartbeat_seconds = heartbeat_seconds
        self._login = (username, password)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._beating = asyncio.Event()
        self.heartbeats = 0

    async def start(self, *, heartbeats: bool = True) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT)
        self._reader, self._writer = reader, writer
        will = (self.availability_topic, b"offline") if self.availability_topic else None
        writer.write(connect_packet(self.client_id, will=will, username=self._login[0],
                                    password=self._login[1]))
        connack = await asyncio.wait_for(reader.readexactly(4), CONNECT_TIMEOUT)
        if connack[0] != 0x20 or connack[3] != 0:
            await self.close()
            raise ConnectionRefusedError(f"broker refused {self.client_id}: code {connack[3]}")
        if self.availability_topic:
            await self.publish(self.availability_topic, "online", retain=True)
        if heartbeats:
            self._beating.set()
        self._tasks = [asyncio.create_task(self._drain(), name=f"{self.client_id} reader"),
                       asyncio.create_task(self._ping(), name=f"{self.client_id} ping"),
                       asyncio.create_task(self._beat(), name=f"{self.client_id} beat")]

    async def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        if self._writer is None:
            raise ConnectionError(f"{self.client_id} is not connected")
        self._writer.write(publish_packet(topic, payload, retain))
        await self._writer.drain()

    async def flood(self, messages: Iterable[tuple[str, bytes | str]]) -> int:
        """Publish every (topic, payload) back to back; returns how many."""
        if self._writer is None:
            raise ConnectionError(f"{self.client_id} is not connected")
        count = 0
        chunk = bytearray()
        for topic, payload in messages:
            chunk += publish_packet(topic, payload)
            count += 1
            if len(chunk) > 65536:
                self._writer.write(bytes(chunk))
                chunk.clear()
                await self._writer.drain()
        self._writer.write(bytes(chunk))
        await self._writer.drain()
        return count

    def silence(self) -> None:
        """Stop heartbeats, stay connected."""
        self._beating.clear()

    def resume(self) -> None:
        self._beating.set()

    async def crash(self) -> None:
        """Drop the connection without DISCONNECT: the broker publishes the Will."""
        if self._writer is not None:
            self._writer.transport.abort()
        await self._teardown()

    async def close(self) -> None:
        """A clean goodbye: DISCONNECT, so the broker does not publish the Will."""
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(OSError):
                self._writer.write(b"\xe0\x00")
                await self._writer.drain()
        await self._teardown()

    async def _teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        self._tasks = []
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _drain(self) -> None:
        # PINGRESPs and anything else the broker sends: read and ignore, so buffers
        # never fill.
        assert self._reader is not None
        while await self._reader.read(4096):
            pass

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE / 2)
            if self._writer is not None:
                self._writer.write(b"\xc0\x00")

    async def _beat(self) -> None:
        while True:
            await self._beating.wait()
            if self.heartbeat_topic:
                await self.publish(self.heartbeat_topic, "1")
                self.heartbeats += 1
            await asyncio.sleep(self.heartbeat_seconds)


def access_door(host: str, port: int, base: str, *, heartbeat_seconds: float = 1.0,
                username: str | None = None, password: str | None = None) -> SimDevice:
    """A door controller in the ``access_control`` profile layout under ``base``."""
    return SimDevice(host, port, "sim-" + base.replace("/", "-")[-40:],
                     availability_topic=f"{base}/availability",
                     heartbeat_topic=f"{base}/heartbeat",
                     heartbeat_seconds=heartbeat_seconds, username=username, password=password)


async def _demo(host: str | None, port: int | None, doors: int, seconds: float,
                crash_after: float | None) -> None:
    """Run ``doors`` simulated door controllers (on a fresh Mosquitto unless a broker is
    given) for ``seconds``; the first one crashes after ``crash_after`` seconds."""
    from elvwatch.lab.mosquitto import MosquittoServer

    server = None
    if host is None or port is None:
        server = MosquittoServer()
        await server.start()
        host, port = server.host, server.port
    print(f"broker mqtt://{host}:{port}  doors site/lab/door/1..{doors}", flush=True)
    bases = [f"site/lab/door/{i}" for i in range(1, doors + 1)]
    sims = [access_door(host, port, base) for base in bases]
    try:
        for sim, base in zip(sims, bases, strict=True):
            await sim.start()
            await sim.publish(f"{base}/state", "closed", retain=True)
        if crash_after is not None and crash_after < seconds:
            await asyncio.sleep(crash_after)
            await sims[0].crash()
            print("door 1 crashed (its Last Will says offline)", flush=True)
            seconds -= crash_after
        await asyncio.sleep(seconds)
    finally:
        for sim in sims:
            await sim.close()
        if server is not None:
            await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Simulated MQTT door controllers.")
    parser.add_argument("--broker", help="HOST:PORT of a running broker (default: start one)")
    parser.add_argument("--doors", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--crash-after", type=float, default=None)
    args = parser.parse_args(argv)
    host, port = None, None
    if args.broker:
        host, _, port_text = args.broker.rpartition(":")
        port = int(port_text)
    asyncio.run(_demo(host, port, max(1, min(args.doors, 1000)),
                      min(max(args.seconds, 0.0), 86_400.0), args.crash_after))


if __name__ == "__main__":
    main()
