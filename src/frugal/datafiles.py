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
from pathlib import Path
from typing import TextIO


def open_data(path: Path) -> TextIO:
    """``path`` opened for reading as UTF-8 text; the caller closes it (``with``).

    Raises ``OSError`` when it cannot be opened, ``UnicodeDecodeError`` on bytes that are not
    UTF-8 and, for a ``.gz`` path, ``gzip.BadGzipFile`` on reading something that is not gzip.
    """
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")
