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
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _lean_http import LeanConnection  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal import processes  # noqa: E402
from frugal.cache.embedder import OnnxEmbedder  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

MODEL_DIR = Path(".frugal/models")
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


def body(text: str) -> dict[str, object]:
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


async def hit_throughput(url: str, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        nonlocal done
        connection = await LeanConnection.open(url)
        prepared = [connection.prepare(PATH, body(text)) for text in PARAPHRASES]
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
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds, alternated")
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
                gateway_rps = asyncio.run(hit_throughput(gateway.url, args.clients, args.seconds))
                served = gateway_rps * args.seconds
                after = resource.getrusage(resource.RUSAGE_SELF)
                client_cpu = (after.ru_utime - client_before.ru_utime) + (
                    after.ru_stime - client_before.ru_stime
                )
                rounds.append(
                    (
                        gateway_rps,
                        embedder_throughput(embedder, args.clients, args.seconds),
                        (cpu_seconds(gateway.process.pid) - cpu_before) / served * 1000,
                        client_cpu / served * 1000,
                    )
                )

    gateway_ms, bare_ms = [t * 1000 for t in gateway_s], [t * 1000 for t in bare_s]
    ratios = sorted(gateway_rps / bare_sps for gateway_rps, bare_sps, _, _ in rounds)
    gateway_cpu_ms = statistics.median(r[2] for r in rounds)
    client_cpu_ms = statistics.median(r[3] for r in rounds)
    bare_sps = statistics.median(r[1] for r in rounds)

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
            f"| {number} | {bare:.0f} | {through:.0f} | {through / bare:.0%} |"
            for number, (through, bare, _, _) in enumerate(rounds, 1)
        ),
        "",
        f"**Gateway hits / embedder throughput: {statistics.median(ratios):.0%}** at the median "
        f"of {len(rounds)} rounds (goal ≥ 80%).",
        "",
        f"Where the CPU went during the throughput run, per request: the gateway process "
        f"{gateway_cpu_ms:.1f} ms (HTTP, validation, embedding, search), the load generator "
        f"{client_cpu_ms:.1f} ms (its own HTTP client); the embedder alone needs "
        f"{cores * 1000 / bare_sps:.1f} ms of the {cores} cores per sentence. The rest, about "
        f"{gateway_cpu_ms - cores * 1000 / bare_sps:.1f} ms a request of HTTP and cache work "
        "on the event loop, shares the cores with the model; and while the loop answers a "
        "finished batch and reads the next requests, the model waits for them.",
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
