"""The similarity threshold in force, and why: a setting, an error budget, or the default.

No single threshold is right: it trades wrong answers for savings, and where it lies depends
on the model. ``FRUGAL_CACHE_MAX_WRONG_HIT_RATE`` states the trade instead (say 0.02: at most
one hit in fifty answers another question), and the model's calibration curve turns it into a
threshold. Strongest first:

1. ``FRUGAL_CACHE_THRESHOLD``, when it is set (by a variable, the file or a flag; set to the
   default's own value counts as set): ``setting``;
2. the budget, on the calibration of the model in use: ``budget 0.02 on <model id>'s
   calibration``;
3. `frugal.config.DEFAULT_THRESHOLD`: ``default``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from frugal.calibration.curve import Calibration, CalibrationRow
from frugal.config import Settings
from frugal.errors import SettingsError

# A row backed by fewer hits says little: at 50, one wrong hit more or less moves its rate by
# two points, as much as a typical budget.
MIN_HITS = 50
# Rates are stored as decimals; 4/200 read back may land a hair above 0.02.
_TOLERANCE = 1e-9
_BUDGET_SETTING = "FRUGAL_CACHE_MAX_WRONG_HIT_RATE"


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold in force, ``source`` saying why (see the module's docstring), and the
    error budget when one is configured (the shadow report compares the live rate with it,
    whatever chose the threshold)."""

    threshold: float
    source: str
    budget: float | None = None


def threshold_for_budget(
    calibration: Calibration, budget: float, *, min_hits: int = MIN_HITS
) -> CalibrationRow:
    """The row of the lowest threshold whose wrong-hit rate is at or below ``budget``, among
    the rows backed by at least ``min_hits`` hits (thinner rows are skipped: their rate is
    noise).

    Raises `SettingsError` (one line, naming the setting, the model and the best the curve
    offers) when no such row meets the budget.
    Example: ``threshold_for_budget(base_calibration(), 0.10).threshold`` → 0.97.
    """
    counted = [
        row for row in calibration.rows if row.hits >= min_hits and row.wrong_hit_rate is not None
    ]
    for row in counted:
        assert row.wrong_hit_rate is not None
        if row.wrong_hit_rate <= budget + _TOLERANCE:
            return row
    unmet = (
        f"{_BUDGET_SETTING}={budget:g}: no threshold of {calibration.model}'s calibration keeps "
        f"wrong hits at or below {budget:.1%} (rows of at least {min_hits} hits)"
    )
    if not counted:
        raise SettingsError(f"{unmet}: it has none")
    best = min(counted, key=lambda row: (row.wrong_hit_rate, -row.hits))
    found = f", finding {best.recall:.1%} of the duplicates" if best.recall is not None else ""
    raise SettingsError(
        f"{unmet}; the fewest are {best.wrong_hit_rate:.1%} at {best.threshold:.2f}{found}"
    )


def choose_threshold(
    settings: Settings, *, calibration: Callable[[], Calibration]
) -> ThresholdChoice:
    """The threshold in force under ``settings``; ``calibration`` gives the curve of the model
    in use, and is called only when the budget decides.

    Raises `SettingsError` when the budget decides and the curve cannot meet it.
    """
    budget = settings.cache_max_wrong_hit_rate
    if "cache_threshold" in settings.model_fields_set:
        return ThresholdChoice(settings.cache_threshold, "setting", budget)
    if budget is None:
        return ThresholdChoice(settings.cache_threshold, "default")
    curve = calibration()
    row = threshold_for_budget(curve, budget)
    source = f"budget {budget:g} on {curve.model}'s calibration"
    return ThresholdChoice(row.threshold, source, budget)
