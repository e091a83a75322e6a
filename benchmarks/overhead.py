"""The gateway's pass-through overhead: the same requests direct to `frugal sim` and through
`frugal serve`, interleaved in one run so both see the same machine.

    python benchmarks/overhead.py [--requests 1000] [--out benchmarks/results/overhead.md]

The simulator answers with zero latency, so what is measured is the cost of the extra hop:
parsing, validation, the upstream call over a pooled connection, relaying the answer.
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

from frugal.local import processes  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

BODY = {
    "model": "sim-small",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


async def measure(direct_url: str, gateway_url: str, requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"direct": [], "gateway": []}
    async with httpx.AsyncClient(timeout=30) as http:
        targets = {"direct": direct_url, "gateway": gateway_url}
        for url in targets.values():  # warm both paths: connections, pools, lazy imports
            for _ in range(50):
                (await http.post(url + "/v1/chat/completions", json=BODY)).raise_for_status()
        for number in range(requests):
            order = ("direct", "gateway") if number % 2 == 0 else ("gateway", "direct")
            for name in order:
                started = time.perf_counter()
                response = await http.post(targets[name] + "/v1/chat/completions", json=BODY)
                timings[name].append(time.perf_counter() - started)
                response.raise_for_status()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "overhead.md"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # Pass-through: no cache, no batching window, so the hop itself is measured.
        with processes.running_stack(
            log_dir=Path(tmp),
            sim_args=["--call-latency-ms", "0", "--item-latency-ms", "0"],
            gateway_env={
                "FRUGAL_LOG_LEVEL": "warning",
                "FRUGAL_DATA_DIR": tmp,
                "FRUGAL_CACHE_MODE": "off",
                "FRUGAL_BATCH_WINDOW_MS": "0",
            },
        ) as (sim, gateway):
            timings = asyncio.run(measure(sim.url, gateway.url, args.requests))

    rows = []
    for name, values in timings.items():
        ms = [v * 1000 for v in values]
        rows.append((name, statistics.median(ms), percentile(ms, 95), percentile(ms, 99)))
    (_, d50, d95, d99), (_, g50, g95, g99) = rows
    lines = [
        f"{args.requests} chat completions each way, one client, sequential, interleaved; the "
        "simulator answers with zero latency, so the difference is the gateway's own cost. The "
        "gateway runs as a pass-through (`FRUGAL_CACHE_MODE=off`, `FRUGAL_BATCH_WINDOW_MS=0`).",
        "",
        "| path | median (ms) | p95 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|",
        *(f"| {n} | {m:.2f} | {p:.2f} | {q:.2f} |" for n, m, p, q in rows),
        f"| **added by the gateway** | **{g50 - d50:.2f}** | **{g95 - d95:.2f}** "
        f"| {g99 - d99:.2f} |",
        "",
    ]
    write_report(
        args.out,
        title="Gateway pass-through overhead",
        command=(f"python benchmarks/overhead.py --requests {args.requests}"),
        lines=lines,
    )


if __name__ == "__main__":
    main()
