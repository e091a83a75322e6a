"""Thresholds from calibration: a model's curve of wrong hits by threshold (`curve`), and the
threshold an error budget takes from it (`budget`). ``python -m frugal.calibration.base``
measures the base model's curve."""

from frugal.calibration.budget import (
    MIN_HITS,
    ThresholdChoice,
    choose_threshold,
    threshold_for_budget,
)
from frugal.calibration.curve import (
    Calibration,
    CalibrationRow,
    base_calibration,
    calibration_of,
    read_calibration,
    tuned_calibration,
)

__all__ = [
    "MIN_HITS",
    "Calibration",
    "CalibrationRow",
    "ThresholdChoice",
    "base_calibration",
    "calibration_of",
    "choose_threshold",
    "read_calibration",
    "threshold_for_budget",
    "tuned_calibration",
]
