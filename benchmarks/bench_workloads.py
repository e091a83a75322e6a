"""`frugal bench` on the two public workloads, as committed under `benchmarks/results/`.

    python benchmarks/bench_workloads.py [--requests 2000] [--only clinc150|qqp]

Runs the command a user would run and adds the machine, the date and the exact command to its
markdown table (its JSON and PNGs sit beside it, in ``bench_<workload>/``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, PAIRS, ROOT, shown  # noqa: E402
from _machine import write_report  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORKLOADS = {"clinc150": INTENTS, "qqp": PAIRS}
THRESHOLDS = "0.80,0.85,0.88,0.92,0.95"


def run(name: str, requests: int, clients: int) -> None:
    out = RESULTS / f"bench_{name}"
    # Paths relative to the repository root, where it runs: the command shown is the one run.
    args = ["bench", "--workload", shown(WORKLOADS[name]), "--requests", str(requests)]
    args += ["--clients", str(clients), "--thresholds", THRESHOLDS, "--out", shown(out)]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "frugal", *args], check=True, cwd=ROOT)
    took = time.perf_counter() - started
    table = (out / "bench.md").read_text().splitlines()[2:]
    lines = [
        f"`{shown(WORKLOADS[name])}` as a stream of {requests:,} prompts "
        f"(Zipf 1.1 over {'intents' if name == 'clinc150' else 'duplicate clusters'}, seed 0), "
        f"{clients} clients in a closed loop, model `gpt-4o-mini` against `frugal sim` (500 ms "
        "a call, 50 ms a prompt, 5 ms an output token). Each configuration has a fresh "
        "simulator and a fresh gateway (empty cache); batching is off but in "
        "`semantic+batching`. Wrong hits: answers not fetched for the prompt (hits and "
        "coalesced) that were written for a prompt of another intent or cluster. "
        f"The whole run took {took / 60:.1f} min.",
        "",
        *table,
        "",
        f"![calls saved and wrong hits by threshold](bench_{name}/thresholds.png)",
        f"![latency](bench_{name}/latency.png)",
        "",
    ]
    write_report(
        RESULTS / f"bench_{name}.md",
        title=f"frugal bench: {name}",
        command="frugal " + " ".join(args),
        lines=lines,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--only", choices=list(WORKLOADS))
    args = parser.parse_args()
    for name in WORKLOADS:
        if args.only in (None, name):
            run(name, args.requests, args.clients)


if __name__ == "__main__":
    main()
