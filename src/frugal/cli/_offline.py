"""Offline tools: `tune` (thresholds on labelled pairs), `analyze` (a prompt log replayed) and
`bench` (one prompt stream through each setup of real processes)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from frugal.bench.report import share
from frugal.cli._common import ConfigOption, fail, settings
from frugal.config import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from frugal.cache.embedder import Embedder


def _embedder(config: Path | None) -> Embedder:
    from frugal.cache.embedder import load_embedder
    from frugal.cache.models import resolve_model
    from frugal.errors import ConfigurationError, EmbedderUnavailable

    chosen = settings(config)
    try:  # the gateway's own embedder: the model FRUGAL_EMBEDDER_MODEL names
        model = resolve_model(chosen.embedder_model, model_dir=chosen.models_path)
        return load_embedder(backend=chosen.embedder_backend, model=model)
    except (ConfigurationError, EmbedderUnavailable) as exc:
        fail(exc)


def tune(
    pairs: Annotated[Path, typer.Option(help='JSONL of {"a", "b", "label"} (1: same meaning).')],
    out: Annotated[Path, typer.Option(help="Folder for tune.json and tune.png.")] = Path(
        "frugal-tune"
    ),
    max_wrong_hit_rate: Annotated[
        float, typer.Option(help="Largest share of hits that may be wrong.")
    ] = 0.01,
    config: ConfigOption = None,
) -> None:
    """Precision, recall and wrong hits by threshold on labelled pairs; recommend one."""
    from frugal.analysis.thresholds import evaluate, load_pairs, recommend, similarities
    from frugal.analysis.thresholds import write_outputs as write_tune

    try:
        loaded = load_pairs(pairs)
    except (OSError, ValueError) as exc:
        fail(exc)
    sims = similarities(_embedder(config), loaded)
    rows = evaluate(sims, np.array([pair.same for pair in loaded]))
    chosen = recommend(rows, max_wrong_hit_rate)
    table = Table(title=f"{len(loaded):,} pairs from {pairs.name}")
    for column in ["threshold", "hit rate", "precision", "recall", "F1", "wrong hits"]:
        table.add_column(column, justify="right")
    for row in rows:
        style = "bold green" if chosen is not None and row is chosen else None
        table.add_row(
            f"{row.threshold:.2f}",
            share(row.hit_rate),
            share(row.precision),
            share(row.recall),
            "–" if row.f1 is None else f"{row.f1:.3f}",
            share(row.wrong_hit_rate),
            style=style,
        )
    Console().print(table)
    if chosen is None:
        typer.echo(f"no threshold keeps wrong hits at or below {max_wrong_hit_rate:.1%}")
    else:
        typer.echo(
            f"recommended threshold: {chosen.threshold:.2f} (wrong hits "
            f"{share(chosen.wrong_hit_rate)}, recall {share(chosen.recall)})"
        )
    written = write_tune(rows, chosen, out, source=pairs.name, target=max_wrong_hit_rate)
    typer.echo("wrote " + ", ".join(str(path) for path in written))


def analyze(
    prompts: Annotated[
        Path, typer.Option(help='JSONL of {"text"}, optionally "scope", "timestamp", "intent".')
    ],
    out: Annotated[Path, typer.Option(help="Folder for analyze.json and analyze.png.")] = Path(
        "frugal-analyze"
    ),
    thresholds: Annotated[
        str, typer.Option(help="Comma-separated thresholds.")
    ] = "0.80,0.85,0.88,0.90,0.92,0.95,0.98",
    shuffle: Annotated[
        int | None, typer.Option(help="Replay in an order shuffled with this seed.")
    ] = None,
    detail_intents: Annotated[
        str,
        typer.Option(help="Intents whose answers carry details (counted apart), comma-separated."),
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Replay a prompt log through a fresh cache: hits per threshold against an exact cache."""
    from frugal.analysis.embedding import embed_all
    from frugal.analysis.replay import (
        clusters,
        load_prompts,
        neighbours,
        replay_exact,
        replay_semantic,
    )
    from frugal.analysis.replay import write_outputs as write_analysis

    try:
        levels = sorted(float(value) for value in thresholds.split(","))
        loaded = load_prompts(prompts, shuffle_seed=shuffle)
    except (OSError, ValueError) as exc:
        fail(exc)
    vectors = embed_all(_embedder(config), [p.text for p in loaded], label="embedding the log")
    near = neighbours(vectors, [p.scope for p in loaded], floor=levels[0])
    total = len(loaded)
    details = frozenset(name for name in detail_intents.split(",") if name)
    exact = replay_exact(loaded, detail_intents=details).summary(total)
    results = [replay_semantic(loaded, near, level, detail_intents=details) for level in levels]
    rows = [result.summary(total) for result in results]
    table = Table(title=f"{total:,} prompts from {prompts.name}, replayed in order")
    for column in ["cache", "hits", "hit rate", "upstream calls", "wrong hits"]:
        table.add_column(column, justify="right")
    for row in [exact, *rows]:
        table.add_row(
            row["cache"],
            f"{row['hits']:,}",
            share(row["hit_rate"]),
            f"{row['upstream_calls']:,}",
            share(row["wrong_hit_rate"]),
        )
    Console().print(table)
    # The clusters are shown at the threshold nearest the gateway's default.
    middle = min(results, key=lambda result: abs((result.threshold or 0) - DEFAULT_THRESHOLD))
    top = clusters(loaded, middle)
    for cluster in top[:5]:
        typer.echo(f"{cluster['answered']:>5} answered by {cluster['cached']!r} ({middle.name})")
    order = f"shuffled (seed {shuffle})" if shuffle is not None else "as logged"
    written = write_analysis(rows, exact, top, out, source=prompts.name, total=total, order=order)
    typer.echo("wrote " + ", ".join(str(path) for path in written))


