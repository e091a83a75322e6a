"""`frugal tune`: how a threshold trades wrong answers for savings, on labelled pairs.

Each pair ``{"a", "b", "label"}`` (label 1: same meaning) is a would-be lookup: ``b`` asked
while ``a`` is cached. At threshold ``t`` it is a hit when their cosine similarity is ≥ t. Per
threshold: hit rate (hits / pairs), precision (duplicates among hits), recall (hits among
duplicates), F1, and the wrong-hit rate (hits that are not duplicates: 1 − precision). The
recommendation is the lowest threshold whose wrong-hit rate is at or below the target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def similarities(
    embedder: Embedder, pairs: Sequence[Pair], *, through_store: bool = False
) -> np.ndarray:
    """Cosine similarity of each pair (each distinct text embedded once); ``through_store``:
    as the embedded store reports it (`frugal.analysis.through_store`)."""
    texts = list(dict.fromkeys(text for pair in pairs for text in (pair.a, pair.b)))
    index = {text: i for i, text in enumerate(texts)}
    vectors = embed_all(embedder, texts, label="embedding the pairs")
    a = vectors[[index[pair.a] for pair in pairs]]
    b = vectors[[index[pair.b] for pair in pairs]]
    if through_store:
        from frugal.analysis.through_store import store_similarities

        return store_similarities(a, b)
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


@dataclass(frozen=True)
class Measured:
    """One model's table: its ``model`` label (as given to ``--models``), its ``model_id``, the
    ``rows`` and the recommended row, ``chosen`` (``None``: none within the target)."""

    model: str
    model_id: str
    rows: list[Row]
    chosen: Row | None


# One colour per model, in the order given; the first is the configured model's.
MODEL_COLOURS = ("#3d5afe", "#1f9d6b", "#d9822b", "#c0392b", "#8e44ad", "#8a93a6")


def write_outputs(
    measured: Sequence[Measured],
    out: Path,
    *,
    source: str,
    target: float,
    held_out: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """``tune.json`` (the table and the recommendation) and ``tune.png`` (the curves).

    With one model, the table is ``rows`` and ``recommended_threshold``; with several,
    ``models`` lists each (``model``, ``id``, ``recommended_threshold``), each of ``rows``
    names its ``model``, and the chart has precision and recall per model. ``held_out``
    (which pairs were measured, when not all) is recorded as given.
    """
    table: dict[str, Any] = {"source": source, "max_wrong_hit_rate": target}
    if held_out is not None:
        table["held_out"] = held_out
    if len(measured) == 1:
        (only,) = measured
        table["recommended_threshold"] = only.chosen.threshold if only.chosen else None
        table["rows"] = [asdict(row) for row in only.rows]
        draw = _one_model(only, source=source, target=target)
    else:
        table["models"] = [
            {
                "model": one.model,
                "id": one.model_id,
                "recommended_threshold": one.chosen.threshold if one.chosen else None,
            }
            for one in measured
        ]
        table["rows"] = [
            {"model": one.model, **asdict(row)} for one in measured for row in one.rows
        ]
        draw = _side_by_side(measured, source=source, target=target)
    return write_json_and_png(out, "tune", table, draw)


def _series(rows: Sequence[Row], name: str) -> list[float]:
    return [np.nan if getattr(row, name) is None else getattr(row, name) for row in rows]


def _one_model(measured: Measured, *, source: str, target: float) -> Callable[[Axes], None]:
    rows, chosen = measured.rows, measured.chosen
    x = [row.threshold for row in rows]

    def draw(axis: Axes) -> None:
        for name, colour in [
            ("precision", "#1f9d6b"),
            ("recall", "#3d5afe"),
            ("f1", "#8a93a6"),
            ("hit_rate", "#d9822b"),
            ("wrong_hit_rate", "#c0392b"),
        ]:
            axis.plot(
                x, _series(rows, name), label=name.replace("_", " "), color=colour, linewidth=2
            )
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

    return draw


def _side_by_side(
    measured: Sequence[Measured], *, source: str, target: float
) -> Callable[[Axes], None]:
    def draw(axis: Axes) -> None:
        for number, one in enumerate(measured):
            colour = MODEL_COLOURS[number % len(MODEL_COLOURS)]
            x = [row.threshold for row in one.rows]
            for name, style in [("precision", "-"), ("recall", "--")]:
                series = _series(one.rows, name)
                label = f"{one.model}: {name}"
                axis.plot(x, series, color=colour, linewidth=2, linestyle=style, label=label)
            if one.chosen is not None:  # the recommended threshold, in the model's colour
                axis.axvline(one.chosen.threshold, color=colour, linestyle=":", linewidth=1)
        goal = f"precision {1 - target:.0%} ({target:.0%} wrong hits)"
        axis.axhline(1 - target, color="#c0392b", linestyle=":", linewidth=1, label=goal)
        axis.set_ylim(0, 1.02)
        axis.set_title(f"frugal tune: {source}, {len(measured)} models")
        axis.legend(loc="lower left", fontsize=8)

    return draw
