"""A threshold from an error budget: the calibration curve decides, an explicit threshold wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frugal.cache import ModelSpec, resolve_model
from frugal.calibration import (
    MIN_HITS,
    Calibration,
    base_calibration,
    calibration_of,
    choose_threshold,
    read_calibration,
    threshold_for_budget,
    tuned_calibration,
)
from frugal.config import DEFAULT_THRESHOLD, load_settings
from frugal.errors import ConfigurationError, SettingsError


def row(threshold: float, hits: int, wrong: int) -> dict[str, Any]:
    """A curve row as `frugal tune` writes it: ``hits`` of 1,000 pairs, ``wrong`` of them not
    duplicates."""
    return {
        "threshold": threshold,
        "hits": hits,
        "hit_rate": hits / 1000,
        "precision": (hits - wrong) / hits if hits else None,
        "recall": 0.5,
        "f1": None,
        "wrong_hit_rate": wrong / hits if hits else None,
    }


# Wrong hits fall as the threshold rises, then the rows thin out: 0.96 has too few hits to
# mean anything, 0.98 none at all.
CURVE = [
    row(0.80, 400, 60),  # 15%
    row(0.85, 300, 15),  # 5%
    row(0.90, 200, 4),  # 2%
    row(0.92, 150, 2),  # 1.33%
    row(0.94, 100, 1),  # 1%
    row(0.96, 10, 0),  # 0%, but 10 hits
    row(0.98, 0, 0),
]


def made_up() -> Calibration:
    return read_calibration({"rows": CURVE, "at_recall": None}, model="tuned@0123456789ab")


def test_the_budget_gives_the_lowest_threshold_whose_wrong_hits_stay_within_it() -> None:
    curve = made_up()
    assert threshold_for_budget(curve, 0.05).threshold == 0.85
    assert threshold_for_budget(curve, 0.02).threshold == 0.90  # at the budget counts
    assert threshold_for_budget(curve, 0.015).threshold == 0.92
    assert threshold_for_budget(curve, 0.5).threshold == 0.80


def test_rows_with_too_few_hits_do_not_count() -> None:
    assert 10 < MIN_HITS <= 100
    with pytest.raises(SettingsError) as refused:
        threshold_for_budget(made_up(), 0.005)  # only 0.96 (10 hits, none wrong) would meet it
    message = str(refused.value)
    assert "\n" not in message
    assert "FRUGAL_CACHE_MAX_WRONG_HIT_RATE" in message and "tuned@0123456789ab" in message
    assert "1.0% at 0.94" in message  # the best the curve offers, among rows that count
    # With a lower bar the thin row is taken at its word.
    assert threshold_for_budget(made_up(), 0.005, min_hits=10).threshold == 0.96


def test_a_threshold_that_is_set_wins_over_the_budget() -> None:
    settings = load_settings(cache_threshold=0.93, cache_max_wrong_hit_rate=0.02)
    chosen = choose_threshold(settings, calibration=made_up)
    assert (chosen.threshold, chosen.source) == (0.93, "setting")


def test_the_budget_wins_over_the_default_and_says_so() -> None:
    settings = load_settings(cache_max_wrong_hit_rate=0.02)
    chosen = choose_threshold(settings, calibration=made_up)
    assert chosen.threshold == 0.90
    assert chosen.source == "budget 0.02 on tuned@0123456789ab's calibration"


def test_without_a_budget_the_default_is_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRUGAL_CACHE_THRESHOLD", raising=False)
    monkeypatch.delenv("FRUGAL_CACHE_MAX_WRONG_HIT_RATE", raising=False)
    chosen = choose_threshold(load_settings(), calibration=made_up)
    assert (chosen.threshold, chosen.source) == (DEFAULT_THRESHOLD, "default")
    # Set to the default's own value is still set.
    chosen = choose_threshold(load_settings(cache_threshold=DEFAULT_THRESHOLD), calibration=made_up)
    assert chosen.source == "setting"


def test_a_tuned_model_is_read_from_its_manifest_by_the_same_function() -> None:
    manifest = {"calibration": {"tuned": {"fp32": {"rows": CURVE}, "int8": {"rows": CURVE[:2]}}}}
    fp32 = tuned_calibration(manifest, model="faq@0123456789ab", variant="fp32")
    assert fp32 == read_calibration({"rows": CURVE}, model="faq@0123456789ab")
    assert fp32.pairs == 1000
    int8 = tuned_calibration(manifest, model="faq@0123456789ab", variant="int8")
    assert [r.threshold for r in int8.rows] == [0.80, 0.85]
    with pytest.raises(ConfigurationError, match="no calibration for its int4 graph"):
        tuned_calibration(manifest, model="faq@0123456789ab", variant="int4")


def test_a_malformed_curve_is_a_configuration_error() -> None:
    broken_curves: list[dict[str, Any]] = [
        {},
        {"rows": []},
        {"rows": [{"threshold": 0.9}]},
        {"rows": [row(0.9, 10, 1) | {"hits": "ten"}]},
    ]
    for broken in broken_curves:
        with pytest.raises(ConfigurationError, match="m@1"):
            read_calibration(broken, model="m@1")


def test_the_shipped_base_calibration_reads_and_is_measured_on_held_out_pairs() -> None:
    base = base_calibration()
    assert base.model == "all-MiniLM-L6-v2"
    assert [r.threshold for r in base.rows] == [round(0.70 + 0.01 * i, 2) for i in range(30)]
    assert base.pairs > 1000
    # Wrong hits fall as the threshold rises (the base model is no exception).
    rates = [r.wrong_hit_rate for r in base.rows if r.wrong_hit_rate is not None]
    assert rates[0] > rates[-1]
    # What a 10% budget gives on the base model, and a budget it cannot meet.
    assert 0.9 < threshold_for_budget(base, 0.10).threshold <= 0.99
    with pytest.raises(SettingsError, match="the fewest"):
        threshold_for_budget(base, 0.001)


def test_the_model_in_use_gives_its_own_calibration(tmp_path: Path) -> None:
    base = resolve_model("base", model_dir=tmp_path)
    assert calibration_of(base) == base_calibration()
    tuned = ModelSpec(
        choice="./faq",
        id="faq@0123456789ab",
        origin="directory",
        directory=tmp_path,
        variant="int8",
        manifest={"calibration": {"tuned": {"fp32": {"rows": CURVE}, "int8": {"rows": CURVE}}}},
    )
    assert calibration_of(tuned) == read_calibration({"rows": CURVE}, model="faq@0123456789ab")