def bench(
    workload: Annotated[
        Path, typer.Option(help='An intents file {"text", "intent"} or a pairs file.')
    ],
    requests: Annotated[int, typer.Option(help="Prompts in the stream.")] = 1000,
    clients: Annotated[
        int | None, typer.Option(help="Closed loop: concurrent clients (default 16).")
    ] = None,
    qps: Annotated[float | None, typer.Option(help="Open loop: Poisson arrivals a second.")] = None,
    duration: Annotated[
        float | None, typer.Option(help="With --qps: run this long (sets the prompt count).")
    ] = None,
    zipf: Annotated[float, typer.Option(help="Popularity skew over groups.")] = 1.1,
    seed: Annotated[int, typer.Option(help="The stream's (and arrivals') seed.")] = 0,
    thresholds: Annotated[
        str, typer.Option(help="Extra thresholds to compare, comma-separated ('' for none).")
    ] = "0.85,0.95",
    only: Annotated[
        str | None, typer.Option(help="Only these configurations, comma-separated.")
    ] = None,
    model: Annotated[str, typer.Option(help="The model asked (priced from the table).")] = (
        "gpt-4o-mini"
    ),
    call_latency_ms: Annotated[float, typer.Option(help="The provider's cost per call.")] = 500.0,
    item_latency_ms: Annotated[float, typer.Option(help="The provider's cost per prompt.")] = 50.0,
    token_latency_ms: Annotated[
        float, typer.Option(help="The provider's cost per output token.")
    ] = 5.0,
    out: Annotated[Path, typer.Option(help="Folder for bench.md, bench.json, PNGs.")] = Path(
        "frugal-bench"
    ),
    config: ConfigOption = None,
) -> None:
    """The same prompt stream through direct, no-cache, exact, semantic and batching setups."""
    from rich.progress import Progress

    from frugal.bench.report import markdown_table, write_report
    from frugal.bench.run import configurations, run_config
    from frugal.bench.workload import load_workload, stream
    from frugal.observability.prices import PriceTable

    if qps is not None and clients is not None:
        fail("give --qps or --clients, not both")
    if qps is None and clients is None:
        clients = 16
    if duration is not None:
        if qps is None:
            fail("--duration needs --qps")
        requests = max(1, round(qps * duration))
    try:
        loaded = load_workload(workload)
        levels = [float(value) for value in thresholds.split(",") if value.strip()]
    except (OSError, ValueError, KeyError) as exc:
        fail(exc)
    chosen_settings = settings(config)
    draws = stream(loaded, requests, zipf=zipf, seed=seed)
    chosen = configurations(levels)
    if only is not None:
        wanted = {name.strip() for name in only.split(",")}
        chosen = [c for c in chosen if c.name in wanted]
    sim_args = [
        "--call-latency-ms", str(call_latency_ms),
        "--item-latency-ms", str(item_latency_ms),
        "--token-latency-ms", str(token_latency_ms),
        "--seed", str(seed),
    ]  # fmt: skip
    prices = PriceTable(chosen_settings.prices)
    results = []
    with Progress() as progress:
        for setup in chosen:
            task = progress.add_task(setup.name, total=len(draws))
            results.append(
                run_config(
                    setup,
                    draws,
                    model=model,
                    clients=clients,
                    qps=qps,
                    seed=seed,
                    sim_args=sim_args,
                    model_dir=chosen_settings.models_path.resolve(),
                    advance=partial(progress.advance, task),
                )
            )
    rows = [result.summary(loaded, prices, model) for result in results]
    arrival = f"open loop at {qps:g}/s" if qps is not None else f"closed loop, {clients} clients"
    meta = {
        "workload": str(workload),
        "groups": len(loaded.groups),
        "requests": len(draws),
        "distinct_prompts": len({draw.text for draw in draws}),
        "zipf": zipf,
        "seed": seed,
        "arrival": arrival,
        "model": model,
        "simulator": sim_args,
    }
    latencies = {
        result.config.name: [o.latency_s * 1000 for o in result.outcomes if o.error is None]
        for result in results
    }
    title = f"{loaded.name}, {len(draws):,} prompts, {arrival}"
    written = write_report(out, title=title, meta=meta, rows=rows, latencies_ms=latencies)
    typer.echo("\n".join(markdown_table(rows)))
    typer.echo("wrote " + ", ".join(str(path) for path in written))
