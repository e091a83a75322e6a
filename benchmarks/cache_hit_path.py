"""What a cache hit costs: the gateway's semantic-hit path against the bare embedder call.

    python benchmarks/cache_hit_path.py [--requests 300] [--clients 32] [--seconds 10]

Measured in one run on one machine:
1. latency of a semantic hit through `frugal serve` (HTTP in, exact tier, embed, vector search,
   answer out) against one in-process `OnnxEmbedder.embed([text])` call — goal ≤ 1.3×;
2. hit throughput with N concurrent clients against the embedder's own batched throughput
   (batches of N) — goal ≥ 80%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _lean_http import LeanConnection  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.cache.embedder import OnnxEmbedder  # noqa: E402
from frugal.config import load_settings  # noqa: E402
from frugal.local import processes  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

MODEL_DIR = load_settings().models_path
ADMIN_KEY = "bench-admin"
PATH = "/v1/chat/completions"
SEEDS = [
    "What is the capital of France?",
    "How do I reverse a list in Python?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water at sea level?",
]
PARAPHRASES = [
    "What's the capital of France?",
    "How can I reverse a Python list?",
    "Who is the author of Pride and Prejudice?",
    "At what temperature does water boil at sea level?",
]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def body(text: str) -> dict[str, Any]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": text}]}


async def hit_latencies(
    url: str, embedder: OnnxEmbedder, requests: int
) -> tuple[list[float], list[float]]:
    """Semantic hits through the gateway and bare embedder calls, interleaved one for one so
    that both see the same machine at the same moments."""
    through_gateway, bare = [], []
    connection = await LeanConnection.open(url)
    prepared = [connection.prepare(PATH, body(text)) for text in PARAPHRASES]
    try:
        for number in range(requests + 20):
            text = PARAPHRASES[number % len(PARAPHRASES)]
            started = time.perf_counter()
            _, headers, _ = await connection.send(prepared[number % len(PARAPHRASES)])
            elapsed = time.perf_counter() - started
            assert headers["x-frugal-cache"] == "hit", headers
            started = time.perf_counter()
            embedder.embed([text])
            elapsed_bare = time.perf_counter() - started
            if number >= 20:  # the first few warm connections and code paths
                through_gateway.append(elapsed)
                bare.append(elapsed_bare)
    finally:
        await connection.aclose()
    return through_gateway, bare


async def hit_throughput(
    url: str,
    clients: int,
    seconds: float,
    *,
    path: str = PATH,
    make_body: Callable[[str], dict[str, Any]] = body,
) -> float:
    """Semantic hits a second with ``clients`` concurrent clients sending the paraphrases to
    ``path`` (bodies from ``make_body``) for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        nonlocal done
        connection = await LeanConnection.open(url)
        prepared = [connection.prepare(path, make_body(text)) for text in PARAPHRASES]
        try:
            while time.perf_counter() < deadline:
                _, headers, _ = await connection.send(prepared[(number + done) % len(prepared)])
                assert headers["x-frugal-cache"] == "hit", headers
                done += 1
        finally:
            await connection.aclose()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return done / (time.perf_counter() - started)


@dataclass(frozen=True)
class Round:
    """One gateway round and the embedder-alone round after it."""

    gateway_rps: float
    bare_sps: float
    gateway_cpu_ms: float  # the gateway process's CPU per request
    client_cpu_ms: float  # the load generator's CPU per request
    model_busy: float  # share of the gateway round with a model call in progress
    model_ms_per_text: float  # model call time per text in the gateway, wall clock
    mean_batch: float

    @property
    def ratio(self) -> float:
        return self.gateway_rps / self.bare_sps


