"""`frugal tune`: the table by threshold, computed by hand, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frugal.analysis.thresholds import evaluate, load_pairs, recommend, similarities
from frugal.cache.embedder import OnnxEmbedder
from frugal.tuning.hashing import sha256_file
from frugal.tuning.pairs import cluster_split
from tests.cache.tuned import tuned_copy
from tests.conftest import MODEL_DIR, run_frugal

SIMS = np.array([0.95, 0.91, 0.85, 0.75])
SAME = np.array([True, False, True, False])


def test_the_table_matches_a_hand_count() -> None:
    low, high, none = evaluate(SIMS, SAME, [0.80, 0.90, 0.96])
    # 0.80: hits 0.95, 0.91, 0.85; the duplicates among them are 0.95 and 0.85.
    assert (low.hits, low.hit_rate) == (3, 0.75)
    assert low.precision == pytest.approx(2 / 3)
    assert low.recall == 1.0
    assert low.f1 == pytest.approx(0.8)
    assert low.wrong_hit_rate == pytest.approx(1 / 3)
    # 0.90: hits 0.95 (duplicate) and 0.91 (not).
    assert (high.hits, high.precision, high.recall, high.f1) == (2, 0.5, 0.5, 0.5)
    assert high.wrong_hit_rate == 0.5
    # 0.96: no hits, so no precision to speak of.
    assert (none.hits, none.precision, none.f1, none.wrong_hit_rate) == (0, None, None, None)
    assert none.recall == 0.0


def test_the_recommendation_is_the_lowest_threshold_within_the_target() -> None:
    rows = evaluate(SIMS, SAME, [0.80, 0.90, 0.92, 0.96])
    assert recommend(rows, 0.34).threshold == 0.80  # 1/3 wrong
    assert recommend(rows, 0.0).threshold == 0.92  # only the duplicate at 0.95 is left
    assert recommend(evaluate(SIMS, SAME, [0.80, 0.90]), 0.2) is None


def test_a_malformed_pairs_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"a": "x", "b": "y", "label": 1}\n{"a": "x"}\n')
    with pytest.raises(ValueError, match="pairs.jsonl:2"):
        load_pairs(path)


PAIRS = [
    ("What is the capital of France?", "What's the capital of France?", 1),
    ("How do I reverse a list in Python?", "How can I reverse a Python list?", 1),
    ("What is question number 1?", "What is question number 2?", 0),
    ("Who painted the Mona Lisa?", "What is the boiling point of water?", 0),
]


def write_pairs(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    path.write_text("".join(json.dumps({"a": a, "b": b, "label": n}) + "\n" for a, b, n in rows))
    return path


def test_the_command_writes_its_table_and_plot(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    out = tmp_path / "out"
    result = run_frugal("tune", "--pairs", str(pairs), "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "tune.json").read_text())
    assert len(table["rows"]) == 30 and table["rows"][0]["threshold"] == 0.70
    chosen = table["recommended_threshold"]
    assert chosen is not None and f"recommended threshold: {chosen:.2f}" in result.stdout
    row = next(r for r in table["rows"] if r["threshold"] == chosen)
    assert row["wrong_hit_rate"] <= 0.01
    # "question number 1" and "2" are close (0.89): the lowest thresholds let them through.
    assert table["rows"][0]["wrong_hit_rate"] > 0
    assert (out / "tune.png").read_bytes()[:4] == b"\x89PNG"


def test_models_side_by_side_get_a_row_per_model_and_threshold(tmp_path: Path) -> None:
    # The copy serves the base model's graph under another name: the same figures, twice.
    copy = tuned_copy(MODEL_DIR, tmp_path / "copy")
    pairs = write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    # As if tuned on this very file: measured on all its pairs, it is flattered, and told so.
    manifest = json.loads((copy / "model.json").read_text())
    manifest["seed"] = 0
    manifest["data"] = {"sha256": sha256_file(pairs), "validation_share": 0.1}
    (copy / "model.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    result = run_frugal(
        "tune", "--pairs", str(pairs), "--models", f"base,{copy}", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "tune.json").read_text())
    assert [model["model"] for model in table["models"]] == ["base", str(copy)]
    assert len(table["rows"]) == 60

    def rows_of(name: str) -> list[dict[str, object]]:
        return [
            {key: value for key, value in row.items() if key != "model"}
            for row in table["rows"]
            if row["model"] == name
        ]

    assert len(rows_of("base")) == 30 and rows_of("base") == rows_of(str(copy))
    chosen = table["models"][0]["recommended_threshold"]
    assert chosen is not None and table["models"][1]["recommended_threshold"] == chosen
    for name in ("base", str(copy)):
        assert f"{name}: recommended threshold: {chosen:.2f}" in result.stdout
    assert f"warning: {copy} was tuned on this file" in result.stderr
    assert "warning: base" not in result.stderr
    assert (out / "tune.png").read_bytes()[:4] == b"\x89PNG"


def test_the_tuning_holdout_measures_exactly_the_held_out_pairs(tmp_path: Path) -> None:
    # Twelve clusters of two questions, each with a duplicate and a non-duplicate pair.
    rows = []
    for number in range(12):
        asked = f"How do I renew passport number {number}?"
        rows.append((asked, f"How can I renew passport number {number}?", 1))
        rows.append((asked, f"Where is the train station of town {number}?", 0))
    pairs = write_pairs(tmp_path / "pairs.jsonl", rows)
    held = cluster_split(load_pairs(pairs), share=0.4, seed=3).validation
    assert 0 < len(held) < len(rows)
    out = tmp_path / "out"
    result = run_frugal(
        *["tune", "--pairs", str(pairs), "--tuning-holdout", "--seed", "3"],
        *["--validation-share", "0.4", "--out", str(out)],
    )
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "tune.json").read_text())
    assert table["held_out"] == {
        "seed": 3,
        "validation_share": 0.4,
        "pairs": len(held),
        "of": len(rows),
    }
    expected = evaluate(
        similarities(OnnxEmbedder(MODEL_DIR), held), np.array([pair.same for pair in held])
    )
    assert [row["hits"] for row in table["rows"]] == [row.hits for row in expected]
    assert [row["recall"] for row in table["rows"]] == [row.recall for row in expected]
    assert f"{len(held)} held-out pairs of {len(rows)}" in result.stdout


def test_a_split_needs_the_tuning_holdout(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    result = run_frugal("tune", "--pairs", str(pairs), "--seed", "3", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "add --tuning-holdout" in result.stderr
