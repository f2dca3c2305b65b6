"""MQTT messages per second processed end to end into Observations, and CPU per message.

Starts a Mosquitto on a free loopback port, an MqttManager with ``--devices`` checks
(one topic each, JSON payload read by json_path), and a publisher in a separate process
that floods ``--messages`` messages round-robin over the devices.  Reports:

- throughput: messages turned into Observations per wall-clock second;
- CPU per message of the daemon process (``time.process_time``: the publisher and the
  broker are other processes), and the one-core capacity that implies (1 / CPU per
  message) — the figure to compare with the 10,000/s target, since wall time on a
  shared machine also measures the neighbours;
- messages dropped by the bounded queue (should be 0) and broker CPU.

Bounded: at most 1,000,000 messages and ``--timeout`` seconds.

    python bench/mqtt_bench.py --messages 50000 --devices 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, ROOT)

from elvwatch.lab.mosquitto import MosquittoServer  # noqa: E402
from elvwatch.probes.base import Check, Observation, Target  # noqa: E402
from elvwatch.probes.mqtt import MqttCheckOptions, MqttManager, MqttSettings  # noqa: E402

MAX_MESSAGES = 1_000_000

PUBLISHER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from elvwatch.lab.mqtt import SimDevice
async def main():
    dev = SimDevice("127.0.0.1", {port}, "bench-publisher")
    await dev.start(heartbeats=False)
    await dev.flood((f"bench/dev{{i % {devices}}}/state", b'{{"v": %d, "ok": true}}' % i)
                    for i in range({messages}))
    await asyncio.sleep(0.5)
    await dev.close()
asyncio.run(main())
"""


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(messages: int, devices: int, limit_seconds: float) -> int:
    async with MosquittoServer() as broker:
        emitted = 0

        def emit(obs: Observation) -> None:
            nonlocal emitted
            emitted += 1

        settings = MqttSettings.model_validate({
            "brokers": {"bench": {"host": broker.host, "port": broker.port}},
            "queue_size": 10_000})
        manager = MqttManager(settings, {}, emit)
        targets = []
        for i in range(devices):
            params = {"topic": f"bench/dev{i}/state", "json_path": "v", "max_age": 600}
            targets.append((Target(f"dev{i}", "127.0.0.1"),
                            Check("state", "mqtt", params=params,
                                  options=MqttCheckOptions.model_validate(params))))
        await manager.start()
        await manager.update(targets)
        connection = manager.brokers["bench"]
        for _ in range(500):  # 10 s
            if connection.connected:
                break
            await asyncio.sleep(0.02)
        if not connection.connected:
            print("broker did not connect", file=sys.stderr)
            await manager.stop()
            return 1
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUBLISHER.format(root=ROOT, port=broker.port,
                                                   devices=devices, messages=messages))
        assert broker._proc is not None
        broker_cpu0 = process_cpu(broker._proc.pid)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        first: float | None = None
        deadline = time.monotonic() + limit_seconds
        while True:
            if connection.received + connection.dropped >= messages or \
                    time.monotonic() > deadline:
                break
            if first is None and connection.received:
                first = time.perf_counter()
            await asyncio.sleep(0.005)
        wall1, cpu1 = time.perf_counter(), time.process_time()
        broker_cpu = process_cpu(broker._proc.pid) - broker_cpu0
        await publisher.wait()
        await manager.stop()

    done = connection.received
    wall = wall1 - (first or wall0)
    cpu = cpu1 - cpu0
    print(f"messages sent        {messages}")
    print(f"messages processed   {done}  (observations emitted: {emitted})")
    print(f"messages dropped     {connection.dropped}")
    print(f"wall time            {wall:.2f} s  -> {done / wall:,.0f} msg/s end to end")
    print(f"daemon CPU           {cpu:.2f} s  -> {cpu / max(done, 1) * 1e6:.1f} µs/msg "
          f"-> {done / cpu:,.0f} msg/s per core")
    print(f"broker CPU           {broker_cpu:.2f} s")
    print(f"load average         {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0 if done == messages else 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    messages = max(1, min(args.messages, MAX_MESSAGES))
    return asyncio.run(run(messages, max(1, args.devices), min(args.timeout, 600.0)))


if __name__ == "__main__":
    raise SystemExit(main())
