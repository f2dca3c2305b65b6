"""A throwaway Mosquitto broker on a loopback port, for the lab, the tests and the bench.

``MosquittoServer`` writes a config into a temporary directory, starts ``mosquitto -c``
and waits until the port accepts connections.  With ``users`` it adds a password file
(made by ``mosquitto_passwd -b``) and refuses anonymous clients; with ``tls`` (certificate
and key files) the listener speaks TLS only.  ``restart()`` stops
and starts it on the same port (a broker restart mid-run); ``stop()`` always reaps the
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

# Mosquitto starts in well under a second; this bounds a broken install.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class MosquittoMissing(RuntimeError):
    """mosquitto or mosquitto_passwd is not installed (Debian package ``mosquitto``)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 users: Mapping[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.users = dict(users or {})
        # (certificate chain PEM, private key PEM): the listener speaks TLS only.
        self.tls = tls
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("mosquitto") is not None and \
            shutil.which("mosquitto_passwd") is not None

    async def start(self) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise MosquittoMissing("mosquitto is not installed (apt-get install mosquitto)")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="elvwatch-mosquitto-")
            await self._write_config(Path(self._dir.name))
        conf = Path(self._dir.name) / "mosquitto.conf"
        self._proc = await asyncio.create_subprocess_exec(
            binary, "-c", str(conf), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await self._wait_ready()

    async def _write_config(self, folder: Path) -> None:
        lines = [f"listener {self.port} {self.host}", "persistence false", "log_dest none"]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to the 'mosquitto' user and could then not
            # read the password file in our private temp dir.
            lines.append("user root")
        if self.tls is not None:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        if self.users:
            passwd = shutil.which("mosquitto_passwd")
            if passwd is None:
                raise MosquittoMissing("mosquitto_passwd is not installed")
            pwfile = folder / "passwd"
            for i, (user, password) in enumerate(self.users.items()):
                args = ["-b", *(["-c"] if i == 0 else []), str(pwfile), user, password]
                proc = await asyncio.create_subprocess_exec(
                    passwd, *args, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE)
                _, err = await proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"mosquitto_passwd failed: {err.decode()[:200]}")
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise TimeoutError(f"mosquitto did not listen on {self.host}:{self.port}")

    async def kill(self) -> None:
        """Stop the broker process (the temp dir stays, so ``start`` can follow)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self, pause: float = 0.0) -> None:
        await self.kill()
        if pause:
            await asyncio.sleep(pause)
        await self.start()

    async def stop(self) -> None:
        await self.kill()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self._dir.cleanup()
            self._dir = None

    async def __aenter__(self) -> MosquittoServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
