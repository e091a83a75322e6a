"""`frugal demo`: a simulated provider, the gateway in front of it, a replayed workload, a report.

Everything runs as real processes over real sockets, driven by the official `openai` SDK, and
everything started here is stopped here, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import openai
from rich.console import Console
from rich.table import Table

from frugal.config import load_settings
from frugal.local import processes
from frugal.percentiles import percentile
from frugal.plots import pyplot, save

# A model with a list price, so that the report can say what the saved calls would have cost.
DEMO_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class DemoReport:
    """What the client saw, what the provider counted, and the gateway's own summary (the
    ``since_start`` part of `/admin/stats`) with its batch sizes."""

    requests: int
    upstream_calls: int
    upstream_tokens: int
    latencies_s: list[float]
    wall_s: float
    gateway: dict[str, Any]
    batch_sizes: dict[str, int]

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
        admin_key = secrets.token_urlsafe(24)
        gateway_env = {
            "FRUGAL_DATA_DIR": str(work / "data"),
            "FRUGAL_MODEL_DIR": str(load_settings().models_path.resolve()),
            "FRUGAL_ADMIN_KEY": admin_key,
        }
        with processes.running_stack(
            log_dir=work, sim_args=sim_args or [], gateway_env=gateway_env
        ) as (sim, gateway):
            began = time.perf_counter()
            latencies = asyncio.run(replay(gateway.url, prompts, concurrency=concurrency))
            wall = time.perf_counter() - began
            stats = httpx.get(sim.url + "/sim/stats").json()
            auth = {"Authorization": f"Bearer {admin_key}"}
            gateway_stats = httpx.get(gateway.url + "/admin/stats", headers=auth).json()
    return DemoReport(
        requests=len(prompts),
        upstream_calls=int(stats["calls"]),
        upstream_tokens=int(stats["tokens"]),
        latencies_s=latencies,
        wall_s=wall,
        gateway=gateway_stats["summary"]["since_start"],
        batch_sizes=gateway_stats["batching"]["batch_sizes"],
    )


def print_report(report: DemoReport, console: Console | None = None) -> None:
    summary = report.gateway
    outcomes = summary["outcomes"]
    table = Table(title="frugal demo: what the gateway saved", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("requests sent", str(report.requests))
    table.add_row("upstream calls", str(report.upstream_calls))
    share = report.calls_saved / report.requests if report.requests else 0.0
    table.add_row("calls saved", f"{report.calls_saved} ({share:.0%})")
    table.add_row(
        "  answered from the cache",
        f"{outcomes['hit_exact']} exact + {outcomes['hit_semantic']} by meaning",
    )
    table.add_row("  joined an equal or near-equal call in flight", str(outcomes["coalesced"]))
    if (shared := report.calls_saved - summary["calls_saved"]) > 0:
        table.add_row("  shared a batched call", str(shared))
    table.add_row("cache hit rate", f"{summary['hit_rate']:.0%}")
    tokens = summary["tokens_saved"]
    table.add_row("tokens saved", f"{tokens['total']:,}")
    table.add_row(f"money saved ({DEMO_MODEL} list price)", f"${summary['money_saved_usd']:.4f}")
    table.add_row("upstream tokens", str(report.upstream_tokens))
    for name in ("hit", "miss"):
        latency = summary["latency_ms"].get(name)
        if latency:
            table.add_row(
                f"latency of a {name} (p50 / p95)",
                f"{latency['p50']:.0f} / {latency['p95']:.0f} ms",
            )
    table.add_row("mean latency", f"{report.mean_latency_s * 1000:.0f} ms")
    table.add_row("p95 latency", f"{report.p95_latency_s * 1000:.0f} ms")
    sizes = ", ".join(f"{size}×{n}" for size, n in report.batch_sizes.items())
    table.add_row("batches sent (size×count)", sizes or "none")
    table.add_row("wall time", f"{report.wall_s:.1f} s")
    (console or Console()).print(table)


def write_chart(report: DemoReport, path: Path) -> Path:
    """A PNG of the report: where the requests went, and latency of hits against misses."""
    plt = pyplot()
    summary = report.gateway
    outcomes = summary["outcomes"]
    figure, (where, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    shared = report.calls_saved - summary["calls_saved"]
    parts = {
        "exact hit": outcomes["hit_exact"],
        "semantic hit": outcomes["hit_semantic"],
        "coalesced": outcomes["coalesced"],
        **({"shared a batch": shared} if shared > 0 else {}),
        "own upstream call": report.upstream_calls,
    }
    colours = ["#1f9d6b", "#52c49a", "#3d5afe", *(["#8c9eff"] if shared > 0 else []), "#d9822b"]
    where.barh(list(parts), list(parts.values()), color=colours)
    for row, count in enumerate(parts.values()):
        where.text(count, row, f" {count}", va="center")
    where.invert_yaxis()
    where.set_xlabel("requests")
    where.set_title(
        f"{report.requests} requests, {report.upstream_calls} upstream calls "
        f"({report.calls_saved / max(1, report.requests):.0%} saved)"
    )
    names = [name for name in ("hit", "miss") if name in summary["latency_ms"]]
    p50 = [summary["latency_ms"][name]["p50"] for name in names]
    p95 = [summary["latency_ms"][name]["p95"] for name in names]
    positions = range(len(names))
    latency.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50", color="#3d5afe")
    latency.bar([p + 0.2 for p in positions], p95, width=0.4, label="p95", color="#8c9eff")
    latency.set_xticks(list(positions), names)
    latency.set_ylabel("ms")
    latency.set_yscale("log")
    latency.legend()
    latency.set_title(f"latency; ${summary['money_saved_usd']:.4f} saved at list price")
    figure.suptitle("frugal demo")
    return save(figure, path)
