"""Parse the ONVIF WSDLs up front, before the daemon freezes its long-lived heap.

onvif-zeep-async parses each bundled WSDL on first use and keeps the result for the
life of the process (~66,000 objects, ~30 MiB for the four services we call).  Parsed
by the first poll, that heap sits in the collector's oldest generation, where every
full collection walks it again along with the garbage the per-poll clients left:
``bench/onvif_bench.py`` saw single pauses of 0.15-0.34 s on an idle machine and 1.2 s
on a busy one, and every in-flight poll waits them out.  Parsed here, before
``elvwatch.daemon.app.settle_heap`` freezes what the configuration keeps alive, it is out of
the collector's reach (longest full collection then 10-17 ms).  No network: the
services are built against a loopback address that is never contacted.
"""

from __future__ import annotations

from elvwatch.probes.onvif_client import close_camera, new_camera

# The services the onvif check and the events source create (pullpoint and
# subscription share the events WSDL).
_SERVICES = {
    "http://www.onvif.org/ver10/media/wsdl": "media",
    "http://www.onvif.org/ver10/events/wsdl": "events",
    "http://www.onvif.org/ver10/recording/wsdl": "recording",
}
ONVIF_CHECK_TYPES = frozenset({"onvif", "onvif_events"})
_loaded = False


async def load_wsdls() -> None:
    """Parse the WSDLs our ONVIF checks use, once per process (later calls return)."""
    global _loaded
    if _loaded:
        return
    camera = new_camera("127.0.0.1", 9, None, None)
    try:
        for namespace in _SERVICES:
            camera.xaddrs[namespace] = "http://127.0.0.1:9/onvif/unused"
        await camera.create_devicemgmt_service()
        for name in _SERVICES.values():
            await camera.create_onvif_service(name)
    finally:
        await close_camera(camera)
    _loaded = True
