"""Does the embedded store's float16 encoding change which lookups hit? `frugal tune` on the
held-out Quora pairs, twice: similarities computed beside the store (float32 vectors), and
through it (`--through-store`: each pair's first question stored, the second looked up).

    python benchmarks/store_precision.py [--out benchmarks/results/store_precision.md]

The goal: precision and recall at the operating threshold unchanged to three decimals. Both
runs use the pairs `frugal model tune` holds out (whole question clusters, seed 0), which no
shipped model was trained on. About 3 minutes on 2 cores (the pairs are embedded twice).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _data import PAIRS, ROOT, shown  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.config import DEFAULT_THRESHOLD  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "store_precision.md"


def tune(out: Path, *, through_store: bool) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "frugal", "tune", "--pairs", shown(PAIRS), "--tuning-holdout",
        "--out", str(out),
    ]  # fmt: skip
    if through_store:
        command.append("--through-store")
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads((out / "tune.json").read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        beside = tune(Path(folder) / "beside", through_store=False)
        through = tune(Path(folder) / "through", through_store=True)
    rows_beside = {row["threshold"]: row for row in beside["rows"]}
    rows_through = {row["threshold"]: row for row in through["rows"]}
    recommended = beside["recommended_threshold"]
    operating = {DEFAULT_THRESHOLD, recommended} - {None}
    lines = [
        f"Pairs: {beside['held_out']['pairs']:,} held out of `{shown(PAIRS)}` "
        f"(seed {beside['held_out']['seed']}, whole clusters), base model. The operating "
        f"threshold: {DEFAULT_THRESHOLD}, the default"
        + (
            f", and {recommended}, recommended for a 1% wrong-hit budget."
            if recommended is not None
            else " (no threshold keeps wrong hits of these pairs within a 1% budget, so `frugal "
            "tune` recommends none)."
        ),
        "",
        "| threshold | precision beside | precision through the store | recall beside "
        "| recall through the store | hits beside | hits through |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for threshold, row in rows_beside.items():
        other = rows_through[threshold]
        for name in ("precision", "recall"):
            if row[name] is not None and other[name] is not None:
                worst = max(worst, abs(row[name] - other[name]))
        mark = " (operating)" if threshold in operating else ""
        lines.append(
            f"| {threshold:.2f}{mark} | {_share(row['precision'])} | {_share(other['precision'])} "
            f"| {_share(row['recall'])} | {_share(other['recall'])} | {row['hits']:,} "
            f"| {other['hits']:,} |"
        )
    unchanged = all(
        _rounded(rows_beside[t][name]) == _rounded(rows_through[t][name])
        for t in operating
        for name in ("precision", "recall")
    )
    lines += [
        "",
        f"- precision and recall at the operating thresholds unchanged to three decimals: "
        f"{'met' if unchanged else 'NOT met'}",
        f"- the largest difference at any threshold: {worst:.4f}",
        f"- recommended threshold beside {beside['recommended_threshold']}, through the store "
        f"{through['recommended_threshold']}",
    ]
    write_report(
        args.out,
        title="Float16 vectors in the embedded store: precision and recall on held-out pairs",
        command="python benchmarks/store_precision.py",
        lines=lines,
    )


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


if __name__ == "__main__":
    main()
