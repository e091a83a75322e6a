"""A simulated provider for the library's tests, and wrapped clients in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from frugal.local.processes import FrugalProcess, start_frugal
from tests.conftest import CANARY_KEY, FAST_SIM, MODEL_DIR


class Sim:
    """A running `frugal sim` that demands `CANARY_KEY`."""

    def __init__(self, process: FrugalProcess) -> None:
        self.process = process

    @property
    def base_url(self) -> str:
        return self.process.url + "/v1"

    def calls(self, endpoint: str | None = None) -> int:
        """Calls received since the last reset, in all or to ``endpoint`` (``/v1/...``)."""
        stats = httpx.get(self.process.url + "/sim/stats").json()
        if endpoint is None:
            return int(stats["calls"])
        return int(stats["endpoints"].get(endpoint, {}).get("calls", 0))

    def reset(self) -> None:
        httpx.post(self.process.url + "/sim/reset").raise_for_status()


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    logs = tmp_path_factory.mktemp("sim")
    process = start_frugal(["sim", *FAST_SIM, "--require-api-key", CANARY_KEY], log_dir=logs)
    yield Sim(process)
    process.stop()


@pytest.fixture
def sim(sim_process: Sim) -> Sim:
    """The module's simulator with its counts zeroed."""
    sim_process.reset()
    return sim_process


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, object]:
    """`frugal.wrap` keyword settings: an empty cache of this test's own, the exported model."""
    return {"data_dir": tmp_path / "data", "model_dir": MODEL_DIR}
