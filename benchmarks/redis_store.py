"""The Redis store against the embedded store: lookups, memory, and the hit path, in one run.

    python benchmarks/redis_store.py [--sizes 10000,100000] [--queries 1000] [--hits 300]
                                     [--out benchmarks/results/redis_store.md]

1. Both stores filled with the same real embeddings (distinct Quora questions, see `_qqp.py`)
   in one scope, then the same held-out questions searched in both, interleaved one for one:
   ``search`` p50/p99 and recall@1 against exact search, ``get_exact`` p50, fill rate.
2. Memory per entry in Redis: ``used_memory`` growth over the fill (hash, index, LRU and expiry
   sets) divided by the entries, and ``MEMORY USAGE`` of one entry's hash.
3. A semantic hit through `frugal serve` with each store, the bare embedder call alongside.

Redis is a local Redis 8 with the query engine (`frugal.local.redis_server`), on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).parent))
from _data import PAIRS, shown  # noqa: E402
from _machine import write_report  # noqa: E402
from _qqp import MODEL_DIR, ROOT, load_questions, load_vectors  # noqa: E402
from cache_hit_path import SEEDS, body, hit_latencies  # noqa: E402
from store_lookup import SCOPE, exact_top1, make_entry, recall  # noqa: E402

from frugal.cache.embedded import EmbeddedStore  # noqa: E402
from frugal.cache.embedder import OnnxEmbedder  # noqa: E402
from frugal.cache.redis_store import RedisStore  # noqa: E402
from frugal.cache.store import VectorStore  # noqa: E402
from frugal.local import processes  # noqa: E402
from frugal.local.redis_server import RedisServer  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "redis_store.md"
FILL_CONCURRENCY = 16


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


async def fill(store: VectorStore, vectors: np.ndarray, questions: list[str], now: float) -> float:
    """Put every vector as an entry, ``FILL_CONCURRENCY`` at a time; entries per second."""
    started = time.perf_counter()
    for start in range(0, len(vectors), FILL_CONCURRENCY):
        await asyncio.gather(
            *(
                store.put(make_entry(i, vectors[i], questions[i], now))
                for i in range(start, min(start + FILL_CONCURRENCY, len(vectors)))
            )
        )
    return len(vectors) / (time.perf_counter() - started)


async def compare_lookups(
    size: int, vectors: np.ndarray, questions: list[str], queries: np.ndarray, server: RedisServer
) -> dict[str, dict[str, float]]:
    corpus, texts = vectors[:size], questions[:size]
    truth = exact_top1(corpus, queries)
    now = time.time()
    info = redis.Redis.from_url(server.url)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = await EmbeddedStore.open(
            Path(tmp) / "cache.sqlite3", max_entries=size, dimensions=corpus.shape[1], now=now
        )
        used_before = int(info.info("memory")["used_memory"])
        shared = await RedisStore.open(server.url, max_entries=size, dimensions=corpus.shape[1])
        try:
            rates = {
                "embedded": await fill(embedded, corpus, texts, now),
                "redis": await fill(shared, corpus, texts, now),
            }
            await embedded.settle()
            used_after = int(info.info("memory")["used_memory"])
            stores: dict[str, VectorStore] = {"embedded": embedded, "redis": shared}
            latencies: dict[str, list[float]] = {name: [] for name in stores}
            exact: dict[str, list[float]] = {name: [] for name in stores}
            best: dict[str, list[float]] = {name: [] for name in stores}
            for number, query in enumerate(queries):
                entry = make_entry(number, corpus[number], texts[number], now)
                for name, store in stores.items():
                    started = time.perf_counter()
                    found = await store.search(
                        scope=SCOPE, vector=query, k=1, min_similarity=-1.0, now=now
                    )
                    latencies[name].append(time.perf_counter() - started)
                    best[name].append(found[0].similarity if found else -2.0)
                    started = time.perf_counter()
                    await store.get_exact(scope=SCOPE, prompt_hash=entry.prompt_hash, now=now)
                    exact[name].append(time.perf_counter() - started)
            for name in stores:
                results[name] = {
                    "p50": percentile(latencies[name], 50),
                    "p99": percentile(latencies[name], 99),
                    "recall": recall(best[name], truth),
                    "exact_p50": percentile(exact[name], 50),
                    "fill_rate": rates[name],
                }
            sample = [
                await shared.memory_usage(f"q{i}") for i in range(0, size, max(1, size // 100))
            ]
            results["redis"]["bytes_per_entry"] = (used_after - used_before) / size
            results["redis"]["hash_bytes"] = statistics.mean(sample)
        finally:
            await shared.flush()
            await shared.drop_index()
            await shared.aclose()
            await embedded.aclose()
            info.close()
    return results


def hit_paths(server: RedisServer, requests: int) -> dict[str, tuple[list[float], list[float]]]:
    """Semantic-hit latency through the gateway with each store, and the bare embedder."""
    embedder = OnnxEmbedder(MODEL_DIR)
    found = {}
    for store, env in {
        "embedded": {},
        "redis": {"FRUGAL_STORE": "redis", "FRUGAL_REDIS_URL": server.url},
    }.items():
        with tempfile.TemporaryDirectory() as tmp:
            with processes.running_stack(
                log_dir=Path(tmp),
                sim_args=["--call-latency-ms", "0", "--item-latency-ms", "0"],
                gateway_env={
                    "FRUGAL_LOG_LEVEL": "warning",
                    "FRUGAL_DATA_DIR": tmp,
                    "FRUGAL_MODEL_DIR": str(MODEL_DIR),
                    **env,
                },
            ) as (_, gateway):
                for seed in SEEDS:
                    httpx.post(gateway.url + "/v1/chat/completions", json=body(seed), timeout=30)
                found[store] = asyncio.run(hit_latencies(gateway.url, embedder, requests))
        redis.Redis.from_url(server.url).flushdb()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    questions = load_questions()
    vectors, provenance = load_vectors(questions)
    held_out = len(questions) - args.queries  # queries are real questions never stored
    if max(sizes) > held_out:
        raise SystemExit(f"at most {held_out} entries leave {args.queries} questions held out")
    queries = vectors[held_out:]

    lines = [
        f"Real embeddings: {len(questions):,} distinct Quora questions of `{shown(PAIRS)}`, "
        f"{provenance}. The last "
        f"{args.queries:,} are the queries and are never stored. All entries in one scope; "
        "each query searched in both stores in turn (k=1), then `get_exact` of a stored prompt. "
        f"Redis: a local Redis 8.2 with the query engine on loopback, HNSW M=16, "
        f"EF_CONSTRUCTION=200, EF_RUNTIME=200; puts {FILL_CONCURRENCY} at a time.",
        "",
        "| entries | store | search p50 (ms) | search p99 (ms) | recall@1 | get_exact p50 (ms) "
        "| fill (entries/s) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    memory_lines = ["| entries | Redis memory per entry (bytes) | one entry's hash (bytes) |"]
    memory_lines.append("|---:|---:|---:|")
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer.start(log_path=Path(tmp) / "redis.log") as server,
    ):
        for size in sizes:
            found = asyncio.run(compare_lookups(size, vectors, questions, queries, server))
            for name, r in found.items():
                lines.append(
                    f"| {size:,} | {name} | {ms(r['p50'])} | {ms(r['p99'])} | {r['recall']:.3f} "
                    f"| {ms(r['exact_p50'])} | {r['fill_rate']:,.0f} |"
                )
                print(lines[-1], flush=True)
            redis_row = found["redis"]
            memory_lines.append(
                f"| {size:,} | {redis_row['bytes_per_entry']:,.0f} | {redis_row['hash_bytes']:,.0f} |"
            )
        hits = hit_paths(server, args.hits)

    lines += ["", *memory_lines, ""]
    lines += [
        "A semantic hit through `frugal serve` (one client, keep-alive; see "
        "`cache_hit_path.py`), each store in turn, with the bare embedder call after each "
        "request:",
        "",
        "| store | hit p50 (ms) | hit p95 (ms) | bare embedder p50 (ms) | hit / embedder |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (through, bare) in hits.items():
        g50, b50 = statistics.median(through), statistics.median(bare)
        lines.append(
            f"| {name} | {ms(g50)} | {ms(percentile(through, 95))} | {ms(b50)} | {g50 / b50:.2f}× |"
        )
    lines.append("")
    write_report(
        args.out,
        title="Redis store vs embedded store",
        command=(
            f"python benchmarks/redis_store.py --sizes {args.sizes} --queries {args.queries} "
            f"--hits {args.hits}"
        ),
        lines=lines,
    )


if __name__ == "__main__":
    main()
