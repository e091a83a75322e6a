"""The tables `frugal tune` and `frugal analyze` print: one model's as they always were; with
several (``--models``), a ``model`` column, and each threshold's rows together so that models
read side by side."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from frugal.analysis.replay import ModelReplays
from frugal.analysis.thresholds import Measured
from frugal.bench.report import share


def tune_table(measured: list[Measured], title: str) -> Table:
    """A row per threshold (and model); each model's recommended row in bold green."""
    several = len(measured) > 1
    table = Table(title=title)
    columns = ["threshold", "model"] if several else ["threshold"]
    for column in [*columns, "hit rate", "precision", "recall", "F1", "wrong hits"]:
        table.add_column(column, justify="left" if column == "model" else "right")
    # Side by side: each threshold's rows together, a model per row.
    for index in range(len(measured[0].rows)):
        for number, one in enumerate(measured):
            row = one.rows[index]
            style = "bold green" if one.chosen is not None and row is one.chosen else None
            table.add_row(
                f"{row.threshold:.2f}",
                *([one.model] if several else []),
                share(row.hit_rate),
                share(row.precision),
                share(row.recall),
                "–" if row.f1 is None else f"{row.f1:.3f}",
                share(row.wrong_hit_rate),
                style=style,
                end_section=several and number == len(measured) - 1,
            )
    return table


def analyze_table(exact: dict[str, Any], replays: list[ModelReplays], title: str) -> Table:
    """The exact cache's row, then a row per threshold (and model)."""
    several = len(replays) > 1
    table = Table(title=title)
    columns = ["cache", "model"] if several else ["cache"]
    for column in [*columns, "hits", "hit rate", "upstream calls", "wrong hits"]:
        table.add_column(column, justify="left" if column == "model" else "right")

    def add(row: dict[str, Any], model: str, *, last: bool = False) -> None:
        table.add_row(
            row["cache"],
            *([model] if several else []),
            f"{row['hits']:,}",
            share(row["hit_rate"]),
            f"{row['upstream_calls']:,}",
            share(row["wrong_hit_rate"]),
            end_section=several and last,
        )

    add(exact, "–", last=True)
    for index in range(len(replays[0].rows)):  # each threshold's rows together
        for number, one in enumerate(replays):
            add(one.rows[index], one.model, last=number == len(replays) - 1)
    return table
