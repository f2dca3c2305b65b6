"""The generators' command lines: ``-o FILE`` writes the text there, else stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    args = argparse.ArgumentParser(prog=prog, description=description)
    args.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    return args


def emit(text: str, output: Path | None) -> int:
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
