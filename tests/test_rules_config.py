"""Site rules and silences in the config: they load, compile and overlay the built-ins."""

from __future__ import annotations

from pathlib import Path

from elvwatch.config.loading import load_config
from elvwatch.rules.model import build_rules

CONFIG = """\
sites:
  - {id: lakeside, name: 湖畔小区}
devices:
  - {id: door-1, site: lakeside, kind: access_panel, host: 127.0.0.1, tags: [lobby]}
rules:
  - id: lobby_door_held
    name_zh: 大堂门长时间未关
    name_en: Lobby door held open
    severity: major
    match: {site: lakeside, kind: access_panel, tags: [lobby]}
    condition: mqtt.held_open == 1
    for: 2m
    clear: 1
  - {id: door_held_open, name_zh: x, name_en: x, condition: 'true', enabled: false}
silences:
  - {matchers: {site: lakeside, system: cctv}, who: 王工, why: 季度巡检,
     starts: 2026-03-01T01:00:00Z, until: 2026-03-01T05:00:00Z}
"""


def test_site_rules_and_silences_load_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path)
    rules = {r.id: r for r in build_rules(config.model.rules)}
    lobby = rules["lobby_door_held"]
    assert (lobby.for_seconds, lobby.for_polls, lobby.clear_polls) == (120.0, None, 1)
    assert lobby.tags == {"lobby"} and lobby.severity.value == "major"
    assert "door_held_open" not in rules and "door_forced" in rules
    silence = config.model.silences[0].to_silence()
    assert silence.matchers == {"site": {"lakeside"}, "system": {"cctv"}}
    assert silence.until - silence.starts == 4 * 3600
