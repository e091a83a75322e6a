"""`frugal tune` on the Quora pairs and `frugal analyze` on CLINC150, as a user would run them;
their tables become markdown beside their JSON and PNG.

    python benchmarks/threshold_tools.py [--only tune|analyze]

Writes ``benchmarks/results/tune_qqp/`` and ``analyze_clinc150/`` (the commands' own output)
and ``tune_qqp.md``, ``analyze_clinc150.md``. CLINC150 is replayed whole, in an order shuffled
with seed 0 (train, validation and test together: a log with no time order of its own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, PAIRS, ROOT, rows, shown  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.bench.report import share  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DETAIL_INTENTS = "translate,weather,calculator"


def run(args: list[str], *, reuse: Path | None = None) -> str:
    """Run the command; with ``reuse`` (an output it wrote before), only say so."""
    if reuse is not None and reuse.exists():
        return f"the output of an earlier run ({reuse.name}) was reused"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "frugal", *args], check=True, cwd=ROOT)
    return f"took {time.perf_counter() - started:.0f} s, embedding included"


def tune(reuse: bool) -> None:
    out = RESULTS / "tune_qqp"
    # Paths relative to the repository root, where it runs: the command shown is the one run.
    args = ["tune", "--pairs", shown(PAIRS), "--out", shown(out)]
    took = run(args, reuse=out / "tune.json" if reuse else None)
    table = json.loads((out / "tune.json").read_text())
    target = table["max_wrong_hit_rate"]
    if table["recommended_threshold"] is None:
        fewest = min(
            (row for row in table["rows"] if row["wrong_hit_rate"] is not None),
            key=lambda row: row["wrong_hit_rate"],
        )
        verdict = (
            f"**no threshold keeps wrong hits at or below {target:.0%}**; the fewest are "
            f"{share(fewest['wrong_hit_rate'])} at {fewest['threshold']:.2f}, with "
            f"{share(fewest['recall'])} of the duplicates found"
        )
    else:
        verdict = f"recommended threshold: **{table['recommended_threshold']:.2f}**"
    lines = [
        f"{len(rows(PAIRS)):,} labelled pairs (`{shown(PAIRS)}`): "
        f"each pair is a would-be lookup of `b` with `a` cached; {took}. For at most "
        f"{target:.0%} wrong hits, {verdict}.",
        "",
        "| threshold | hit rate | precision | recall | F1 | wrong hits |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table["rows"]:
        f1 = "–" if row["f1"] is None else f"{row['f1']:.3f}"
        lines.append(
            f"| {row['threshold']:.2f} | {share(row['hit_rate'])} | {share(row['precision'])} "
            f"| {share(row['recall'])} | {f1} | {share(row['wrong_hit_rate'])} |"
        )
    lines += ["", "![tune](tune_qqp/tune.png)", ""]
    write_report(
        RESULTS / "tune_qqp.md",
        title="frugal tune on Quora question pairs",
        command="frugal " + " ".join(args),
        lines=lines,
    )


def analyze(reuse: bool) -> None:
    out = RESULTS / "analyze_clinc150"
    args = ["analyze", "--prompts", shown(INTENTS), "--shuffle", "0"]
    args += ["--detail-intents", DETAIL_INTENTS, "--out", shown(out)]
    took = run(args, reuse=out / "analyze.json" if reuse else None)
    report = json.loads((out / "analyze.json").read_text())
    lines = [
        f"{report['prompts']:,} CLINC150 utterances (`{shown(INTENTS)}`, "
        f"all splits), replayed {report['order']} through a fresh, unbounded cache, once per "
        f"threshold. A hit is wrong when the cached utterance has another intent, or either is "
        f"`oos` (out of scope: never the same answer). *Detail hits* are right by label but in "
        f"intents whose answers carry details ({DETAIL_INTENTS}), so they may be wrong too. "
        f"The run {took}.",
        "",
        "| cache | hits | hit rate | upstream calls | wrong hits | wrong-hit rate | detail hits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [report["exact"], *report["semantic"]]:
        lines.append(
            f"| {row['cache']} | {row['hits']:,} | {share(row['hit_rate'])} "
            f"| {row['upstream_calls']:,} | {row['wrong_hits']:,} | {share(row['wrong_hit_rate'])} "
            f"| {row['detail_hits']:,} |"
        )
    lines += ["", "Largest clusters at 0.90 (a cached utterance and some it answered):", ""]
    for cluster in report["clusters"][:5]:
        examples = "; ".join(f"“{text}”" for text in cluster["examples"][:3])
        lines.append(
            f"- “{cluster['cached']}” ({cluster['intent']}) answered {cluster['answered']} "
            f"({cluster['wrong']} wrong): {examples}"
        )
    lines += ["", "![analyze](analyze_clinc150/analyze.png)", ""]
    write_report(
        RESULTS / "analyze_clinc150.md",
        title="frugal analyze on CLINC150",
        command="frugal " + " ".join(args),
        lines=lines,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["tune", "analyze"])
    parser.add_argument(
        "--reuse", action="store_true", help="rewrite the markdown from the commands' last JSON"
    )
    args = parser.parse_args()
    if args.only in (None, "analyze"):
        analyze(args.reuse)
    if args.only in (None, "tune"):
        tune(args.reuse)


if __name__ == "__main__":
    main()
