"""Models compared at the same hit rate: the interpolation by hand, and a curve that spans the
range asked on a synthetic log."""

from __future__ import annotations

import numpy as np
import pytest

from frugal.analysis.replay import Prompt, neighbours
from frugal.analysis.same_savings import Point, at_hit_rate, curve_spanning, replay_points

CURVE = [Point(0.80, 0.50, 0.10, 50, 5), Point(0.90, 0.30, 0.05, 30, 2)]


def test_a_hit_rate_between_two_thresholds_is_interpolated() -> None:
    threshold, wrong = at_hit_rate(CURVE, 0.40) or (None, None)
    assert threshold == pytest.approx(0.85) and wrong == pytest.approx(0.075)
    assert at_hit_rate(CURVE, 0.50) == (0.80, 0.10)


@pytest.mark.parametrize("rate", [0.29, 0.51])
def test_a_hit_rate_outside_the_curve_has_no_answer(rate: float) -> None:
    assert at_hit_rate(CURVE, rate) is None


def synthetic_log(seed: int = 0) -> tuple[list[Prompt], np.ndarray]:
    """Twelve intents of 25 prompts each, as noisy copies of an intent's direction."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, 16))
    intents = rng.integers(0, 12, size=300)
    vectors = centres[intents] + rng.normal(scale=0.6, size=(300, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [Prompt(f"p{i}", intent=str(k)) for i, k in enumerate(intents)], vectors


def test_a_model_against_itself_matches_at_every_hit_rate() -> None:
    prompts, vectors = synthetic_log()
    levels = [0.60, 0.70, 0.80]  # wrong hits at each: 2, 3 and 1
    reference = replay_points(prompts, neighbours(vectors, [""] * 300, floor=0.60), levels)
    assert [point.wrong_hits for point in reference] == [2, 3, 1]
    rates = [point.hit_rate for point in reference]
    curve = curve_spanning(prompts, vectors, low=rates[-1], high=rates[0], include=levels)
    assert curve[0].hit_rate >= rates[0] and curve[-1].hit_rate <= rates[-1]
    for point in reference:
        found = at_hit_rate(curve, point.hit_rate)
        assert found is not None and found[1] == pytest.approx(point.wrong_rate)


def test_wrong_hits_need_intents() -> None:
    prompts = [Prompt("a"), Prompt("b")]
    vectors = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="intent"):
        replay_points(prompts, neighbours(vectors, ["", ""], floor=0.5), [0.5])
