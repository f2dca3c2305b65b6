"""The ONVIF WSDLs are parsed up front (before the daemon freezes its long-lived heap),
without touching the network, and a config with ONVIF checks makes the daemon do it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import yaml

import elvwatch.probes.onvif_wsdl as onvif_wsdl
from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from tests.test_daemon import free_port


def _parsed() -> set[str]:
    import onvif.client

    cache: dict[str, Any] = onvif.client._DOCUMENT_CACHE   # the library's own cache
    return {Path(url).name for url in cache}


async def test_wsdls_are_parsed_once_without_a_device() -> None:
    # Port 9 on loopback has no listener: any request would fail the call.
    await onvif_wsdl.load_wsdls()
    assert {"devicemgmt.wsdl", "media.wsdl", "events.wsdl", "recording.wsdl"} <= _parsed()
    await onvif_wsdl.load_wsdls()          # a second call is a no-op


async def test_daemon_with_onvif_checks_parses_wsdls_before_freezing_its_heap(
        tmp_path: Path, monkeypatch: Any) -> None:
    import elvwatch.daemon.app
    import elvwatch.daemon.reload

    order: list[str] = []
    load, settle = elvwatch.daemon.reload.load_wsdls, elvwatch.daemon.app.settle_heap

    async def loading() -> None:
        order.append("load_wsdls")
        await load()

    def settling(*, collect: bool) -> None:
        order.append("settle_heap")
        settle(collect=collect)

    monkeypatch.setattr(elvwatch.daemon.reload, "load_wsdls", loading)  # a (re)load's plan
    monkeypatch.setattr(elvwatch.daemon.app, "settle_heap", settling)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "sites": [{"id": "s", "name": "S", "contract": {"start": "2026-01-01"}}],
        "devices": [{"id": "cam", "site": "s", "kind": "camera", "host": "127.0.0.1",
                     "checks": [{"type": "onvif", "port": free_port(), "interval": 60}]}]}),
        encoding="utf-8")
    app = App(load_config(path))
    await app.start()
    try:
        assert order == ["load_wsdls", "settle_heap"]
        assert gc.get_freeze_count() > 0
    finally:
        await app.stop()
