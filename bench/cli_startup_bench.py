"""Start-up of the command line: ``elvwatch --help`` and ``elvwatch status`` against a
running daemon, wall time per run (the process start included).

    python bench/cli_startup_bench.py [--runs 15]

A daemon watches two loopback TCP devices; ``status`` runs once with that small config
and once with config.example.yaml (every kind of check, so the options models of every
probe) pointed at the same daemon.  Prints the median and the fastest of the runs.
Bytecode is written and used as an installed program's is (a warm-up run first, even
where PYTHONDONTWRITEBYTECODE is set): compiling the sources is not start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "elvwatch.cli"]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(args: list[str], runs: int) -> tuple[float, float]:
    times = []
    subprocess.run([*COMMAND, *args], capture_output=True, cwd=ROOT, timeout=60, env=ENV)
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([*COMMAND, *args], capture_output=True, cwd=ROOT, timeout=60,
                              env=ENV)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr.decode()[-500:]}")
    return statistics.median(times), min(times)


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if json.load(r)["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the daemon did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.yaml"
        small.write_text(yaml.safe_dump({
            "http": {"listen": f"127.0.0.1:{port}"},
            "sites": [{"id": "s1", "name": "一号小区"}],
            "devices": [{"id": f"d{i}", "site": "s1", "kind": "switch", "host": "127.0.0.1",
                         "checks": [{"type": "tcp", "port": free_port()}]}
                        for i in range(2)]}, allow_unicode=True), encoding="utf-8")
        example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
        example["http"]["listen"] = f"127.0.0.1:{port}"
        big = Path(tmp) / "example.yaml"
        big.write_text(yaml.safe_dump(example, allow_unicode=True), encoding="utf-8")
        daemon = subprocess.Popen([*COMMAND, "--log-level", "warning", "run", "-c", str(small)],
                                  cwd=ROOT)
        try:
            wait_healthy(port)
            rows = [("elvwatch --help", timed(["--help"], args.runs)),
                    ("elvwatch status (2 TCP devices)",
                     timed(["status", "-c", str(small)], args.runs)),
                    ("elvwatch status (config.example.yaml)",
                     timed(["status", "-c", str(big)], args.runs))]
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    for name, (median, fastest) in rows:
        print(f"{name:<40} median {median * 1000:6.0f} ms   fastest {fastest * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
