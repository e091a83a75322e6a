"""Simulators served on loopback ports: one per test (`make_sim`) or one per module (`url`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from frugal.sim import SimConfig
from tests.sim.serving import FAST, SimFactory, serving


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """``make_sim(**config)`` serves a simulator (no latency unless given); gives its URL."""
    with ExitStack() as servers:
        yield lambda **config: servers.enter_context(serving(SimConfig(**{**FAST, **config})))


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[str]:
    with serving(SimConfig(**FAST)) as url:
        yield url


@pytest.fixture
def url(shared_sim: str) -> str:
    """A well-behaved simulator, its stats zeroed."""
    httpx.post(shared_sim + "/sim/reset").raise_for_status()
    return shared_sim
