"""Dynamic batching and coalescing against a provider whose batches are cheap.

    python benchmarks/batching.py [--requests 600] [--clients 64]

The simulated provider costs 100 ms a call plus 2 ms a prompt (a batch of 5 costs about what one
prompt does, as on a GPU inference server) and serves 4 calls at once: its concurrency is the
bottleneck. Three measurements, each configuration on a fresh gateway:

1. throughput and latency of completions (cache off) against the batching window and size;
2. latency added at low load (one client at a time) by each window;
3. upstream calls per 1,000 requests of a bursty paraphrase workload built from CLINC150 (20
   clients asking the same intent at once, in different words), with and without coalescing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, rows  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.config import load_settings  # noqa: E402
from frugal.local import processes  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SIM = ["--call-latency-ms", "100", "--item-latency-ms", "2", "--max-concurrency", "4"]
WINDOWS_MS = [0, 10, 50, 100]
SIZES = [1, 5, 16, 64]


class Stack:
    """A sim with the provider's latency model and a gateway in front of it."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self._running = processes.running_stack(
            log_dir=tmp,
            sim_args=SIM,
            gateway_env={
                "FRUGAL_LOG_LEVEL": "warning",
                "FRUGAL_DATA_DIR": str(tmp / f"data-{time.monotonic_ns()}"),
                "FRUGAL_MODEL_DIR": str(load_settings().models_path),
                "FRUGAL_UPSTREAM_MAX_CONCURRENCY": "4",
                **env,
            },
        )
        self.sim, self.gateway = self._running.__enter__()

    def calls(self) -> int:
        return int(httpx.get(self.sim.url + "/sim/stats").json()["calls"])

    def stop(self) -> None:
        self._running.__exit__(None, None, None)


async def closed_loop(url: str, prompts: list[str], clients: int) -> tuple[list[float], float]:
    """``clients`` workers send completions until every prompt is answered."""
    queue = list(reversed(prompts))
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url + "/v1", timeout=120, limits=limits) as http:

        async def worker() -> None:
            while queue:
                prompt = queue.pop()
                started = time.perf_counter()
                response = await http.post("/completions", json={"model": "m", "prompt": prompt})
                latencies.append(time.perf_counter() - started)
                assert prompt in response.json()["choices"][0]["text"]

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, time.perf_counter() - began


def sweep(tmp: Path, requests: int, clients: int) -> list[dict[str, float]]:
    rows = []
    prompts = [f"question {n} about topic {n * 7919 % 1000}" for n in range(requests)]
    for window in WINDOWS_MS:
        for size in SIZES if window else [1]:
            stack = Stack(
                tmp,
                {
                    "FRUGAL_CACHE_MODE": "off",
                    "FRUGAL_BATCH_WINDOW_MS": str(window),
                    "FRUGAL_BATCH_MAX_SIZE": str(size),
                },
            )
            try:
                latencies, wall = asyncio.run(closed_loop(stack.gateway.url, prompts, clients))
                calls = stack.calls()
            finally:
                stack.stop()
            ms = [v * 1000 for v in latencies]
            rows.append(
                {
                    "window": window,
                    "size": size,
                    "rps": requests / wall,
                    "calls": calls,
                    "p50": statistics.median(ms),
                    "p95": percentile(ms, 95),
                }
            )
            print(rows[-1], flush=True)
    return rows


def low_load(tmp: Path) -> list[dict[str, float]]:
    rows = []
    for window in WINDOWS_MS:
        stack = Stack(tmp, {"FRUGAL_CACHE_MODE": "off", "FRUGAL_BATCH_WINDOW_MS": str(window)})
        try:
            prompts = [f"lonely question {n}" for n in range(40)]
            latencies, _ = asyncio.run(closed_loop(stack.gateway.url, prompts, 1))
        finally:
            stack.stop()
        rows.append({"window": window, "p50": statistics.median(latencies[5:]) * 1000})
    return rows


def bursts(bursts: int, size: int, seed: int = 7) -> list[tuple[str, list[str]]]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for row in rows(INTENTS):
        if row["intent"] != "oos":
            by_intent[row["intent"]].append(row["text"])
    rng = random.Random(seed)
    intents = rng.sample(sorted(by_intent), bursts)
    return [(intent, rng.sample(by_intent[intent], size)) for intent in intents]


