"""The semantic hit path across its variants, measured side by side in one run:

    python benchmarks/hit_path_variants.py [--requests 400] [--clients 16] [--seconds 8]

- the Responses API's hit (``POST /v1/responses``) against the chat hit, on one gateway with the
  same questions — goal: within 10%;
- the chat hit with the shipped tuned model (``FRUGAL_EMBEDDER_MODEL=quora``, int8) against the
  base model, each on its own gateway in front of one simulator — goal: no slower.

Latency: one client, the variants' requests interleaved one for one (so that every variant sees
the same moments of a shared machine), after a warm-up. Throughput: ``--clients`` concurrent
clients per variant for ``--seconds``, the variants' rounds alternated. Every request must be
a semantic hit (a paraphrase of a cached question: the exact tier misses, the question is
embedded and searched). Writes ``benchmarks/results/hit_path_variants.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _lean_http import LeanConnection  # noqa: E402
from _machine import write_report  # noqa: E402
from cache_hit_path import PARAPHRASES, SEEDS, hit_throughput  # noqa: E402

from frugal.config import load_settings  # noqa: E402
from frugal.local.processes import start_frugal  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

MODEL_DIR = load_settings().models_path
WARM_UP = 20


@dataclass(frozen=True)
class Variant:
    label: str
    gateway: str  # which gateway serves it: "base" or "quora"
    path: str

    def body(self, text: str) -> dict[str, Any]:
        if self.path == "/v1/responses":
            return {"model": "sim-small", "input": text}
        return {"model": "sim-small", "messages": [{"role": "user", "content": text}]}


VARIANTS = (
    Variant("chat, base model", "base", "/v1/chat/completions"),
    Variant("Responses API, base model", "base", "/v1/responses"),
    Variant("chat, quora model (int8)", "quora", "/v1/chat/completions"),
)


async def latencies(urls: dict[str, str], requests: int) -> dict[str, list[float]]:
    """Milliseconds per hit, the variants' requests interleaved one for one."""
    connections = {v.label: await LeanConnection.open(urls[v.gateway]) for v in VARIANTS}
    prepared = {
        v.label: [connections[v.label].prepare(v.path, v.body(t)) for t in PARAPHRASES]
        for v in VARIANTS
    }
    found: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
    try:
        for number in range(requests + WARM_UP):
            for variant in VARIANTS:
                connection = connections[variant.label]
                started = time.perf_counter()
                _, headers, _ = await connection.send(
                    prepared[variant.label][number % len(PARAPHRASES)]
                )
                elapsed = time.perf_counter() - started
                assert headers["x-frugal-cache"] == "hit", (variant, headers)
                if number >= WARM_UP:
                    found[variant.label].append(elapsed * 1000)
    finally:
        for connection in connections.values():
            await connection.aclose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "hit_path_variants.md"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        sim = start_frugal(
            ["sim", "--call-latency-ms", "0", "--item-latency-ms", "0"], log_dir=logs
        )
        gateways = {}
        try:
            for model in ("base", "quora"):
                gateways[model] = start_frugal(
                    ["serve", "--upstream", sim.url + "/v1"],
                    log_dir=logs,
                    env={
                        "FRUGAL_LOG_LEVEL": "warning",
                        "FRUGAL_DATA_DIR": str(logs / model),
                        "FRUGAL_MODEL_DIR": str(MODEL_DIR.resolve()),
                        "FRUGAL_EMBEDDER_MODEL": model,
                    },
                    ready_path="/readyz",
                )
            urls = {model: gateway.url for model, gateway in gateways.items()}
            for variant in VARIANTS:
                for seed in SEEDS:
                    httpx.post(urls[variant.gateway] + variant.path, json=variant.body(seed))
            found = asyncio.run(latencies(urls, args.requests))
            rounds: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    rps = asyncio.run(
                        hit_throughput(
                            urls[variant.gateway],
                            args.clients,
                            args.seconds,
                            path=variant.path,
                            make_body=variant.body,
                        )
                    )
                    rounds[variant.label].append(rps)
        finally:
            for gateway in gateways.values():
                gateway.stop()
            sim.stop()

    medians = {label: statistics.median(ms) for label, ms in found.items()}
    rates = {label: statistics.median(rps) for label, rps in rounds.items()}
    chat, responses, quora = (v.label for v in VARIANTS)
    lines = [
        "Semantic hits (paraphrases of cached questions) through `frugal serve` in front of "
        "`frugal sim`, driven by the minimal keep-alive client of `benchmarks/_lean_http.py`. "
        "Two gateways, one per embedding model, in front of one simulator; the Responses API "
        "and chat share the base model's gateway.",
        "",
        f"| variant | median (ms) | p95 (ms) | p99 (ms) | hits/s, {args.clients} clients "
        f"(median of {args.rounds} rounds) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {label} | {medians[label]:.2f} | {percentile(ms, 95):.2f} "
            f"| {percentile(ms, 99):.2f} | {rates[label]:.0f} |"
            for label, ms in found.items()
        ),
        "",
        f"**Responses API / chat: {medians[responses] / medians[chat]:.2f}× the latency at the "
        f"median, {rates[responses] / rates[chat]:.0%} of the throughput** (goal: within 10%).",
        "",
        f"**quora model / base model: {medians[quora] / medians[chat]:.2f}× the latency at the "
        f"median, {rates[quora] / rates[chat]:.0%} of the throughput** (goal: no slower).",
        "",
        "Rounds (hits/s): "
        + "; ".join(
            f"{label}: {', '.join(f'{r:.0f}' for r in rps)}" for label, rps in rounds.items()
        )
        + ".",
        "",
    ]
    write_report(
        args.out,
        title="Hit path variants: the Responses API and the shipped tuned model",
        command=(
            f"python benchmarks/hit_path_variants.py --requests {args.requests} "
            f"--clients {args.clients} --seconds {args.seconds:g} --rounds {args.rounds}"
        ),
        lines=lines,
    )


if __name__ == "__main__":
    main()
