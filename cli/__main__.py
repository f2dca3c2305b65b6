"""``python -m elvwatch.cli``: the ``elvwatch`` command."""

from __future__ import annotations

import sys

from elvwatch.cli.main import main

sys.exit(main())