def embedder_stats(url: str) -> dict[str, float]:
    stats = httpx.get(url + "/admin/stats", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    return stats.json()["embedder"]


def embedder_throughput(embedder: OnnxEmbedder, batch: int, seconds: float) -> float:
    texts = [PARAPHRASES[n % len(PARAPHRASES)] for n in range(batch)]
    embedder.embed(texts)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        embedder.embed(texts)
        count += batch
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds, alternated")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "cache_hit_path.md"
    )
    args = parser.parse_args()

    embedder = OnnxEmbedder(MODEL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        with processes.running_stack(
            log_dir=Path(tmp),
            sim_args=["--call-latency-ms", "0", "--item-latency-ms", "0"],
            gateway_env={
                "FRUGAL_LOG_LEVEL": "warning",
                "FRUGAL_DATA_DIR": tmp,
                "FRUGAL_MODEL_DIR": str(MODEL_DIR.resolve()),
                "FRUGAL_ADMIN_KEY": ADMIN_KEY,
            },
        ) as (_, gateway):
            for seed in SEEDS:
                httpx.post(gateway.url + "/v1/chat/completions", json=body(seed), timeout=30)
            gateway_s, bare_s = asyncio.run(hit_latencies(gateway.url, embedder, args.requests))
            # Alternate gateway and embedder-alone rounds, so that both see the machine's
            # moods alike; the gateway idles while the embedder runs alone.
            rounds = []
            for _ in range(args.rounds):
                cpu_before = cpu_seconds(gateway.process.pid)
                client_before = resource.getrusage(resource.RUSAGE_SELF)
                model_before = embedder_stats(gateway.url)
                started = time.perf_counter()
                gateway_rps = asyncio.run(hit_throughput(gateway.url, args.clients, args.seconds))
                took = time.perf_counter() - started
                model_after = embedder_stats(gateway.url)
                served = gateway_rps * args.seconds
                after = resource.getrusage(resource.RUSAGE_SELF)
                client_cpu = (after.ru_utime - client_before.ru_utime) + (
                    after.ru_stime - client_before.ru_stime
                )
                model_s = model_after["seconds"] - model_before["seconds"]
                texts = model_after["texts"] - model_before["texts"]
                calls = model_after["calls"] - model_before["calls"]
                rounds.append(
                    Round(
                        gateway_rps=gateway_rps,
                        bare_sps=embedder_throughput(embedder, args.clients, args.seconds),
                        gateway_cpu_ms=(cpu_seconds(gateway.process.pid) - cpu_before)
                        / served
                        * 1000,
                        client_cpu_ms=client_cpu / served * 1000,
                        model_busy=model_s / took,
                        model_ms_per_text=model_s / texts * 1000,
                        mean_batch=texts / calls,
                    )
                )

    gateway_ms, bare_ms = [t * 1000 for t in gateway_s], [t * 1000 for t in bare_s]
    ratios = sorted(r.ratio for r in rounds)
    gateway_cpu_ms = statistics.median(r.gateway_cpu_ms for r in rounds)
    client_cpu_ms = statistics.median(r.client_cpu_ms for r in rounds)
    bare_sps = statistics.median(r.bare_sps for r in rounds)
    model_busy = statistics.median(r.model_busy for r in rounds)
    model_ms = statistics.median(r.model_ms_per_text for r in rounds)
    mean_batch = statistics.median(r.mean_batch for r in rounds)

    cores = os.cpu_count() or 1
    g50, b50 = statistics.median(gateway_ms), statistics.median(bare_ms)
    lines = [
        "Semantic hits (a paraphrase of a cached question, so the exact tier misses and the "
        "question is embedded and searched) through `frugal serve` in front of `frugal sim`, "
        "against the bare ONNX embedder in-process (one call after each request, so both see the "
        "same moments). Both are driven by a minimal keep-alive HTTP/1.1 client "
        "(`benchmarks/_lean_http.py`, about 0.05 ms of CPU a request), because on a small "
        "machine a full client's CPU is taken from the gateway being measured.",
        "",
        "| latency, one client | median (ms) | p95 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|",
        f"| bare embedder call | {b50:.2f} | {percentile(bare_ms, 95):.2f} | {percentile(bare_ms, 99):.2f} |",
        f"| semantic hit through the gateway | {g50:.2f} | {percentile(gateway_ms, 95):.2f} "
        f"| {percentile(gateway_ms, 99):.2f} |",
        "",
        f"**Hit path / embedder: {g50 / b50:.2f}×** at the median (goal ≤ 1.3×).",
        "",
        f"| round ({args.clients} clients) | embedder alone, batches of "
        f"{args.clients} (sentences/s) | semantic hits through the gateway (requests/s) | ratio |",
        "|---:|---:|---:|---:|",
        *(
            f"| {number} | {r.bare_sps:.0f} | {r.gateway_rps:.0f} | {r.ratio:.0%} |"
            for number, r in enumerate(rounds, 1)
        ),
        "",
        f"**Gateway hits / embedder throughput: {statistics.median(ratios):.0%}** at the median "
        f"of {len(rounds)} rounds (goal ≥ 80%); rounds ranged from {ratios[0]:.0%} to "
        f"{ratios[-1]:.0%}.",
        "",
        f"Where the time went during the gateway's rounds (medians): a model call was in "
        f"progress {model_busy:.0%} of the time, with {mean_batch:.1f} texts a call, and took "
        f"{model_ms:.2f} ms a text, against {1000 / bare_sps:.2f} ms a text alone in batches of "
        f"{args.clients}. Per request, the gateway process used {gateway_cpu_ms:.1f} ms of CPU "
        f"and the load generator {client_cpu_ms:.1f} ms; the embedder alone needs "
        f"{cores * 1000 / bare_sps:.1f} ms of the {cores} cores a text. So the model never "
        "waits for work: it is slower because the event loop's HTTP and cache work (the "
        f"remaining {gateway_cpu_ms - cores * 1000 / bare_sps:.1f} ms a request) and the load "
        "generator take turns on its cores, and a call's two threads wait for each other, so "
        "the one they interrupt holds up both.",
        "",
    ]
    write_report(
        args.out,
        title="Cache hit path",
        command=(
            f"python benchmarks/cache_hit_path.py --requests {args.requests} "
            f"--clients {args.clients} --seconds {args.seconds:g} --rounds {args.rounds}"
        ),
        lines=lines,
    )


if __name__ == "__main__":
    main()
