"""A semantic hit in-process (`frugal.wrap` around the sync SDK client) against the same hit
through the gateway (the same SDK client pointed at `frugal serve`) and the bare embedder call
on one prompt, measured side by side in one run:

    python benchmarks/library_hit_path.py [--requests 300]

Every request is a paraphrase of a cached question (the exact tier misses, the question is
embedded and searched). One client, the three measures interleaved one for one after a
warm-up, so each sees the same moments of a shared machine. Goal: the library's hit at most
1.1x the bare embedder call. Writes ``benchmarks/results/library_hit_path.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_report  # noqa: E402
from cache_hit_path import PARAPHRASES, SEEDS  # noqa: E402

import frugal  # noqa: E402
from frugal.cache import load_embedder, resolve_model  # noqa: E402
from frugal.config import load_settings  # noqa: E402
from frugal.local.processes import start_frugal  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

MODEL_DIR = load_settings().models_path
WARM_UP = 20
KEY = "sk-bench"


def ask(client: openai.OpenAI, text: str) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="sim-small", messages=[{"role": "user", "content": text}]
    )
    raw.parse()
    return raw.headers["x-frugal-cache"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="frugal-library-bench-"))
    sim = start_frugal(["sim", "--require-api-key", KEY], log_dir=work)
    env = {
        "FRUGAL_UPSTREAM_API_KEY": KEY,
        "FRUGAL_DATA_DIR": str(work / "gateway"),
        "FRUGAL_MODEL_DIR": str(MODEL_DIR),
    }
    gateway = start_frugal(
        ["serve", "--upstream", sim.url + "/v1"], log_dir=work, env=env, ready_path="/readyz"
    )
    model = load_embedder(backend="onnx", model=resolve_model("base", model_dir=MODEL_DIR))
    given = openai.OpenAI(base_url=sim.url + "/v1", api_key=KEY)
    try:
        with (
            frugal.wrap(given, data_dir=work / "library", model_dir=MODEL_DIR) as library,
            openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0) as through,
        ):
            for seed in SEEDS:
                ask(library, seed), ask(through, seed)
            measures: dict[str, Callable[[str], object]] = {
                "embedder alone (one prompt)": lambda text: model.embed([text]),
                "library hit (frugal.wrap, sync SDK)": lambda text: ask(library, text),
                "gateway hit (SDK over HTTP)": lambda text: ask(through, text),
            }
            timings: dict[str, list[float]] = {label: [] for label in measures}
            for i in range(WARM_UP + args.requests):
                text = PARAPHRASES[i % len(PARAPHRASES)]
                for label, measure in measures.items():
                    started = time.perf_counter()
                    outcome = measure(text)
                    elapsed = (time.perf_counter() - started) * 1000
                    if isinstance(outcome, str) and outcome != "hit":
                        raise SystemExit(f"{label}: {outcome!r} for {text!r}, not a hit")
                    if i >= WARM_UP:
                        timings[label].append(elapsed)
            upstream = httpx.get(sim.url + "/sim/stats").json()["calls"]
    finally:
        gateway.stop()
        sim.stop()
    embedder = statistics.median(timings["embedder alone (one prompt)"])
    lines = [
        f"{args.requests} semantic hits each, after {WARM_UP} warm-up rounds, interleaved; "
        f"upstream calls in all: {upstream} (the {len(SEEDS)} seeds, once per door).",
        "",
        "| path | p50 ms | p95 ms | p50 / embedder |",
        "|---|---|---|---|",
    ]
    for label, values in timings.items():
        p50 = statistics.median(values)
        lines.append(
            f"| {label} | {p50:.2f} | {percentile(values, 95):.2f} | {p50 / embedder:.2f}x |"
        )
    library = statistics.median(timings["library hit (frugal.wrap, sync SDK)"])
    verdict = "met" if library <= 1.1 * embedder else "not met"
    lines += ["", f"Goal (library hit at most 1.1x the embedder): {verdict}."]
    write_report(
        Path(__file__).parent / "results" / "library_hit_path.md",
        title="The library's hit path",
        command=f"python benchmarks/library_hit_path.py --requests {args.requests}",
        lines=lines,
    )


if __name__ == "__main__":
    main()
