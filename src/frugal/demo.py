"""`frugal demo`: a simulated provider, the gateway in front of it, a replayed workload, a report.

Everything runs as real processes over real sockets, driven by the official `openai` SDK, and
everything started here is stopped here, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
import openai
from rich.console import Console
from rich.table import Table

from frugal import processes
from frugal.config import load_settings
from frugal.percentiles import percentile

DEMO_MODEL = "sim-small"


@dataclass(frozen=True)
class DemoReport:
    requests: int
    upstream_calls: int
    upstream_tokens: int
    latencies_s: list[float]
    wall_s: float

    @property
    def calls_saved(self) -> int:
        return self.requests - self.upstream_calls

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.latencies_s)

    @property
    def p95_latency_s(self) -> float:
        return percentile(self.latencies_s, 95)


def load_workload(path: Path | None = None) -> list[str]:
    """Prompts from a JSONL file of ``{"text": ...}`` (default: the bundled demo workload)."""
    if path is None:
        text = resources.files("frugal.data").joinpath("demo_workload.jsonl").read_text()
    else:
        text = path.read_text()
    return [json.loads(line)["text"] for line in text.splitlines() if line.strip()]


async def replay(base_url: str, prompts: list[str], *, concurrency: int) -> list[float]:
    """Send every prompt through the gateway as a chat completion; return each latency."""
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="demo", max_retries=0)
    limit = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> float:
        async with limit:
            started = time.perf_counter()
            await client.chat.completions.create(
                model=DEMO_MODEL, messages=[{"role": "user", "content": prompt}]
            )
            return time.perf_counter() - started

    try:
        return list(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        await client.close()


def run_demo(
    *, workload: Path | None = None, concurrency: int = 8, sim_args: list[str] | None = None
) -> DemoReport:
    prompts = load_workload(workload)
    with tempfile.TemporaryDirectory(prefix="frugal-demo-") as tmp:
        work = Path(tmp)
        # A fresh cache for every demo, with the model exported at install.
        gateway_env = {
            "FRUGAL_DATA_DIR": str(work / "data"),
            "FRUGAL_MODEL_DIR": str(load_settings().models_path.resolve()),
        }
        with processes.running_stack(
            log_dir=work, sim_args=sim_args or [], gateway_env=gateway_env
        ) as (sim, gateway):
            began = time.perf_counter()
            latencies = asyncio.run(replay(gateway.url, prompts, concurrency=concurrency))
            wall = time.perf_counter() - began
            stats = httpx.get(sim.url + "/sim/stats").json()
    return DemoReport(
        requests=len(prompts),
        upstream_calls=int(stats["calls"]),
        upstream_tokens=int(stats["tokens"]),
        latencies_s=latencies,
        wall_s=wall,
    )


def print_report(report: DemoReport, console: Console | None = None) -> None:
    table = Table(title="frugal demo: what the gateway saved", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("requests sent", str(report.requests))
    table.add_row("upstream calls", str(report.upstream_calls))
    share = report.calls_saved / report.requests if report.requests else 0.0
    table.add_row("calls saved", f"{report.calls_saved} ({share:.0%})")
    table.add_row("upstream tokens", str(report.upstream_tokens))
    table.add_row("mean latency", f"{report.mean_latency_s * 1000:.0f} ms")
    table.add_row("p95 latency", f"{report.p95_latency_s * 1000:.0f} ms")
    table.add_row("wall time", f"{report.wall_s:.1f} s")
    (console or Console()).print(table)
