"""The threshold in force through the real gateway: an error budget on the model's calibration,
a set threshold that wins, the default, and a budget no threshold meets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from frugal.calibration import base_calibration, threshold_for_budget
from tests.cache.tuned import model_id, tuned_copy
from tests.conftest import MODEL_DIR, Stack, StackFactory
from tests.test_startup import one_line, serve_fails


def cache_stats(stack: Stack) -> dict[str, Any]:
    with stack.admin() as admin:
        cache: dict[str, Any] = admin.get("/admin/stats").json()["cache"]
    return cache


def test_a_budget_takes_the_threshold_from_the_base_models_calibration(
    make_stack: StackFactory,
) -> None:
    expected = threshold_for_budget(base_calibration(), 0.1).threshold
    assert 0.9 < expected < 1.0  # the shipped curve's answer, not the default
    stack = make_stack(env={"FRUGAL_CACHE_MAX_WRONG_HIT_RATE": "0.1"})
    cache = cache_stats(stack)
    assert cache["threshold"] == expected
    source = "budget 0.1 on all-MiniLM-L6-v2's calibration"
    assert cache["threshold_source"] == source
    assert f"threshold {expected:g} ({source})" in stack.gateway.log()


def test_a_tuned_models_budget_reads_its_manifest(
    make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tuned = tuned_copy(MODEL_DIR, tmp_path_factory.mktemp("models") / "faq")
    manifest = json.loads((tuned / "model.json").read_text())
    rows = [
        {"threshold": t, "hits": 200, "hit_rate": 0.2, "recall": 0.5, "wrong_hit_rate": w}
        for t, w in [(0.80, 0.10), (0.84, 0.03), (0.88, 0.02), (0.92, 0.01)]
    ]
    manifest["calibration"]["tuned"]["fp32"]["rows"] = rows
    (tuned / "model.json").write_text(json.dumps(manifest))
    stack = make_stack(
        env={"FRUGAL_EMBEDDER_MODEL": str(tuned), "FRUGAL_CACHE_MAX_WRONG_HIT_RATE": "0.02"}
    )
    cache = cache_stats(stack)
    assert cache["threshold"] == 0.88
    assert cache["threshold_source"] == f"budget 0.02 on {model_id(tuned)}'s calibration"


def test_a_threshold_that_is_set_wins_and_the_default_says_so(make_stack: StackFactory) -> None:
    both = make_stack(
        env={"FRUGAL_CACHE_THRESHOLD": "0.85", "FRUGAL_CACHE_MAX_WRONG_HIT_RATE": "0.1"}
    )
    assert (cache_stats(both)["threshold"], cache_stats(both)["threshold_source"]) == (
        0.85,
        "setting",
    )
    plain = make_stack()
    assert (cache_stats(plain)["threshold"], cache_stats(plain)["threshold_source"]) == (
        0.9,
        "default",
    )


def test_a_budget_no_threshold_meets_stops_start_up_in_one_line(tmp_path: Path) -> None:
    best = min(
        (r for r in base_calibration().rows if r.hits >= 50 and r.wrong_hit_rate is not None),
        key=lambda r: r.wrong_hit_rate or 0.0,
    )
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_CACHE_MAX_WRONG_HIT_RATE": "0.01"}))
    assert "FRUGAL_CACHE_MAX_WRONG_HIT_RATE=0.01" in line and "all-MiniLM-L6-v2" in line
    assert f"the fewest are {best.wrong_hit_rate:.1%} at {best.threshold:.2f}" in line
