"""`frugal model list`: the embedding models this install can run, and which one it runs."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from frugal.cache.models import BASE, ModelSpec, resolve_model, shipped_models
from frugal.cli._common import ConfigOption, settings
from frugal.errors import ConfigurationError

_ORIGINS = {"exported": "exported base", "shipped": "shipped", "directory": "directory"}


def model_list(config: ConfigOption = None) -> None:
    """List the embedding models: the base model, those shipped with frugal, and the one
    FRUGAL_EMBEDDER_MODEL names; each with its id (stamped on the cache entries it makes),
    where it comes from, whether its files are present, and a tuned model's validation
    precision against the base model's. Exit code 2 when the chosen model cannot be resolved."""
    chosen = settings(config)
    choices = [BASE, *shipped_models()]
    if chosen.embedder_model not in choices:
        choices.append(chosen.embedder_model)
    table = Table("name", "id", "from", "present", "in use", "precision at recall (base → tuned)")
    broken: dict[str, ConfigurationError] = {}
    for choice in choices:
        in_use = "yes" if choice == chosen.embedder_model else ""
        try:
            model = resolve_model(choice, model_dir=chosen.models_path)
        except ConfigurationError as exc:
            broken[choice] = exc
            table.add_row(choice, "", "", "no", in_use, "")
            continue
        table.add_row(
            choice,
            model.id,
            f"{_ORIGINS[model.origin]} ({model.directory})",
            "no" if model.missing() else "yes",
            in_use,
            _figures(model),
        )
    Console().print(table)
    for problem in broken.values():
        typer.echo(f"frugal: {problem}", err=True)
    if chosen.embedder_model in broken:
        raise typer.Exit(2)


def _figures(model: ModelSpec) -> str:
    """``base → tuned`` precision at the manifest's recall target, for the variant served."""
    if model.manifest is None:
        return ""
    try:
        calibration = model.manifest["calibration"]
        base = calibration["base"]["at_recall"]
        tuned = calibration["tuned"][model.variant]["at_recall"]
        target = float(calibration["recall_target"])
    except (KeyError, TypeError, ValueError):
        return "n/a"
    return f"{_precision(base)} → {_precision(tuned)} at {target:.2f} ({model.variant})"


def _precision(point: Any) -> str:
    try:
        return f"{float(point['precision']):.3f}"
    except (KeyError, TypeError, ValueError):
        return "n/a"
