"""A re-embedding job where half the chunks were embedded before: direct against frugal.

    python benchmarks/embedding_cache.py [--chunks 2000] [--list-size 100] [--clients 8]

A retrieval pipeline re-embeds its corpus (a document changed, a chunker was tuned), and most
chunks are the very texts it embedded last time. ``--chunks`` distinct CLINC150 utterances stand
for the corpus: half of them were embedded through frugal earlier (a warm-up job, not timed);
then the whole corpus, shuffled, is embedded in lists of ``--list-size`` by ``--clients``
concurrent clients with the official `openai` SDK, straight to `frugal sim` and through
`frugal serve` (each with a fresh simulator). Measured: the items the provider embedded
(`/sim/stats` ``prompts``), the job's throughput, and that every vector through frugal equals
the direct one.

The simulator is set as an embeddings API is bound: by the items it embeds (providers price
and rate-limit embeddings by tokens), 50 ms a call and 10 ms an item. Writes
``benchmarks/results/embedding_cache.md``; goals: upstream items halved, throughput at least
1.8x direct.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import openai

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, rows, shown  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.config import load_settings  # noqa: E402
from frugal.local.processes import start_frugal  # noqa: E402

MODEL = "text-embedding-3-small"
SIM = ["--call-latency-ms", "50", "--item-latency-ms", "10", "--token-latency-ms", "0"]


async def embed_job(
    base_url: str, chunks: list[str], *, list_size: int, clients: int
) -> tuple[dict[str, list[float]], float]:
    """Every chunk's vector, and the job's wall time in seconds."""
    lists = [chunks[start : start + list_size] for start in range(0, len(chunks), list_size)]
    pending = iter(lists)
    vectors: dict[str, list[float]] = {}
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=120)

    async def worker() -> None:
        for texts in pending:
            answer = await sdk.embeddings.create(model=MODEL, input=texts)
            for item in answer.data:
                vectors[texts[item.index]] = item.embedding

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(clients)))
    finally:
        await sdk.close()
    return vectors, time.perf_counter() - started


def items_embedded(sim_url: str) -> int:
    return int(httpx.get(sim_url + "/sim/stats").json()["prompts"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--list-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "embedding_cache.md"
    )
    args = parser.parse_args()
    texts = list(dict.fromkeys(row["text"] for row in rows(INTENTS)))
    random.Random(0).shuffle(texts)
    corpus = texts[: args.chunks]
    embedded_before = corpus[: args.chunks // 2]
    job = random.Random(1).sample(corpus, len(corpus))
    run = {"list_size": args.list_size, "clients": args.clients}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        sim = start_frugal(["sim", *SIM], log_dir=logs)
        try:
            direct, direct_s = asyncio.run(embed_job(sim.url + "/v1", job, **run))
            direct_items = items_embedded(sim.url)
        finally:
            sim.stop()
        sim = start_frugal(["sim", *SIM], log_dir=logs)
        gateway = None
        try:
            gateway = start_frugal(
                ["serve", "--upstream", sim.url + "/v1"],
                log_dir=logs,
                env={
                    "FRUGAL_LOG_LEVEL": "warning",
                    "FRUGAL_DATA_DIR": str(logs / "data"),
                    "FRUGAL_MODEL_DIR": str(load_settings().models_path.resolve()),
                },
                ready_path="/readyz",
            )
            asyncio.run(embed_job(gateway.url + "/v1", embedded_before, **run))
            before = items_embedded(sim.url)
            through, through_s = asyncio.run(embed_job(gateway.url + "/v1", job, **run))
            through_items = items_embedded(sim.url) - before
        finally:
            if gateway is not None:
                gateway.stop()
            sim.stop()
    same = all(np.array_equal(direct[text], through[text]) for text in corpus)
    speed = (len(job) / through_s) / (len(job) / direct_s)
    lines = [
        f"{len(corpus):,} distinct utterances of `{shown(INTENTS)}` as the corpus; "
        f"{len(embedded_before):,} of them embedded through frugal before the job. The job: the "
        f"whole corpus, shuffled, in lists of {args.list_size} from {args.clients} concurrent "
        f"clients (`openai` SDK, `{MODEL}`), against `frugal sim {' '.join(SIM)}` (an "
        "embeddings API bound by the items it embeds), a fresh simulator each way.",
        "",
        "| | items the provider embedded | job time (s) | chunks/s |",
        "|---|---:|---:|---:|",
        f"| direct | {direct_items:,} | {direct_s:.2f} | {len(job) / direct_s:.0f} |",
        f"| through frugal | {through_items:,} | {through_s:.2f} | {len(job) / through_s:.0f} |",
        "",
        f"**Upstream items: {through_items / direct_items:.0%} of direct; throughput "
        f"{speed:.2f}x direct** (goals: half, at least 1.8x). Every vector through frugal equals "
        f"the direct one: {'yes' if same else 'NO'}.",
        "",
    ]
    write_report(
        args.out,
        title="Embedding cache: a re-embedding job where half the chunks repeat",
        command=(
            f"python benchmarks/embedding_cache.py --chunks {args.chunks} "
            f"--list-size {args.list_size} --clients {args.clients}"
        ),
        lines=lines,
    )


if __name__ == "__main__":
    main()
