"""Write the shipped Grafana dashboards as JSON: ``python deploy/grafana/build.py``.

``--check`` writes nothing and exits 1 when a file in ``dashboards/`` differs from what
the code builds (CI runs it through tests/test_deploy.py), so edits go through the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from fleet import camera_health, fleet_overview, site_drilldown
from operations import infrastructure, self_health, tickets_sla
from panels import Json

OUT = Path(__file__).resolve().parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], Json]] = {
    "fleet-overview.json": fleet_overview,
    "site-drilldown.json": site_drilldown,
    "camera-health.json": camera_health,
    "infrastructure.json": infrastructure,
    "tickets-sla.json": tickets_sla,
    "self-health.json": self_health,
}


def render(build: Callable[[], Json]) -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the files on disk instead of writing them")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path: Path = args.out / name
        text = render(build)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale dashboards (run python {Path(__file__).name}): {', '.join(stale)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
