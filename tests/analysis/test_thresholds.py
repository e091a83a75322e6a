"""`frugal tune`: the table by threshold, computed by hand, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frugal.analysis.thresholds import evaluate, load_pairs, recommend
from tests.conftest import run_frugal

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


def test_the_command_writes_its_table_and_plot(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        ("What is the capital of France?", "What's the capital of France?", 1),
        ("How do I reverse a list in Python?", "How can I reverse a Python list?", 1),
        ("What is question number 1?", "What is question number 2?", 0),
        ("Who painted the Mona Lisa?", "What is the boiling point of water?", 0),
    ]
    pairs.write_text("".join(json.dumps({"a": a, "b": b, "label": n}) + "\n" for a, b, n in rows))
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
