"""Offline tools: `tune` (thresholds on labelled pairs), `analyze` (a prompt log replayed) and
`bench` (one prompt stream through each setup of real processes)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.console import Console

from frugal.bench.report import share
from frugal.cli._common import ConfigOption, fail, settings
from frugal.config import DEFAULT_THRESHOLD
from frugal.tuning.pairs import DEFAULT_SEED, DEFAULT_VALIDATION_SHARE

if TYPE_CHECKING:
    from frugal.analysis.models import Model
    from frugal.analysis.thresholds import Pair

ModelsOption = Annotated[
    str | None,
    typer.Option(
        help="Embedding models side by side, comma-separated: base, a shipped model's name or "
        "a tuned model's directory (default: the configured FRUGAL_EMBEDDER_MODEL alone)."
    ),
]
# frugal model tune's defaults for its split, so that --tuning-holdout alone measures the pairs
# a model tuned with its defaults never saw.


def _models(config: Path | None, models: str | None) -> list[Model]:
    """The models to measure: those ``--models`` lists, or the configured one alone (the
    gateway's own embedder: the model FRUGAL_EMBEDDER_MODEL names)."""
    from frugal.analysis.models import load_models, parse_models
    from frugal.errors import ConfigurationError, EmbedderUnavailable

    chosen = settings(config)
    try:
        choices = [chosen.embedder_model] if models is None else parse_models(models)
        return load_models(choices, backend=chosen.embedder_backend, model_dir=chosen.models_path)
    except (ValueError, ConfigurationError, EmbedderUnavailable) as exc:
        fail(exc)


def _held_out(
    loaded: list[Pair], *, wanted: bool, seed: int | None, validation_share: float | None
) -> tuple[list[Pair], dict[str, Any] | None]:
    """The pairs to measure: all, or with ``wanted`` those `frugal.tuning.pairs.cluster_split`
    holds out, and a record of which; raises ``ValueError`` for a split that holds out none."""
    from frugal.tuning.pairs import cluster_split

    if not wanted:
        if seed is not None or validation_share is not None:
            raise ValueError(
                "--seed and --validation-share choose held-out pairs: add --tuning-holdout"
            )
        return loaded, None
    seed = DEFAULT_SEED if seed is None else seed
    fraction = DEFAULT_VALIDATION_SHARE if validation_share is None else validation_share
    held = cluster_split(loaded, share=fraction, seed=seed).validation
    if not held:
        raise ValueError(
            f"seed {seed} and share {fraction} hold out none of the {len(loaded)} pairs"
        )
    record = {"seed": seed, "validation_share": fraction, "pairs": len(held), "of": len(loaded)}
    return held, record


def _warn_trained_on(models: list[Model], pairs: Path, held_out: dict[str, Any] | None) -> None:
    """Say on stderr when a tuned model would be measured on pairs it trained on."""
    from frugal.analysis.models import trained_on_warning
    from frugal.tuning.hashing import sha256_file

    if all(model.spec.manifest is None for model in models):
        return
    digest = sha256_file(pairs)
    split = None if held_out is None else (held_out["seed"], held_out["validation_share"])
    for model in models:
        warning = trained_on_warning(model.spec, data_sha256=digest, held_out=split)
        if warning is not None:
            typer.echo(f"warning: {warning}", err=True)


def tune(
    pairs: Annotated[Path, typer.Option(help='JSONL of {"a", "b", "label"} (1: same meaning).')],
    out: Annotated[Path, typer.Option(help="Folder for tune.json and tune.png.")] = Path(
        "frugal-tune"
    ),
    max_wrong_hit_rate: Annotated[
        float, typer.Option(help="Largest share of hits that may be wrong.")
    ] = 0.01,
    tuning_holdout: Annotated[
        bool,
        typer.Option(
            "--tuning-holdout",
            help="Only the pairs frugal model tune holds out (whole question clusters) with "
            "--seed and --validation-share: what a model tuned on this file never saw.",
        ),
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help=f"With --tuning-holdout: the split's seed ({DEFAULT_SEED}).")
    ] = None,
    validation_share: Annotated[
        float | None,
        typer.Option(
            help="With --tuning-holdout: the share of clusters held out "
            f"({DEFAULT_VALIDATION_SHARE})."
        ),
    ] = None,
    through_store: Annotated[
        bool,
        typer.Option(
            "--through-store",
            help="Similarities as the embedded store reports them (each pair's first text "
            "stored, the second looked up), with its float16 vectors, not computed beside it.",
        ),
    ] = False,
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Precision, recall and wrong hits by threshold on labelled pairs; recommend one."""
    from frugal.analysis.tables import tune_table
    from frugal.analysis.thresholds import Measured, evaluate, load_pairs, recommend, similarities
    from frugal.analysis.thresholds import write_outputs as write_tune

    try:
        loaded, held_out = _held_out(
            load_pairs(pairs), wanted=tuning_holdout, seed=seed, validation_share=validation_share
        )
    except (OSError, ValueError) as exc:
        fail(exc)
    chosen_models = _models(config, models)
    _warn_trained_on(chosen_models, pairs, held_out)
    same = np.array([pair.same for pair in loaded])
    measured = []
    for model in chosen_models:
        rows = evaluate(similarities(model.embedder, loaded, through_store=through_store), same)
        chosen = recommend(rows, max_wrong_hit_rate)
        measured.append(Measured(model.label, model.spec.id, rows, chosen))
    title = f"{len(loaded):,} pairs from {pairs.name}"
    if held_out is not None:
        title = (
            f"{len(loaded):,} held-out pairs of {held_out['of']:,} from {pairs.name} "
            f"(seed {held_out['seed']}, share {held_out['validation_share']})"
        )
    if through_store:
        title += ", similarities through the embedded store"
    Console().print(tune_table(measured, title))
    for one in measured:
        prefix = f"{one.model}: " if len(measured) > 1 else ""
        if one.chosen is None:
            typer.echo(
                f"{prefix}no threshold keeps wrong hits at or below {max_wrong_hit_rate:.1%}"
            )
        else:
            typer.echo(
                f"{prefix}recommended threshold: {one.chosen.threshold:.2f} (wrong hits "
                f"{share(one.chosen.wrong_hit_rate)}, recall {share(one.chosen.recall)})"
            )
    written = write_tune(
        measured, out, source=pairs.name, target=max_wrong_hit_rate, held_out=held_out
    )
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
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Replay a prompt log through a fresh cache: hits per threshold against an exact cache."""
    from frugal.analysis.embedding import embed_all
    from frugal.analysis.replay import (
        ModelReplays,
        clusters,
        load_prompts,
        neighbours,
        replay_exact,
        replay_semantic,
    )
    from frugal.analysis.replay import write_outputs as write_analysis
    from frugal.analysis.tables import analyze_table

    try:
        levels = sorted(float(value) for value in thresholds.split(","))
        loaded = load_prompts(prompts, shuffle_seed=shuffle)
    except (OSError, ValueError) as exc:
        fail(exc)
    chosen_models = _models(config, models)
    total = len(loaded)
    details = frozenset(name for name in detail_intents.split(",") if name)
    exact = replay_exact(loaded, detail_intents=details).summary(total)
    # The clusters are shown at the threshold nearest the gateway's default.
    middle = min(levels, key=lambda level: abs(level - DEFAULT_THRESHOLD))
    replays = []
    for model in chosen_models:
        label = "embedding the log" + (f" ({model.label})" if len(chosen_models) > 1 else "")
        vectors = embed_all(model.embedder, [p.text for p in loaded], label=label)
        near = neighbours(vectors, [p.scope for p in loaded], floor=levels[0])
        results = [replay_semantic(loaded, near, level, detail_intents=details) for level in levels]
        rows = [result.summary(total) for result in results]
        top = clusters(loaded, results[levels.index(middle)])
        replays.append(ModelReplays(model.label, model.spec.id, rows, top))
    title = f"{total:,} prompts from {prompts.name}, replayed in order"
    Console().print(analyze_table(exact, replays, title))
    for one in replays:
        prefix = f"{one.model}: " if len(replays) > 1 else ""
        for cluster in one.top[:5]:
            answered = f"{cluster['answered']:>5} answered by {cluster['cached']!r}"
            typer.echo(f"{prefix}{answered} (semantic {middle:.2f})")
    order = f"shuffled (seed {shuffle})" if shuffle is not None else "as logged"
    written = write_analysis(replays, exact, out, source=prompts.name, total=total, order=order)
    typer.echo("wrote " + ", ".join(str(path) for path in written))


def _gateway_models(models: str, model_dir: Path) -> list[tuple[str, str, str]]:
    """Each model ``--models`` lists as a gateway is given it: its label, its
    FRUGAL_EMBEDDER_MODEL (a directory made absolute) and its id; checked before any setup
    runs."""
    from frugal.analysis.models import parse_models, resolve_models
    from frugal.errors import ConfigurationError

    try:
        specs = resolve_models(parse_models(models), model_dir=model_dir)
    except (ValueError, ConfigurationError) as exc:
        fail(exc)
    return [
        (
            spec.choice,
            str(spec.directory.resolve()) if spec.origin == "directory" else spec.choice,
            spec.id,
        )
        for spec in specs
    ]


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
    models: ModelsOption = None,
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
    """The same prompt stream through direct, no-cache, exact, semantic, batching and Batch API
    setups."""
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
    compared = None if models is None else _gateway_models(models, chosen_settings.models_path)
    draws = stream(loaded, requests, zipf=zipf, seed=seed)
    chosen = configurations(
        levels, None if compared is None else [(label, value) for label, value, _ in compared]
    )
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
            task = progress.add_task(setup.label, total=len(draws))
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
    if compared is not None:
        meta["embedders"] = [{"embedder": label, "id": id_} for label, _, id_ in compared]
    latencies = {
        result.config.label: [o.latency_s * 1000 for o in result.outcomes if o.error is None]
        for result in results
    }
    title = f"{loaded.name}, {len(draws):,} prompts, {arrival}"
    written = write_report(out, title=title, meta=meta, rows=rows, latencies_ms=latencies)
    typer.echo("\n".join(markdown_table(rows)))
    typer.echo("wrote " + ", ".join(str(path) for path in written))
