"""``python -m elvwatch.lab camera`` and ``python -m elvwatch.lab snmp``: one protocol
simulator each, until SIGINT/SIGTERM, for trying a probe by hand (the other protocols
have their own ``python -m elvwatch.lab.modbus|sip|mqtt``, also reachable as
``python -m elvwatch.lab modbus …``).

Both print one ``… lab ready: …`` line once they answer.  The camera's password comes
from ``ELVWATCH_LAB_CAMERA_PASSWORD`` (default ``secret``: a lab camera, not a real one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.lab.rtsp import DEFAULT_STREAMS, RtspResponder
from elvwatch.lab.snmp import SnmpLab

CAMERA_READY = "camera lab ready:"
SNMP_READY = "snmp lab ready:"
PASSWORD_ENV = "ELVWATCH_LAB_CAMERA_PASSWORD"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    camera = commands.add_parser("camera", help="an ONVIF camera with its RTSP server")
    camera.add_argument("--host", default="127.0.0.1", help="loopback address")
    camera.add_argument("--onvif-port", type=int, default=8080)
    camera.add_argument("--rtsp-port", type=int, default=8554)
    camera.add_argument("--user", default="admin")
    camera.add_argument("--clock-offset", type=float, default=0.0,
                        help="seconds the camera's clock is off (drift)")
    snmp = commands.add_parser("snmp", help="snmpsim serving a PoE switch, an NVR and a UPS "
                                            "(communities lab-switch, lab-nvr, lab-ups)")
    snmp.add_argument("--host", default="127.0.0.1", help="loopback address")
    snmp.add_argument("--port", type=int, default=1161)
    for name in ("modbus", "sip", "mqtt"):
        commands.add_parser(name, add_help=False,
                            help=f"python -m elvwatch.lab.{name} (arguments passed on; "
                                 "--help there)")


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve_camera(args: argparse.Namespace) -> int:
    password = os.environ.get(PASSWORD_ENV, "secret")
    rtsp = RtspResponder(args.host, args.rtsp_port, args.user, password)
    onvif = OnvifSimulator(args.host, args.onvif_port, args.user, password,
                           rtsp_port=args.rtsp_port, clock_offset=args.clock_offset)
    await rtsp.start()
    try:
        await onvif.start()
        try:
            streams = " ".join(f"rtsp://{args.host}:{rtsp.port}{p}" for p in DEFAULT_STREAMS)
            print(f"{CAMERA_READY} onvif {onvif.base}/onvif/device_service user={args.user} "
                  f"(password from {PASSWORD_ENV}) streams {streams}", flush=True)
            await _until_signalled()
        finally:
            await onvif.stop()
    finally:
        await rtsp.stop()
    return 0


async def serve_snmp(args: argparse.Namespace) -> int:
    lab = SnmpLab(host=args.host, port=args.port)
    await asyncio.to_thread(lab.start)
    try:
        print(f"{SNMP_READY} udp {args.host}:{lab.port} communities "
              f"{','.join(lab.devices)}", flush=True)
        await _until_signalled()
    finally:
        await asyncio.to_thread(lab.stop)
    return 0


def delegate(name: str, argv: Sequence[str]) -> int:
    """Run ``python -m elvwatch.lab.<name>`` with ``argv``."""
    if name == "modbus":
        from elvwatch.lab.modbus import main as modbus_main

        return modbus_main(argv)
    if name == "sip":
        from elvwatch.lab.sip import main as sip_main

        return sip_main(argv)
    from elvwatch.lab.mqtt import main as mqtt_main

    mqtt_main(argv)
    return 0
