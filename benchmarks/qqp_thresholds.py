"""Precision and recall of a plain cosine threshold on Quora question pairs.

    python benchmarks/qqp_thresholds.py

Each labelled pair (a, b) of `data/qqp/pairs.jsonl.gz` counts as a cache "hit" when the
cosine similarity of the two questions' all-MiniLM-L6-v2 embeddings is at or above the threshold.
Precision: the share of hits that are true duplicates (1 − precision is the wrong-hit rate).
Recall: the share of true duplicates that hit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import PAIRS, rows, shown  # noqa: E402
from _machine import write_report  # noqa: E402
from _qqp import load_questions, load_vectors  # noqa: E402

THRESHOLDS = [0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.98]
OUT = Path(__file__).parent / "results" / "qqp_thresholds.md"


def main() -> None:
    questions = load_questions()
    vectors, source = load_vectors(questions)
    row_of = {question: row for row, question in enumerate(questions)}
    pairs = rows(PAIRS)
    a = np.array([row_of[p["a"]] for p in pairs])
    b = np.array([row_of[p["b"]] for p in pairs])
    labels = np.array([p["label"] for p in pairs], dtype=bool)
    cosine = np.einsum("ij,ij->i", vectors[a], vectors[b])

    lines = [
        f"{len(pairs):,} labelled pairs ({labels.sum():,} duplicates) of "
        f"`{shown(PAIRS)}`; embeddings: {source}. A pair is a hit when its cosine "
        "similarity is at or above the threshold.",
        "",
        "| threshold | hits | precision | recall | wrong hits (share of hits) | F1 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for threshold in THRESHOLDS:
        hit = cosine >= threshold
        true_hits = int((hit & labels).sum())
        precision = true_hits / hit.sum() if hit.sum() else 1.0
        recall = true_hits / labels.sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        lines.append(
            f"| {threshold:.2f} | {int(hit.sum()):,} | {precision:.3f} | {recall:.3f} "
            f"| {1 - precision:.1%} | {f1:.3f} |"
        )
    lines += [
        "",
        "At the default 0.9, roughly one hit in five answers a question that means something "
        "else: the threshold alone cannot make the cache trustworthy on such data, which is what "
        "the second-stage verifier is for.",
        "",
    ]
    write_report(
        OUT,
        title="A plain cosine threshold on Quora question pairs",
        command=("python benchmarks/qqp_thresholds.py"),
        lines=lines,
    )


if __name__ == "__main__":
    main()
