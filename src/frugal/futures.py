"""Settling a future that may be settled (or cancelled) already.

One waiter gone must not break the loop that answers the others: every future frugal hands
out is settled through these, which do nothing to a future that is already done.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def settle_result(future: asyncio.Future[T], result: T) -> bool:
    """Set ``result`` unless ``future`` is done; whether it was set."""
    if future.done():
        return False
    future.set_result(result)
    return True


def settle_error(future: asyncio.Future[T], error: BaseException) -> bool:
    """Set ``error`` unless ``future`` is done; whether it was set."""
    if future.done():
        return False
    future.set_exception(error)
    return True
