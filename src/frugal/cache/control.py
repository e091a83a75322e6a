"""The per-request control header ``x-frugal-cache-control``.

Comma-separated directives: ``no-cache`` (do not read the cache), ``no-store`` (do not write
it), ``ttl=SECONDS``, ``threshold=FLOAT`` (cosine similarity in [-1, 1]). ``ttl=0`` and
``threshold=0.0`` are real values, not "unset": a directive that is absent is ``None``.
An unknown directive or a bad value is an `InvalidRequestError` (400).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from frugal.errors import InvalidRequestError

HEADER = "x-frugal-cache-control"


@dataclass(frozen=True)
class CacheControl:
    no_cache: bool = False
    no_store: bool = False
    ttl_s: float | None = None  # None: the configured TTL
    threshold: float | None = None  # None: the configured threshold


def parse_cache_control(header: str | None) -> CacheControl:
    """Parse the header; ``parse_cache_control("no-store, ttl=60").ttl_s == 60.0``."""
    if header is None or not header.strip():
        return CacheControl()
    no_cache = no_store = False
    ttl_s: float | None = None
    threshold: float | None = None
    for raw in header.split(","):
        directive = raw.strip().lower()
        name, _, value = directive.partition("=")
        if directive == "no-cache":
            no_cache = True
        elif directive == "no-store":
            no_store = True
        elif name == "ttl" and value:
            ttl_s = _number(value, directive)
            if ttl_s < 0:
                raise _bad(directive, "ttl must be 0 or more seconds")
        elif name == "threshold" and value:
            threshold = _number(value, directive)
            if not -1.0 <= threshold <= 1.0:
                raise _bad(directive, "threshold is a cosine similarity within [-1, 1]")
        else:
            raise _bad(directive, "known directives: no-cache, no-store, ttl=S, threshold=F")
    return CacheControl(no_cache=no_cache, no_store=no_store, ttl_s=ttl_s, threshold=threshold)


def _number(value: str, directive: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(directive, "not a number") from None
    if not math.isfinite(number):
        raise _bad(directive, "not a finite number")
    return number


def _bad(directive: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid {HEADER} directive {directive!r}: {why}.", param=HEADER)
