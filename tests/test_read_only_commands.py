"""The commands that read the store — status, tickets list/show, report, brief, link —
work with a config whose device secrets are not set in the caller's environment: the
demo's own config, with the commands its banner prints."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from elvwatch.cli.demo import ENV_PREFIX, SITE, demo_config, read_only_commands
from elvwatch.cli.main import main
from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.config.terms import site_terms
from elvwatch.daemon.app import archive_entry
from elvwatch.lab.community import Community, Secrets
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store
from tests.test_daemon import free_port

SECRETS = Secrets(camera_user="admin", camera_password="unused",
                  snmp_communities={d: "unused" for d in ("core-sw", "poe-sw-1", "nvr-1",
                                                          "ups-1")},
                  mqtt_user="demo", mqtt_password="unused")


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's config (never started: only its file and store), no secrets set."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    token = tmp_path / "token"
    token.write_text("demo-token-for-links\n")
    community = Community("127.44.0.", SECRETS, snmp=True, mqtt=False)
    config = demo_config(f"127.0.0.1:{free_port()}", community, token)
    config["storage"] = {"url": f"sqlite+aiosqlite:///{tmp_path / 'elvwatch.db'}"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        loaded = load_config(path, secrets=False)
        terms = site_terms(loaded)
        async with await Store.open(loaded.storage_url) as store:
            await store.sync_archive([archive_entry(d) for d in loaded.devices.values()],
                                     datetime.now(UTC))
            await TicketManager(store, lambda: terms).tick(time.time())  # work orders

    asyncio.run(seed())
    return path


def test_the_demo_config_needs_its_secrets_to_run(demo: Path) -> None:
    with pytest.raises(ConfigInvalid, match=f"{ENV_PREFIX}CAMERA_PASSWORD"):
        load_config(demo)
    assert main(["check", "-c", str(demo)]) == 1


def test_every_read_only_command_the_demo_prints_works_without_the_secrets(
        demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = read_only_commands(demo, date.today())
    assert [c.split()[1] for c in commands] == ["status", "tickets", "tickets", "report",
                                                "brief", "link"]
    for command in commands:
        code = main(command.split()[1:])
        out = capsys.readouterr()
        assert code == 0, (command, out.err)
        assert out.out.strip(), command
    # What they printed came from the store: the work orders, the site, a signed link.
    assert main(["tickets", "list", "-c", str(demo)]) == 0
    assert "T-" in capsys.readouterr().out
    assert main(["link", "--site", SITE, "-c", str(demo)]) == 0
    assert f"/sites/{SITE}?grant=" in capsys.readouterr().out
