"""Import every module of the installed elvwatch (run with the clean environment's
Python, outside the checkout): a package or data file the wheel left out fails here."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import elvwatch

found = [m.name for m in pkgutil.walk_packages(elvwatch.__path__, "elvwatch.")
         if not m.name.endswith(".__main__")]
failed = []
for name in found:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # each failure is reported, then the run fails
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
        continue
    where = Path(module.__file__ or "")
    if "site-packages" not in where.parts:
        failed.append(f"{name}: imported from {where}, not from the installed wheel")
print(f"{len(found)} modules imported from the wheel")
if failed:
    print("\n".join(failed), file=sys.stderr)
    sys.exit(1)