async def burst_run(url: str, workload: list[tuple[str, list[str]]]) -> tuple[dict[str, int], int]:
    """Send each burst at once; count outcomes and answers that belong to another intent."""
    owner = {text: intent for intent, texts in workload for text in texts}
    outcomes: dict[str, int] = defaultdict(int)
    wrong = 0
    async with httpx.AsyncClient(base_url=url + "/v1", timeout=120) as http:
        for intent, texts in workload:
            replies = await asyncio.gather(
                *(
                    http.post(
                        "/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": text}]},
                    )
                    for text in texts
                )
            )
            for reply in replies:
                outcomes[reply.headers["x-frugal-cache"]] += 1
                answered = reply.json()["choices"][0]["message"]["content"].split(": ", 1)[1]
                wrong += owner.get(answered) != intent
    return outcomes, wrong


def coalescing(tmp: Path, workload: list[tuple[str, list[str]]]) -> dict[str, dict[str, float]]:
    results = {}
    total = sum(len(texts) for _, texts in workload)
    for name, coalesce in (("without coalescing", "false"), ("with coalescing", "true")):
        stack = Stack(tmp, {"FRUGAL_COALESCE": coalesce, "FRUGAL_BATCH_WINDOW_MS": "50"})
        try:
            outcomes, wrong = asyncio.run(burst_run(stack.gateway.url, workload))
            calls = stack.calls()
        finally:
            stack.stop()
        results[name] = {
            "calls_per_1000": calls * 1000 / total,
            "wrong": wrong,
            "total": total,
            **{f"n_{k}": v for k, v in outcomes.items()},
        }
        print(name, results[name], flush=True)
    return results


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    baseline = next(r for r in rows if r["window"] == 0)
    for size in SIZES:
        series = [baseline] + [r for r in rows if r["size"] == size and r["window"] > 0]
        windows = [r["window"] for r in series]
        left.plot(windows, [r["rps"] for r in series], marker="o", label=f"max size {size}")
        right.plot(windows, [r["p50"] for r in series], marker="o", label=f"max size {size}")
    left.set(xlabel="batch window (ms)", ylabel="requests / s", title="Throughput, 64 clients")
    right.set(
        xlabel="batch window (ms)", ylabel="p50 latency (ms)", title="Median latency, 64 clients"
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--bursts", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = sweep(tmp, args.requests, args.clients)
        quiet = low_load(tmp)
        coalesced = coalescing(tmp, bursts(args.bursts, 20))
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "batching.png")
    base = next(r for r in rows if r["window"] == 0)
    at5 = next(r for r in rows if r["window"] == 50 and r["size"] == 5)
    quiet0 = quiet[0]["p50"]
    lines = [
        "Provider (`frugal sim`): 100 ms a call + 2 ms a prompt, at most 4 calls at once. Gateway: "
        "`FRUGAL_UPSTREAM_MAX_CONCURRENCY=4`, cache off for the sweep. Completions, each request "
        f"one distinct prompt, {args.clients} clients in a closed loop, {args.requests} requests "
        "per configuration.",
        "",
        "![throughput and latency against the window](batching.png)",
        "",
        "| window (ms) | max size | requests/s | upstream calls | p50 (ms) | p95 (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['window']} | {r['size'] if r['window'] else '—'} | {r['rps']:.1f} | {r['calls']} "
            f"| {r['p50']:.0f} | {r['p95']:.0f} |"
            for r in rows
        ),
        "",
        f"**Max size 5, 50 ms window: {at5['rps'] / base['rps']:.1f}× the throughput of no batching** "
        "(goal ≥ 4×).",
        "",
        "Latency added at low load (one client, one request at a time, median of 35):",
        "",
        "| window (ms) | p50 (ms) | added over window 0 (ms) | goal: ≤ window + 5 |",
        "|---:|---:|---:|---|",
        *(
            f"| {q['window']} | {q['p50']:.1f} | {q['p50'] - quiet0:.1f} | "
            f"{'met' if q['p50'] - quiet0 <= q['window'] + 5 else 'missed'} |"
            for q in quiet
        ),
        "",
        f"Coalescing, CLINC150 bursts: {args.bursts} intents (random, `oos` excluded), 20 different "
        "utterances of one intent sent at once per burst, bursts one after another, cache on "
        "(threshold 0.9), 50 ms window:",
        "",
        "| | upstream calls per 1,000 requests | misses | coalesced | hits | answers from another intent |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['calls_per_1000']:.0f} | {r.get('n_miss', 0)} | {r.get('n_coalesced', 0)} "
            f"| {r.get('n_hit', 0)} | {r['wrong']} of {r['total']} |"
            for name, r in coalesced.items()
        ),
        "",
    ]
    write_report(
        RESULTS / "batching.md",
        title="Dynamic batching and coalescing",
        command=(
            f"python benchmarks/batching.py --requests {args.requests} --clients {args.clients} "
            f"--bursts {args.bursts}"
        ),
        lines=lines,
    )


if __name__ == "__main__":
    main()
