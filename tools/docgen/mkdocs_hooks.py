"""MkDocs hooks: the pages and files generated from the code when the docs are built.

- ``reference/configuration.md`` from the config's JSON Schema,
- ``reference/builtin-rules.md`` from ``rules/builtin/*.yaml``,
- ``reference/cli.md`` and the man page ``elvwatch.1`` from the argparse parser.

They are written into ``docs/`` before mkdocs reads it (the i18n plugin only sorts
files that live there) and ignored by git: nothing generated is committed, so nothing
goes stale.  The one committed artefact, the editors' ``docs/config.schema.json``, is
checked against the code by the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority

# mkdocs loads this file by path; the generators import the project's packages.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.docgen import generated  # noqa: E402


@event_priority(100)  # before the i18n plugin reads the config
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    generated.write(Path(config.docs_dir))
    return config
