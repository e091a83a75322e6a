"""Opening a labelled data file (pairs, intents, a prompt log), plain or gzip-compressed.

The suffix decides: a path ending in ``.gz`` is read through gzip, any other as it is, so a
user's file and the repository's compressed sets (``data/qqp/pairs.jsonl.gz``) go through the
same loaders. Either way the result is UTF-8 text split only at ``\\n``, ``\\r`` or ``\\r\\n``
(iterating it never breaks a JSON line at a U+2028 inside a string, as ``str.splitlines`` would).

    with open_data(Path("data/qqp/pairs.jsonl.gz")) as lines:
        first = json.loads(next(lines))
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def open_data(path: Path) -> TextIO:
    """``path`` opened for reading as UTF-8 text; the caller closes it (``with``).

    Raises ``OSError`` when it cannot be opened, ``UnicodeDecodeError`` on bytes that are not
    UTF-8 and, for a ``.gz`` path, ``gzip.BadGzipFile`` on reading something that is not gzip.
    """
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_records(path: Path, parse: Callable[[dict[str, Any]], T], *, expected: str) -> list[T]:
    """``parse`` applied to each JSON object of the JSONL file at ``path`` (blank lines
    skipped). A line that is not JSON, or that ``parse`` rejects (``ValueError``, ``KeyError``,
    ``TypeError``), raises ``ValueError`` naming the file, the line and ``expected``, e.g.
    ``pairs.jsonl:3: not a {a, b, label} pair (...)``."""
    records = []
    with open_data(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(parse(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: {expected} ({exc})") from None
    return records
