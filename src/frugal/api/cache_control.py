"""The per-request control header ``x-frugal-cache-control``.

Comma-separated directives: ``no-cache`` (do not read the cache), ``no-store`` (do not write
it), ``ttl=SECONDS``, ``threshold=FLOAT`` (cosine similarity in [-1, 1]). ``ttl=0`` and
``threshold=0.0`` are real values, not "unset": a directive that is absent is ``None``.
An unknown directive or a bad value is an `InvalidRequestError` (400).

The grammar is one regular expression, `PATTERN`, which is also what the OpenAPI schema
publishes: a header is accepted exactly when it matches, so the documentation cannot drift
from the parser. Numbers are plain decimals (``60``, ``0.95``); names are case-insensitive.
"""

from __future__ import annotations

import re

from frugal.errors import InvalidRequestError
from frugal.pipeline import CacheControl

HEADER = "x-frugal-cache-control"

_SPACE = "[ \t]*"  # HTTP's optional whitespace; nothing else is trimmed


def _any_case(word: str) -> str:
    # JSON Schema patterns have no flags, so case-insensitivity is spelled out.
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


_TTL = "[0-9]+(?:\\.[0-9]+)?"  # seconds, 0 or more
_THRESHOLD = "-?(?:0(?:\\.[0-9]+)?|1(?:\\.0+)?)"  # within [-1, 1]


def _directive(*, named: bool) -> str:
    """One directive; ``named`` captures the numbers (a repeated group may not be named)."""
    ttl, threshold = ("?P<ttl>", "?P<threshold>") if named else ("", "")
    return (
        f"(?:{_any_case('no-cache')}|{_any_case('no-store')}"
        f"|{_any_case('ttl')}=({ttl}{_TTL})|{_any_case('threshold')}=({threshold}{_THRESHOLD}))"
    )


_ONE = re.compile(_directive(named=True))
# The whole header: blank, or directives separated by commas.
_D = _directive(named=False)
PATTERN = f"^{_SPACE}(?:{_D}(?:{_SPACE},{_SPACE}{_D})*)?{_SPACE}$"


def parse_cache_control(header: str | None) -> CacheControl:
    """Parse the header; ``parse_cache_control("no-store, ttl=60").ttl_s == 60.0``."""
    if header is None or not header.strip(" \t"):
        return CacheControl()
    no_cache = no_store = False
    ttl_s: float | None = None
    threshold: float | None = None
    for raw in header.split(","):
        directive = raw.strip(" \t")
        match = _ONE.fullmatch(directive)
        if match is None:
            raise InvalidRequestError(
                f"Invalid {HEADER} directive {directive!r}: known directives are no-cache, "
                "no-store, ttl=SECONDS (0 or more) and threshold=SIMILARITY (-1 to 1), "
                "with plain decimal numbers.",
                param=HEADER,
            )
        if match["ttl"] is not None:
            ttl_s = float(match["ttl"])
        elif match["threshold"] is not None:
            threshold = float(match["threshold"])
        elif directive.lower() == "no-cache":
            no_cache = True
        else:
            no_store = True
    return CacheControl(no_cache=no_cache, no_store=no_store, ttl_s=ttl_s, threshold=threshold)
