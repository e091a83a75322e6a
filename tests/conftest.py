"""Shared fixtures: real `frugal sim` and `frugal serve` processes on loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from frugal.config import default_model_dir
from frugal.local.processes import FrugalProcess, start_frugal
from frugal.local.redis_server import RedisServer

CANARY_KEY = "sk-canary-3f9c2e7b1d5a4c8e9f0a"
ADMIN_KEY = "admin-test-key-5d1e"
ROOT = Path(__file__).resolve().parent.parent
# The exported embedder; `make test` exports it before the suite runs.
MODEL_DIR = Path(os.environ.get("FRUGAL_MODEL_DIR", default_model_dir()))

# Millisecond latencies keep the suite fast while the latency model stays in play.
FAST_SIM = ["--call-latency-ms", "2", "--item-latency-ms", "1"]


@dataclass
class Stack:
    """A simulated provider and a gateway in front of it."""

    sim: FrugalProcess
    gateway: FrugalProcess

    @property
    def base_url(self) -> str:
        return self.gateway.url + "/v1"

    def sim_stats(self) -> dict:
        return httpx.get(self.sim.url + "/sim/stats").json()

    def admin(self) -> httpx.Client:
        """An HTTP client for the gateway's admin routes."""
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.Client(base_url=self.gateway.url, headers=headers)

    def reset_sim(self) -> None:
        httpx.post(self.sim.url + "/sim/reset").raise_for_status()

    def emptied(self) -> Stack:
        """This stack with an empty cache and zeroed simulator counts."""
        with self.admin() as admin:
            admin.delete("/admin/cache").raise_for_status()
        self.reset_sim()
        return self


StackFactory = Callable[..., Stack]


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """Start stacks on demand; all of them stop when the module's tests are done.

    ``make_stack(sim_args=[...], env={...})``: sim flags are added to `FAST_SIM`, env holds
    `FRUGAL_*` settings for the gateway; ``sim=`` puts another gateway in front of a running
    sim (replicas). The sim demands `CANARY_KEY` and the gateway sends it.
    """
    started: list[FrugalProcess] = []

    def make(
        sim_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        sim: FrugalProcess | None = None,
    ) -> Stack:
        logs = tmp_path_factory.mktemp("logs")
        if sim is None:
            sim = start_frugal(
                ["sim", *FAST_SIM, "--require-api-key", CANARY_KEY, *(sim_args or [])],
                log_dir=logs,
            )
            started.append(sim)
        gateway_env = {
            "FRUGAL_UPSTREAM_API_KEY": CANARY_KEY,
            "FRUGAL_UPSTREAM_RETRY_BASE_DELAY_S": "0.01",
            "FRUGAL_DATA_DIR": str(data_dir or logs / "data"),
            "FRUGAL_MODEL_DIR": str(MODEL_DIR),
            "FRUGAL_ADMIN_KEY": ADMIN_KEY,
            **(env or {}),
        }
        gateway = start_frugal(
            ["serve", "--upstream", sim.url + "/v1"],
            log_dir=logs,
            env=gateway_env,
            ready_path="/readyz",
        )
        started.append(gateway)
        return Stack(sim=sim, gateway=gateway)

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> Stack:
    """A well-behaved provider behind a gateway with default settings."""
    return make_stack()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis 8 with the query engine for the session; tests keep apart by key prefix."""
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    with RedisServer.start(log_path=log) as server:
        yield server


def redis_env(url: str, **extra: str) -> dict[str, str]:
    """Gateway settings for the Redis store at ``url``, under a prefix and index of its own."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    return {
        "FRUGAL_STORE": "redis",
        "FRUGAL_REDIS_URL": url,
        "FRUGAL_REDIS_PREFIX": f"{name}:",
        "FRUGAL_REDIS_INDEX": name,
        **extra,
    }


def run_frugal(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m frugal ARGS`` with the exported model, offline; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "frugal", *args],
        env={
            **os.environ,
            "FRUGAL_MODEL_DIR": str(MODEL_DIR),
            "HF_HUB_OFFLINE": "1",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
