"""Single flight: who joins whom, and what followers get."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from frugal.batching import Coalescer
from frugal.errors import LeaderGone


def key(prompt: str, scope: str = "s") -> tuple[str, str]:
    """A flight's scope and prompt hash."""
    return scope, f"h:{prompt}"


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


async def test_exact_and_semantic_joins_stay_within_the_scope() -> None:
    coalescer = Coalescer()
    with coalescer.lead(*key("a"), unit(1, 0)):
        assert coalescer.find(*key("a"), None, threshold=0.99).similarity == 1.0
        near = coalescer.find(*key("b"), unit(1, 0.1), threshold=0.9)
        assert near is not None and near.similarity == pytest.approx(0.995, abs=1e-3)
        assert coalescer.find(*key("c"), unit(0.1, 1), threshold=0.9) is None
        assert coalescer.find(*key("c"), unit(0.1, 1), threshold=0.0) is not None  # 0 is a value
        assert coalescer.find(*key("a", scope="other"), unit(1, 0), threshold=0.0) is None
    assert coalescer.find(*key("a"), unit(1, 0), threshold=0.0) is None  # the flight is over


async def test_followers_get_the_leaders_answer_or_its_error() -> None:
    coalescer = Coalescer()
    with coalescer.lead(*key("a"), None) as flight:
        follower = asyncio.ensure_future(
            coalescer.follow(coalescer.find(*key("a"), None, threshold=1))
        )
        await asyncio.sleep(0)
        flight.succeed({"answer": 42})
    assert await follower == {"answer": 42}
    assert coalescer.coalesced == 1

    with pytest.raises(ValueError), coalescer.lead(*key("b"), None):
        follower = asyncio.ensure_future(
            coalescer.follow(coalescer.find(*key("b"), None, threshold=1))
        )
        await asyncio.sleep(0)
        raise ValueError("provider said no")
    with pytest.raises(ValueError):
        await follower


async def test_a_cancelled_leader_releases_its_followers() -> None:
    coalescer = Coalescer()
    started = asyncio.Event()

    async def leader() -> None:
        with coalescer.lead(*key("a"), None):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.ensure_future(leader())
    await started.wait()
    follower = asyncio.ensure_future(coalescer.follow(coalescer.find(*key("a"), None, threshold=1)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(LeaderGone):
        await follower
