"""The repository's labelled data sets (``data/``; sources, licences and formats in its README).

Results name these files relative to the repository root, and the benchmarks run the ``frugal``
commands from there with the same relative paths, so a command in a result runs as shown in a
clone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frugal.datafiles import open_data

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "data" / "qqp" / "pairs.jsonl.gz"
INTENTS = ROOT / "data" / "clinc150" / "intents.jsonl.gz"


def shown(path: Path) -> str:
    """``path`` (inside the repository) as results name it: relative to the repository root."""
    return path.relative_to(ROOT).as_posix()


def rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL data file, plain or gzip-compressed, blank lines skipped."""
    with open_data(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]
