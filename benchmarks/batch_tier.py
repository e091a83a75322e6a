"""What work that can wait costs: live, through the provider's Batch API, and through frugal's.

    python benchmarks/batch_tier.py [--requests 2000] [--only clinc150|qqp]

Runs `frugal bench` with four setups on each public workload, the same stream of labelled
prompts: ``no-cache`` (every prompt live, through the gateway), ``semantic`` (live, through the
semantic cache), ``batch-direct`` (the stream as one file to the provider's Batch API: every
line at the batch price) and ``deferred`` (the same file through frugal's Batch API: repeats and
paraphrases folded, one provider batch of the rest at the batch price). Writes
``benchmarks/results/batch_tier.md`` with the lines (calls) sent and the dollars side by side;
the goal: ``deferred`` costs at most 35% of ``no-cache`` on CLINC150.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, PAIRS, ROOT, shown  # noqa: E402
from _machine import write_report  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORKLOADS = {"clinc150": INTENTS, "qqp": PAIRS}
SETUPS = "no-cache,semantic,batch-direct,deferred"
GOAL = 0.35


def run(name: str, requests: int, clients: int) -> tuple[list[str], str]:
    out = RESULTS / f"batch_tier_{name}"
    args = ["bench", "--workload", shown(WORKLOADS[name]), "--requests", str(requests)]
    args += ["--clients", str(clients), "--thresholds", "", "--only", SETUPS]
    args += ["--out", shown(out)]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "frugal", *args], check=True, cwd=ROOT)
    took = time.perf_counter() - started
    rows = {
        row["config"]: row for row in json.loads((out / "bench.json").read_text())["configurations"]
    }
    live = rows["no-cache"]["upstream_cost_usd"]
    lines = [
        f"## {name}: `{shown(WORKLOADS[name])}`, {requests:,} prompts",
        "",
        "| setup | sent upstream | folded or from the cache | wrong answers | cost | of live no-cache |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setup in SETUPS.split(","):
        row = rows[setup]
        saved = row["hits"] + row["coalesced"]
        lines.append(
            f"| {setup} | {row['upstream_calls']:,} | {saved:,} | {row['wrong_hits']:,} "
            f"| ${row['upstream_cost_usd']:.4f} | {row['upstream_cost_usd'] / live:.0%} |"
        )
    share = rows["deferred"]["upstream_cost_usd"] / live
    lines += [
        "",
        f"The deferred tier costs **{share:.0%}** of live no-cache"
        + (f" (goal ≤ {GOAL:.0%})." if name == "clinc150" else ".")
        + f" The run took {took / 60:.1f} min; `{shown(out)}/` holds its JSON and plots.",
        "",
    ]
    return lines, "frugal " + " ".join(arg if arg else "''" for arg in args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--only", choices=list(WORKLOADS))
    args = parser.parse_args()
    lines, commands = [], []
    for name in WORKLOADS:
        if args.only in (None, name):
            section, command = run(name, args.requests, args.clients)
            lines += section
            commands.append(command)
    intro = [
        "Each setup has a fresh `frugal sim` (500 ms a call, 50 ms a prompt, 5 ms an output "
        "token; a batch answered 2 s after it is created) and, but for `batch-direct`, a fresh "
        "gateway with an empty cache; the Zipf 1.1 stream (seed 0) is the same for all. Live "
        "setups: 32 clients in a closed loop, `gpt-4o-mini` at its list price; batch setups: "
        "the stream as one JSONL file, at the Batch API's price (half the list price). "
        "Folded or from the cache: hits and coalesced requests live; lines answered by another "
        "line of the file in the deferred tier. Wrong answers: those written for a prompt of "
        "another intent or duplicate cluster.",
        "",
        "Commands: " + "; ".join(f"`{command}`" for command in commands) + ".",
        "",
    ]
    write_report(
        RESULTS / "batch_tier.md",
        title="The Batch API tier: live, batch and deferred costs",
        command="python benchmarks/batch_tier.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        lines=intro + lines,
    )


if __name__ == "__main__":
    main()
