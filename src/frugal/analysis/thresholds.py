"""`frugal tune`: how a threshold trades wrong answers for savings, on labelled pairs.

Each pair ``{"a", "b", "label"}`` (label 1: same meaning) is a would-be lookup: ``b`` asked
while ``a`` is cached. At threshold ``t`` it is a hit when their cosine similarity is ≥ t. Per
threshold: hit rate (hits / pairs), precision (duplicates among hits), recall (hits among
duplicates), F1, and the wrong-hit rate (hits that are not duplicates: 1 − precision). The
recommendation is the lowest threshold whose wrong-hit rate is at or below the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugal.analysis.embedding import embed_all
from frugal.analysis.outputs import write_json_and_png
from frugal.cache.embedder import Embedder
from frugal.datafiles import read_records

if TYPE_CHECKING:
    from matplotlib.axes import Axes

THRESHOLDS = tuple(round(0.70 + 0.01 * step, 2) for step in range(30))  # 0.70 … 0.99


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


@dataclass(frozen=True)
class Row:
    threshold: float
    hits: int
    hit_rate: float
    precision: float | None  # None: no hits
    recall: float
    f1: float | None
    wrong_hit_rate: float | None


def load_pairs(path: Path) -> list[Pair]:
    """The pairs of a JSONL file, plain or gzip-compressed (``.gz``); a bad line raises
    ``ValueError`` naming it."""
    pairs = read_records(path, _pair, expected="not a {a, b, label} pair")
    if not pairs:
        raise ValueError(f"{path} holds no pairs")
    return pairs


def _pair(record: dict[str, Any]) -> Pair:
    return Pair(str(record["a"]), str(record["b"]), int(record["label"]) == 1)


def similarities(embedder: Embedder, pairs: Sequence[Pair]) -> np.ndarray:
    """Cosine similarity of each pair (each distinct text embedded once)."""
    texts = list(dict.fromkeys(text for pair in pairs for text in (pair.a, pair.b)))
    index = {text: i for i, text in enumerate(texts)}
    vectors = embed_all(embedder, texts, label="embedding the pairs")
    a = vectors[[index[pair.a] for pair in pairs]]
    b = vectors[[index[pair.b] for pair in pairs]]
    similarities: np.ndarray = np.einsum("ij,ij->i", a, b)
    return similarities


def evaluate(
    sims: np.ndarray, same: np.ndarray, thresholds: Sequence[float] = THRESHOLDS
) -> list[Row]:
    """The table; ``same`` holds the labels as booleans, in the order of ``sims``."""
    rows = []
    positives = int(same.sum())
    for threshold in thresholds:
        hit = sims >= threshold
        hits = int(hit.sum())
        right = int((hit & same).sum())
        precision = right / hits if hits else None
        recall = right / positives if positives else 0.0
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and precision + recall > 0
            else None
        )
        rows.append(
            Row(
                threshold=threshold,
                hits=hits,
                hit_rate=hits / len(sims),
                precision=precision,
                recall=recall,
                f1=f1,
                wrong_hit_rate=None if precision is None else 1 - precision,
            )
        )
    return rows


def recommend(rows: Sequence[Row], max_wrong_hit_rate: float) -> Row | None:
    """The lowest threshold with hits whose wrong-hit rate is at or below the target."""
    for row in sorted(rows, key=lambda r: r.threshold):
        if row.wrong_hit_rate is not None and row.wrong_hit_rate <= max_wrong_hit_rate:
            return row
    return None


def write_outputs(
    rows: Sequence[Row], chosen: Row | None, out: Path, *, source: str, target: float
) -> tuple[Path, Path]:
    """``tune.json`` (the table and the recommendation) and ``tune.png`` (the curves)."""
    table = {
        "source": source,
        "max_wrong_hit_rate": target,
        "recommended_threshold": chosen.threshold if chosen else None,
        "rows": [asdict(row) for row in rows],
    }
    x = [row.threshold for row in rows]

    def series(name: str) -> list[float]:
        return [np.nan if getattr(row, name) is None else getattr(row, name) for row in rows]

    def draw(axis: Axes) -> None:
        for name, colour in [
            ("precision", "#1f9d6b"),
            ("recall", "#3d5afe"),
            ("f1", "#8a93a6"),
            ("hit_rate", "#d9822b"),
            ("wrong_hit_rate", "#c0392b"),
        ]:
            axis.plot(x, series(name), label=name.replace("_", " "), color=colour, linewidth=2)
        axis.axhline(target, color="#c0392b", linestyle=":", linewidth=1)
        if chosen is not None:
            axis.axvline(chosen.threshold, color="#1d2330", linestyle="--", linewidth=1)
            axis.annotate(
                f"recommended {chosen.threshold:.2f}",
                (chosen.threshold, 0.5),
                rotation=90,
                xytext=(4, 0),
                textcoords="offset points",
            )
        axis.set_ylim(0, 1.02)
        axis.set_title(f"frugal tune: {source}")
        axis.legend(loc="lower left", fontsize=9)

    return write_json_and_png(out, "tune", table, draw)
