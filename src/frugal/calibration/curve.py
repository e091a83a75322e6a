"""A model's calibration curve: how often a hit is wrong at each threshold, measured on
labelled pairs the model was not trained on.

Every model the gateway runs has one, in the same shape (a CURVE of `frugal.tuning.manifest`).
A tuned model's is in its manifest (``model.json``, written by ``frugal model tune``), under
``calibration.tuned.<variant>``; the base model's (all-MiniLM-L6-v2) ships in the package as
``frugal/models/base.json``, under ``calibration.base``, made by
``python -m frugal.calibration.base`` on the same held-out question clusters (the command is
recorded in the file). Both are read by the one function `read_calibration`. A CURVE is
``{"rows": [ROW, ...], "at_recall": ...}``, a ROW as `frugal.analysis.thresholds.evaluate`
computes it::

    {"threshold": 0.9, "hits": 1375, "hit_rate": 0.204, "precision": 0.801,
     "recall": 0.426, "f1": 0.556, "wrong_hit_rate": 0.199}

``hits`` is how many held-out pairs were at or above the threshold (a would-be hit each), and
``wrong_hit_rate`` the share of them that are not duplicates (``null`` when there are none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from frugal.cache import ModelSpec
from frugal.errors import ConfigurationError

BASE_FILE = "models/base.json"  # inside the frugal package


@dataclass(frozen=True)
class CalibrationRow:
    threshold: float
    hits: int  # held-out pairs at or above the threshold
    hit_rate: float  # hits / pairs
    wrong_hit_rate: float | None  # hits that are not duplicates / hits; None: no hits
    recall: float | None  # duplicates found / duplicates; None when the curve does not say


@dataclass(frozen=True)
class Calibration:
    """The curve of the model ``model`` (its id), rows by ascending threshold, measured on
    ``pairs`` held-out pairs."""

    model: str
    rows: tuple[CalibrationRow, ...]
    pairs: int


def read_calibration(curve: Mapping[str, Any], *, model: str) -> Calibration:
    """The calibration of ``model`` from its CURVE (see the module's docstring), whether it
    comes from a tuned model's manifest or from the base model's shipped file.

    Raises `ConfigurationError` naming ``model`` when the curve is missing or malformed.
    Example: ``read_calibration(document["calibration"]["base"], model="all-MiniLM-L6-v2")``.
    """
    try:
        parsed = sorted((_row(row) for row in curve["rows"]), key=lambda r: r.threshold)
    except KeyError as exc:
        raise ConfigurationError(f"the calibration of {model} has no {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the calibration of {model} is malformed: {exc}") from None
    if not parsed:
        raise ConfigurationError(f"the calibration of {model} has no rows")
    pairs = max((round(r.hits / r.hit_rate) for r in parsed if r.hit_rate > 0), default=0)
    return Calibration(model=model, rows=tuple(parsed), pairs=pairs)


def calibration_of(model: ModelSpec) -> Calibration:
    """The calibration of a resolved model (`frugal.cache.resolve_model`): a tuned model's
    from its manifest, for the graph it serves; the base model's from the shipped file.
    Raises `ConfigurationError` as `read_calibration` does."""
    if model.manifest is None:
        return base_calibration()
    return tuned_calibration(model.manifest, model=model.id, variant=model.variant or "fp32")


def tuned_calibration(manifest: Mapping[str, Any], *, model: str, variant: str) -> Calibration:
    """The calibration of a tuned model's ``variant`` (``fp32`` or ``int8``, the graph it
    serves) from its manifest. Raises `ConfigurationError` as `read_calibration` does."""
    try:
        curve = manifest["calibration"]["tuned"][variant]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"the manifest of {model} has no calibration for its {variant} graph"
        ) from None
    return read_calibration(curve, model=model)


def base_calibration() -> Calibration:
    """The shipped calibration of the base model, all-MiniLM-L6-v2 (``frugal/models/base.json``).

    Raises `ConfigurationError` when the file is missing or malformed (a broken install).
    """
    try:
        document = json.loads(resources.files("frugal").joinpath(BASE_FILE).read_text())
        curve, model = document["calibration"]["base"], str(document["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"the base model's calibration ({BASE_FILE}): {exc}") from None
    return read_calibration(curve, model=model)


def _row(row: Mapping[str, Any]) -> CalibrationRow:
    hits = row["hits"]
    if not isinstance(hits, int) or isinstance(hits, bool) or hits < 0:
        raise ValueError(f"hits must be a count, not {hits!r}")
    wrong = row["wrong_hit_rate"]
    recall = row.get("recall")
    return CalibrationRow(
        threshold=_number(row["threshold"], "threshold"),
        hits=hits,
        hit_rate=_number(row["hit_rate"], "hit_rate"),
        wrong_hit_rate=None if wrong is None else _number(wrong, "wrong_hit_rate"),
        recall=None if recall is None else _number(recall, "recall"),
    )


def _number(value: object, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    return float(value)
