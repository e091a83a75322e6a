"""`frugal demo`: a simulated provider, the gateway in front of it, a replayed workload, a report.

The workload is replayed live (chat completions), then work that can wait goes through the
gateway's Batch API as one file: some of its lines were asked live already, some repeat or
rephrase each other, the rest are new; the report says what each part cost.

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
# The gateway polls the simulator's Batch API this often (a real provider: every 30 s).
BATCH_POLL_S = 0.25


@dataclass(frozen=True)
class BatchReport:
    """One batch through the gateway's Batch API: its figures, as its ``metadata`` gives them
    (``frugal_cache_hits``, ``frugal_duplicates_folded``, ``frugal_lines_sent``,
    ``frugal_cost_usd``, ``frugal_live_cost_usd``), its status and its turnaround."""

    status: str
    lines: int
    answered: int
    figures: dict[str, str]
    wall_s: float


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
    batch: BatchReport | None = None

    @property
    def calls_saved(self) -> int:
        return self.requests - self.upstream_calls

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.latencies_s)

    @property
    def p95_latency_s(self) -> float:
        return percentile(self.latencies_s, 95)


def load_workload(path: Path | None = None, *, bundled: str = "demo_workload.jsonl") -> list[str]:
    """Prompts from a JSONL file of ``{"text": ...}`` (default: the ``bundled`` one)."""
    if path is None:
        text = resources.files("frugal.data").joinpath(bundled).read_text()
    else:
        text = path.read_text()
    return [json.loads(line)["text"] for line in text.splitlines() if line.strip()]


async def submit_batch(base_url: str, prompts: list[str], *, poll_s: float) -> BatchReport:
    """Send ``prompts`` as one Batch API file through the gateway and wait for its end."""
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="demo", max_retries=2)
    lines = [
        json.dumps(
            {
                "custom_id": f"line-{number}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": DEMO_MODEL, "messages": [{"role": "user", "content": text}]},
            }
        )
        for number, text in enumerate(prompts, 1)
    ]
    started = time.perf_counter()
    try:
        upload = ("work-that-can-wait.jsonl", ("\n".join(lines) + "\n").encode())
        uploaded = await client.files.create(file=upload, purpose="batch")
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            await asyncio.sleep(poll_s)
            batch = await client.batches.retrieve(batch.id)
        answered = 0
        if batch.output_file_id is not None:
            output = (await client.files.content(batch.output_file_id)).text
            answered = sum(1 for line in output.splitlines() if line.strip())
    finally:
        await client.close()
    return BatchReport(
        status=batch.status,
        lines=len(prompts),
        answered=answered,
        figures=dict(batch.metadata or {}),
        wall_s=time.perf_counter() - started,
    )


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
    waiting = load_workload(bundled="demo_batch.jsonl")
    with tempfile.TemporaryDirectory(prefix="frugal-demo-") as tmp:
        work = Path(tmp)
        # A fresh cache for every demo, with the model exported at install.
        admin_key = secrets.token_urlsafe(24)
        gateway_env = {
            "FRUGAL_DATA_DIR": str(work / "data"),
            "FRUGAL_MODEL_DIR": str(load_settings().models_path.resolve()),
            "FRUGAL_ADMIN_KEY": admin_key,
            "FRUGAL_BATCH_API_POLL_S": str(BATCH_POLL_S),
        }
        with processes.running_stack(
            log_dir=work, sim_args=sim_args or [], gateway_env=gateway_env
        ) as (sim, gateway):
            began = time.perf_counter()
            latencies = asyncio.run(replay(gateway.url, prompts, concurrency=concurrency))
            wall = time.perf_counter() - began
            stats = httpx.get(sim.url + "/sim/stats").json()
            batch = asyncio.run(submit_batch(gateway.url, waiting, poll_s=BATCH_POLL_S))
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
        batch=batch,
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
    if (batch := report.batch) is not None:
        figures = batch.figures
        table.add_section()
        table.add_row("a batch of work that can wait (lines)", f"{batch.lines} ({batch.status})")
        table.add_row("  answered from the cache", figures.get("frugal_cache_hits", "–"))
        table.add_row(
            "  folded onto an equal or near-equal line",
            figures.get("frugal_duplicates_folded", "–"),
        )
        table.add_row("  sent as one provider batch", figures.get("frugal_lines_sent", "–"))
        table.add_row(
            "  cost at batch price / every line live",
            f"${figures.get('frugal_cost_usd', '–')} / ${figures.get('frugal_live_cost_usd', '–')}",
        )
        table.add_row("  turnaround", f"{batch.wall_s:.1f} s")
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
