"""What a cache miss costs: the same new questions direct to `frugal sim`, through the gateway
as a pass-through, and through the gateway with its semantic cache, interleaved in one run.

    python benchmarks/miss_path.py [--requests 500] [--out benchmarks/results/miss_path.md]

Every question is asked once (distinct Quora questions), so with the cache on each request is a
miss that is embedded, searched for, sent upstream and stored. The threshold is 0.99, so that
no two different questions hit; any hit is counted and left out. The simulator answers at
once, so what is measured is the gateway's own cost; batching is off (its window is a wait
by design, measured in `batching.py`).
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

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_report  # noqa: E402
from _qqp import MODEL_DIR, load_questions  # noqa: E402

from frugal.local import processes  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

GATEWAY = {"FRUGAL_LOG_LEVEL": "warning", "FRUGAL_BATCH_WINDOW_MS": "0"}


def body(text: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


async def measure(targets: dict[str, str], questions: list[str]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in targets}
    hits = 0
    async with httpx.AsyncClient(timeout=30) as http:
        for url in targets.values():  # warm connections and code paths with other questions
            for text in questions[-30:]:
                (await http.post(url + "/v1/chat/completions", json=body(text))).raise_for_status()
        for number, text in enumerate(questions[:-30]):
            names = list(targets)
            names = names[number % len(names) :] + names[: number % len(names)]  # rotate order
            for name in names:
                started = time.perf_counter()
                answer = await http.post(targets[name] + "/v1/chat/completions", json=body(text))
                elapsed = time.perf_counter() - started
                answer.raise_for_status()
                if answer.headers.get("x-frugal-cache") == "hit":
                    hits += 1
                    continue
                timings[name].append(elapsed)
    timings["_hits"] = [float(hits)]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "miss_path.md"
    )
    args = parser.parse_args()
    questions = load_questions()[: args.requests + 30]

    with tempfile.TemporaryDirectory() as tmp:
        sim = processes.start_frugal(["sim", "--call-latency-ms", "0", "--item-latency-ms", "0"],
                                     log_dir=Path(tmp))  # fmt: skip
        upstream = sim.url + "/v1"
        try:
            plain = processes.start_frugal(
                ["serve", "--upstream", upstream],
                log_dir=Path(tmp),
                env={**GATEWAY, "FRUGAL_CACHE_MODE": "off", "FRUGAL_DATA_DIR": f"{tmp}/a"},
                ready_path="/readyz",
            )
            cached = processes.start_frugal(
                ["serve", "--upstream", upstream],
                log_dir=Path(tmp),
                env={
                    **GATEWAY,
                    "FRUGAL_CACHE_THRESHOLD": "0.99",
                    "FRUGAL_DATA_DIR": f"{tmp}/b",
                    "FRUGAL_MODEL_DIR": str(MODEL_DIR),
                },
                ready_path="/readyz",
            )
            try:
                targets = {
                    "direct to the simulator": sim.url,
                    "gateway, cache off": plain.url,
                    "gateway, semantic cache (a miss)": cached.url,
                }
                timings = asyncio.run(measure(targets, questions))
            finally:
                plain.stop()
                cached.stop()
        finally:
            sim.stop()

    hits = int(timings.pop("_hits")[0])
    rows = []
    for name, values in timings.items():
        ms = [v * 1000 for v in values]
        rows.append((name, statistics.median(ms), percentile(ms, 95), percentile(ms, 99)))
    direct, plain_row, miss = rows
    lines = [
        f"{args.requests} distinct questions, each sent once to each target in turn (one client, "
        f"sequential); {hits} would-be hits at 0.99 were left out.",
        "",
        "| path | median (ms) | p95 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|",
        *(f"| {n} | {m:.2f} | {p:.2f} | {q:.2f} |" for n, m, p, q in rows),
        "",
        f"A miss costs **{miss[1] - direct[1]:.2f} ms** over calling the provider directly at the "
        f"median ({miss[2] - direct[2]:.2f} ms at p95): {plain_row[1] - direct[1]:.2f} ms for the "
        f"gateway's hop and {miss[1] - plain_row[1]:.2f} ms for the cache (embedding the "
        "question, the exact and semantic lookups, storing the answer). Against a provider's "
        "hundreds of milliseconds per call, that is what a miss adds.",
        "",
    ]
    write_report(
        args.out,
        title="The miss path",
        command=f"python benchmarks/miss_path.py --requests {args.requests}",
        lines=lines,
    )


if __name__ == "__main__":
    main()
