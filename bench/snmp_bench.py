"""SNMP GET checks per second and CPU per check: elvwatch vs prometheus-snmp-exporter.

Both ask one net-snmp ``snmpd`` (started here on loopback) for the same OIDs (what
elvwatch GETs on every run with the ``system`` profile: sysDescr, sysObjectID,
sysUpTime; identification is read once per device by detection, in the warm-up) for
the same time, with the same concurrency:

* elvwatch: ``probe_snmp`` called in this process (one asyncio loop, one core);
  CPU = this process' user+system time.
* snmp_exporter: ``/snmp?module=bench&target=…`` scrapes over HTTP from a client
  in this process; CPU = the exporter process' user+system time (from /proc).

    python bench/snmp_bench.py [--seconds 10] [--concurrency 64] [--walks] [--lab-devices 50]

``--walks`` adds a run where each check also walks IF-MIB (the switch profile
without PoE, which snmpd lacks).  ``--lab-devices N`` adds a run against N simulated
PoE switches (snmpsim, one community each) with the switch profiles: the system GET
plus IF-MIB and PoE table walks, the exporter walking the same columns.  snmpsim is
pure Python and the bottleneck there: compare CPU per check, not checks per second.

Prints one line per side and the ratio.  Needs Debian ``snmpd``, ``snmp`` and
``prometheus-snmp-exporter``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes.base import Check, Credential, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_detect import SYSTEM
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_profiles import known
from elvwatch.probes.snmp_reading import walk_plan
from elvwatch.probes.snmp_session import close_engine
from tests.snmp_agents import COMMUNITY, running_snmpd

MAX_CHECKS = 1_000_000  # per side: bounds the loop whatever the machine


def bench_oids() -> list[str]:
    oids = [*SYSTEM, *(s.oid_tuple for p in known(["system"]) for s in p.scalars)]
    return [".".join(map(str, o)) for o in dict.fromkeys(oids)]


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_for(seconds: float, concurrency: int, one: object) -> tuple[int, int]:
    done = failed = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline and done + failed < MAX_CHECKS:
            if await one():  # type: ignore[operator]
                done += 1
            else:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, failed


@dataclass(frozen=True)
class Workload:
    """What both sides ask: the same agents (host, port, community), the same OIDs."""

    name: str
    agents: list[tuple[str, int, str]]
    profiles: tuple[str, ...]
    get: list[str]
    walk: list[str] = field(default_factory=list)


def table_columns(profiles: tuple[str, ...]) -> list[str]:
    return [".".join(map(str, oid)) for p in known(profiles)
            for t in p.tables for oid in walk_plan(t, frozenset())]


async def bench_elvwatch(work: Workload, seconds: float, concurrency: int) -> dict[str, float]:
    checks = [(Target(f"bench{i}", host, kind="",
                      credential=Credential("c", secrets={"community": Secret(community)})),
               Check("snmp", "snmp", timeout=5.0, port=port,
                     options=SnmpOptions(profiles=work.profiles, retries=0)))
              for i, (host, port, community) in enumerate(work.agents)]
    turn = itertools.cycle(checks)

    async def one() -> bool:
        target, check = next(turn)
        return (await probe_snmp(target, check)).status is Status.OK

    await run_for(1.0, concurrency, one)  # warm up: sockets, caches
    cpu0, t0 = self_cpu(), time.monotonic()
    done, failed = await run_for(seconds, concurrency, one)
    cpu, wall = self_cpu() - cpu0, time.monotonic() - t0
    await close_engine()
    return {"checks": done, "failed": failed, "per_second": done / wall,
            "cpu_ms_per_check": 1000 * cpu / max(done, 1), "cpu_cores": cpu / wall}


def _start_exporter(binary: str, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    with (workdir / "exporter.log").open("wb") as log:
        return subprocess.Popen([binary, f"--config.file={workdir / 'snmp.yml'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)


def exporter_config(work: Workload) -> dict[str, object]:
    # One module per community (snmp_exporter 0.21 keeps auth in the module).
    modules: dict[str, object] = {}
    for i, (_, _, community) in enumerate(work.agents):
        module: dict[str, object] = {
            "version": 2, "auth": {"community": community}, "retries": 0,
            "timeout": "5s", "max_repetitions": 25, "get": work.get,
            "metrics": [{"name": "sysUpTime", "oid": "1.3.6.1.2.1.1.3", "type": "gauge",
                         "help": "uptime"}]}
        if work.walk:
            module["walk"] = work.walk
        modules[f"bench{i}"] = module
    return modules


async def bench_exporter(work: Workload, seconds: float, concurrency: int,
                         binary: str) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="elvwatch-snmpexp-"))
    (workdir / "snmp.yml").write_text(yaml.safe_dump(exporter_config(work)), "utf-8")
    port = free_tcp_port()
    proc = _start_exporter(binary, workdir, port)
    url = f"http://127.0.0.1:{port}/snmp"
    targets = itertools.cycle([{"module": f"bench{i}", "target": f"{host}:{agent_port}"}
                               for i, (host, agent_port, _) in enumerate(work.agents)])
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            first = next(targets)
            for _ in range(100):  # up to 10 s for the exporter to listen
                try:
                    async with http.get(url, params=first) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError((workdir / "exporter.log").read_text())

            async def one() -> bool:
                async with http.get(url, params=next(targets)) as resp:
                    body = await resp.text()
                    return resp.status == 200 and "sysUpTime" in body

            await run_for(1.0, concurrency, one)
            cpu0, t0 = cpu_of(proc.pid), time.monotonic()
            done, failed = await run_for(seconds, concurrency, one)
            cpu, wall = cpu_of(proc.pid) - cpu0, time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return {"checks": done, "failed": failed, "per_second": done / wall,
            "cpu_ms_per_check": 1000 * cpu / max(done, 1), "cpu_cores": cpu / wall}


def line(name: str, r: dict[str, float]) -> str:
    return (f"{name:<14} {r['per_second']:8.0f} checks/s  {r['cpu_ms_per_check']:6.3f} ms "
            f"CPU/check (= {1000 / max(r['cpu_ms_per_check'], 1e-9):6.0f} checks/s per "
            f"core)  {r['cpu_cores']:4.2f} cores  ({r['checks']:.0f} ok, "
            f"{r['failed']:.0f} failed)")


async def compare(work: Workload, args: argparse.Namespace, exporter: str | None) -> None:
    print(f"{work.name}: {len(work.agents)} agent(s), {len(work.get)} OIDs per GET, "
          f"{len(work.walk)} columns walked, {args.seconds:g}s per side, "
          f"concurrency {args.concurrency}", flush=True)
    ours = await bench_elvwatch(work, args.seconds, args.concurrency)
    print(line("elvwatch", ours), flush=True)
    if exporter is None:
        print("prometheus-snmp-exporter not installed: no comparison")
        return
    theirs = await bench_exporter(work, args.seconds, args.concurrency, exporter)
    print(line("snmp_exporter", theirs))
    print(f"ratio elvwatch/snmp_exporter: {ours['per_second'] / theirs['per_second']:.2f}x"
          f" checks/s, {ours['cpu_ms_per_check'] / theirs['cpu_ms_per_check']:.2f}x "
          "CPU per check", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--lab-devices", type=int, default=0,
                        help="also poll N simulated PoE switches (snmpsim, one community "
                             "each): system GET + IF-MIB and PoE table walks")
    parser.add_argument("--walks", action="store_true",
                        help="also a GET + IF-MIB table walk per check against snmpd")
    # snmpsim answers a few hundred requests/s at best: more in flight only queues
    # until the checks time out.
    parser.add_argument("--lab-concurrency", type=int, default=4)
    args = parser.parse_args()
    exporter = shutil.which("prometheus-snmp-exporter")
    with running_snmpd() as agent:
        await compare(Workload("one snmpd, GET", [(agent.host, agent.port, COMMUNITY)],
                               ("system",), bench_oids()), args, exporter)
        if args.walks:
            await compare(Workload("one snmpd, GET + IF-MIB walk",
                                   [(agent.host, agent.port, COMMUNITY)], ("system", "if"),
                                   bench_oids(), table_columns(("if",))), args, exporter)
    if args.lab_devices > 0:
        names = {f"lab-sw-{i}": "switch" for i in range(args.lab_devices)}
        with SnmpLab(devices=names) as lab:
            agents = [(lab.host, lab.port, name) for name in names]
            await compare(Workload("lab switches, GET + walks", agents,
                                   ("system", "if", "poe"), bench_oids(),
                                   table_columns(("if", "poe"))),
                          argparse.Namespace(seconds=args.seconds,
                                             concurrency=args.lab_concurrency), exporter)


if __name__ == "__main__":
    asyncio.run(main())
