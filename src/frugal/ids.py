"""Random identifiers for requests and responses."""

from __future__ import annotations

import random


def random_hex() -> str:
    """128 random bits as 32 hex digits, like ``uuid4().hex``.

    From the process's generator rather than the kernel's: these ids must be unique, not secret,
    and `uuid.uuid4` makes a system call per id, which on a busy machine is where the event
    loop loses its core to the embedder's threads (it showed up in the hit path's profile).
    `random` is reseeded in a forked child, so processes do not repeat each other's ids.
    """
    return f"{random.getrandbits(128):032x}"
