"""`frugal bench`'s report: a markdown table, a JSON file and two PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from frugal.plots import pyplot, save

# One colour per model when models are compared, in the order given.
MODEL_COLOURS = ("#1f9d6b", "#3d5afe", "#d9822b", "#8e44ad", "#c0392b", "#8a93a6")


def share(value: float | None) -> str:
    """A fraction as a percentage with one decimal; "–" when there is none."""
    return "–" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """The summary rows as the lines of a markdown table, one row per configuration (with a
    ``embedder`` column when embedding models were compared: "–" for the setups that embed
    nothing)."""
    several = any("embedder" in row for row in rows)
    first, align = (
        ("| configuration | embedder ", "|---|---") if several else ("| configuration ", "|---")
    )
    lines = [
        first + "| upstream calls | calls saved | hit rate | coalesced | wrong hits "
        "| upstream cost | mean (ms) | p50 | p95 | p99 | throughput (req/s) | errors |",
        align + "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        latency = row["latency_ms"]
        cost = row["upstream_cost_usd"]
        served = row["hits"] + row["coalesced"]
        wrong = (
            f"{row['wrong_hits']} of {served} ({share(row['wrong_hit_rate'])})" if served else "–"
        )
        model = f"| {row.get('embedder', '–')} " if several else ""
        lines.append(
            f"| {row['config']} {model}| {row['upstream_calls']:,} | {share(row['calls_saved'])} "
            f"| {share(row['hit_rate'])} | {row['coalesced']:,} | {wrong} "
            f"| {'–' if cost is None else f'${cost:.4f}'} | {_ms(latency['mean'])} "
            f"| {_ms(latency['p50'])} | {_ms(latency['p95'])} | {_ms(latency['p99'])} "
            f"| {row['throughput_rps']:.1f} | {row['errors']} |"
        )
    return lines


def write_report(
    out: Path,
    *,
    title: str,
    meta: dict[str, Any],
    rows: list[dict[str, Any]],
    latencies_ms: dict[str, list[float]],
) -> list[Path]:
    """Write the run's report into ``out`` (created as needed); the paths written, in order:
    ``bench.md`` (the table under ``title``), ``bench.json`` (``meta`` and the rows, one per
    configuration), then ``thresholds.png`` (when a semantic setup ran) and ``latency.png``
    (each configuration's latencies in milliseconds, as a distribution)."""
    out.mkdir(parents=True, exist_ok=True)
    table = out / "bench.json"
    table.write_text(json.dumps({**meta, "configurations": rows}, indent=2))
    plots = _write_plots(out, rows, latencies_ms, title)
    summary = out / "bench.md"
    summary.write_text("\n".join([f"# frugal bench: {title}", "", *markdown_table(rows), ""]))
    return [summary, table, *plots]


def _write_plots(
    out: Path, rows: list[dict[str, Any]], latencies: dict[str, list[float]], title: str
) -> list[Path]:
    plt = pyplot()
    written = []
    swept = sorted(  # the semantic cache without batching, at each threshold run
        (
            row
            for row in rows
            if row["config"] == "semantic" or row["config"].startswith("semantic@")
        ),
        key=lambda row: row["threshold"],
    )
    if swept:
        figure, axis = plt.subplots(figsize=(8, 4.5))
        by_model: dict[str | None, list[dict[str, Any]]] = {}
        for row in swept:
            by_model.setdefault(row.get("embedder"), []).append(row)
        for number, (model, series) in enumerate(by_model.items()):
            # One model: green savings, red wrong hits; several: a colour per model.
            colour = MODEL_COLOURS[number % len(MODEL_COLOURS)]
            saved_colour, wrong_colour = (
                ("#1f9d6b", "#c0392b") if model is None else (colour, colour)
            )
            name = "" if model is None else f"{model}: "
            x = [row["threshold"] for row in series]
            saved = [row["calls_saved"] for row in series]
            wrong = [row["wrong_hit_rate"] or 0.0 for row in series]
            wrong_label = f"{name}wrong hits (share of answers not fetched)"
            axis.plot(x, saved, "o-", color=saved_colour, label=f"{name}upstream calls saved")
            axis.plot(
                x, wrong, "s-" if model is None else "s--", color=wrong_colour, label=wrong_label
            )
        exact = next((row for row in rows if row["config"] == "exact"), None)
        if exact is not None:
            axis.axhline(exact["calls_saved"], color="#8a93a6", linestyle="--",
                         label="exact-string cache: calls saved")  # fmt: skip
        axis.axhline(0.01, color="#c0392b", linestyle=":", linewidth=1, label="1% wrong hits")
        axis.set_xlabel("threshold (cosine similarity)")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
        axis.set_title(title)
        written.append(save(figure, out / "thresholds.png"))

    figure, axis = plt.subplots(figsize=(9, 4.8))
    for name, values in latencies.items():
        if not values:
            continue
        ordered = np.sort(values)
        axis.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), label=name)
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms, log scale)")
    axis.set_ylabel("share of requests at or below")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    axis.set_title(f"latency by configuration: {title}")
    written.append(save(figure, out / "latency.png"))
    return written
