"""The `frugal` command line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import httpx
import numpy as np
import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from frugal.admin_client import AdminClient
from frugal.bench.report import share
from frugal.config import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from frugal.cache.embedder import Embedder

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="frugal, an LLM gateway.",
)

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on.")]
ConfigOption = Annotated[
    Path | None, typer.Option(help="YAML settings file.", envvar="FRUGAL_CONFIG_FILE")
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config_file=config, **overrides)
    except SettingsError as exc:
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    config: ConfigOption = None,
    upstream: Annotated[
        str | None, typer.Option(help="Upstream base URL, e.g. http://127.0.0.1:9000/v1.")
    ] = None,
) -> None:
    """Run the gateway."""
    from frugal.api import server
    from frugal.api.app import create_app
    from frugal.observability.logs import configure_logging

    settings = _settings(config, host=host, port=port, upstream_base_url=upstream)
    if settings.upstream_base_url is None:
        typer.echo("frugal: FRUGAL_UPSTREAM_BASE_URL (or --upstream) is required", err=True)
        raise typer.Exit(2)
    if settings.api_keys_file is not None:
        from frugal.tenants import Keys, KeysFileError

        try:
            Keys.load(settings.api_keys_file)
        except KeysFileError as exc:
            typer.echo(f"frugal: {exc}", err=True)
            raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    server.serve(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        drain_s=settings.shutdown_drain_s,
    )


model_app = typer.Typer(no_args_is_help=True, help="The embedding model.")
app.add_typer(model_app, name="model")


@model_app.command("export")
def model_export(
    config: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write to (default: the model dir).")
    ] = None,
) -> None:
    """Export the packaged all-MiniLM-L6-v2 weights to ONNX (needs torch; run once at install)."""
    from frugal.cache.export import export_onnx

    target = out if out is not None else _settings(config).models_path
    typer.echo(f"exported {export_onnx(target)}")


keys_app = typer.Typer(no_args_is_help=True, help="Client keys and their tenants.")
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    tenant: Annotated[str, typer.Argument(help="The tenant the new key belongs to.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            envvar="FRUGAL_API_KEYS_FILE",
            help="The keys file (YAML, or JSON by its suffix); created if absent.",
        ),
    ] = None,
) -> None:
    """Create a client key for TENANT: its salted hash goes to the file, the key is printed
    here once and stored nowhere."""
    from frugal.tenants import KeysFileError, add_key

    path = file or Path("frugal-keys.yaml")
    try:
        key = add_key(path, tenant)
    except (KeysFileError, OSError, ValueError) as exc:
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(key)
    typer.echo(f"added to {path} for tenant {tenant!r}; this key is shown only now", err=True)


cache_app = typer.Typer(no_args_is_help=True, help="Inspect and invalidate a gateway's cache.")
app.add_typer(cache_app, name="cache")

UrlOption = Annotated[str, typer.Option(envvar="FRUGAL_URL", help="The gateway's base URL.")]
AdminKeyOption = Annotated[
    str, typer.Option(envvar="FRUGAL_ADMIN_KEY", help="The admin key.", show_default=False)
]


def _admin_call(url: str, admin_key: str, call: Callable[[AdminClient], T]) -> T:
    try:
        with AdminClient(url, admin_key) as client:
            return call(client)
    except httpx.HTTPStatusError as exc:
        typer.echo(f"frugal: {exc.response.status_code}: {exc.response.text}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"frugal: cannot reach {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from None


@cache_app.command("stats")
def cache_stats(admin_key: AdminKeyOption, url: UrlOption = "http://127.0.0.1:8080") -> None:
    """Print the gateway's cache statistics as JSON."""
    typer.echo(json.dumps(_admin_call(url, admin_key, AdminClient.stats), indent=2))


@cache_app.command("list")
def cache_list(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    offset: int = 0,
    limit: int = 50,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's entries.")] = None,
) -> None:
    """List cached entries, newest first."""
    found = _admin_call(
        url, admin_key, lambda c: c.entries(offset=offset, limit=limit, tenant=tenant)
    )
    table = Table("id", "tenant", "model", "prompt", "hits", "expires in")
    now = time.time()
    for entry in found:
        table.add_row(
            entry["id"],
            entry["tenant"],
            entry["labels"].get("model", ""),
            entry["prompt"][:60],
            str(entry["hits"]),
            f"{max(0, entry['expires_at'] - now):.0f} s",
        )
    Console().print(table)


@cache_app.command("invalidate")
def cache_invalidate(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    entry_id: Annotated[list[str] | None, typer.Option("--id", help="An entry id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Every entry of a tenant.")] = None,
    scope: Annotated[str | None, typer.Option(help="Every entry of a scope.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Entries similar to this prompt.")] = None,
    threshold: Annotated[float, typer.Option(help="Similarity for --prompt.")] = 0.9,
) -> None:
    """Remove entries by id, tenant, scope, or similarity to a prompt."""
    selector: dict[str, object] = {}
    if entry_id:
        selector["ids"] = entry_id
    if tenant is not None:
        selector["tenant"] = tenant
    if scope is not None:
        selector["scope"] = scope
    if prompt is not None:
        selector.update(prompt=prompt, threshold=threshold)
    removed = _admin_call(url, admin_key, lambda c: c.invalidate(selector))
    typer.echo(f"invalidated {removed} entries")


@cache_app.command("flush")
def cache_flush(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every cached entry."""
    if not yes:
        typer.confirm(f"Flush the whole cache of {url}?", abort=True)
    typer.echo(f"flushed {_admin_call(url, admin_key, AdminClient.flush)} entries")


@app.command("shadow-report")
def shadow_report(admin_key: AdminKeyOption, url: UrlOption = "http://127.0.0.1:8080") -> None:
    """What a gateway in shadow mode saw: would-be hits and diverged answers by threshold."""
    report = _admin_call(url, admin_key, AdminClient.shadow_report)
    table = Table(
        title=f"shadow mode: {report['requests']:,} cacheable requests, "
        f"{report['compared']:,} would-be hits compared"
    )
    for column in ["threshold", "would-be hits", "hit rate", "identical", "diverged"]:
        table.add_column(column, justify="right")
    for row in report["thresholds"]:
        table.add_row(
            f"{row['threshold']:.2f}",
            f"{row['would_be_hits']:,}",
            share(row["would_be_hit_rate"]),
            share(row["identical_share"]),
            share(row["diverged_share"]),
        )
    Console().print(table)
    typer.echo(
        f"diverged: the cached and the fresh answers' similarity is below "
        f"{report['diverged_below']:.2f}"
    )


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    call_latency_ms: Annotated[float, typer.Option(help="Fixed cost of every call.")] = 900.0,
    item_latency_ms: Annotated[
        float, typer.Option(help="Cost per prompt or input in a call.")
    ] = 100.0,
    token_latency_ms: Annotated[float, typer.Option(help="Cost per output token.")] = 0.0,
    max_concurrency: Annotated[
        int | None, typer.Option(help="Calls served at once; more queue.")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute; over it: 429.")] = None,
    error_rate: Annotated[float, typer.Option(help="Share of calls answered 500.")] = 0.0,
    slow_rate: Annotated[float, typer.Option(help="Share of calls slowed by --slow-ms.")] = 0.0,
    slow_ms: Annotated[float, typer.Option(help="Extra latency of a slow call.")] = 5000.0,
    drop_rate: Annotated[float, typer.Option(help="Share of calls whose connection drops.")] = 0.0,
    reject_containing: Annotated[
        str | None, typer.Option(help="Answer 400 to a call when a prompt contains this text.")
    ] = None,
    require_api_key: Annotated[
        str | None, typer.Option(help="Answer 401 unless this bearer key is sent.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault injection.")] = None,
) -> None:
    """Run the simulated OpenAI-compatible provider."""
    from frugal.sim import SimConfig, create_sim_app

    config = SimConfig(
        call_latency_ms=call_latency_ms,
        item_latency_ms=item_latency_ms,
        token_latency_ms=token_latency_ms,
        max_concurrency=max_concurrency,
        rpm=rpm,
        error_rate=error_rate,
        slow_rate=slow_rate,
        slow_ms=slow_ms,
        drop_rate=drop_rate,
        reject_containing=reject_containing,
        require_api_key=require_api_key,
        seed=seed,
    )
    uvicorn.run(create_sim_app(config), host=host, port=port, log_level="warning")


@app.command()
def demo(
    workload: Annotated[
        Path | None, typer.Option(help='JSONL of {"text": ...} prompts (default: bundled).')
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.")] = 8,
    call_latency_ms: Annotated[float, typer.Option(help="The provider's cost per call.")] = 900.0,
    item_latency_ms: Annotated[float, typer.Option(help="The provider's cost per prompt.")] = 100.0,
    chart: Annotated[Path, typer.Option(help="Where to write the report as a PNG chart.")] = Path(
        "frugal-demo.png"
    ),
) -> None:
    """Start a simulated provider and the gateway, replay a workload, print what was saved."""
    from frugal.demo import print_report, run_demo, write_chart

    sim_args = [
        "--call-latency-ms",
        str(call_latency_ms),
        "--item-latency-ms",
        str(item_latency_ms),
    ]
    report = run_demo(workload=workload, concurrency=concurrency, sim_args=sim_args)
    print_report(report)
    typer.echo(f"chart: {write_chart(report, chart)}")


def _embedder(config: Path | None) -> Embedder:
    from frugal.cache.embedder import EmbedderUnavailable, load_embedder

    settings = _settings(config)
    try:
        return load_embedder(backend=settings.embedder_backend, model_dir=settings.models_path)
    except EmbedderUnavailable as exc:
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
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
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None
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


@app.command()
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
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None
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
    middle = min(results, key=lambda result: abs((result.threshold or 0) - 0.9))
    top = clusters(loaded, middle)
    for cluster in top[:5]:
        typer.echo(f"{cluster['answered']:>5} answered by {cluster['cached']!r} ({middle.name})")
    order = f"shuffled (seed {shuffle})" if shuffle is not None else "as logged"
    written = write_analysis(rows, exact, top, out, source=prompts.name, total=total, order=order)
    typer.echo("wrote " + ", ".join(str(path) for path in written))


@app.command()
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

    from frugal.bench.report import markdown_table, write_json, write_plots
    from frugal.bench.run import configurations, run_config
    from frugal.bench.workload import load_workload, stream
    from frugal.observability.prices import PriceTable

    if qps is not None and clients is not None:
        typer.echo("frugal: give --qps or --clients, not both", err=True)
        raise typer.Exit(2)
    if qps is None and clients is None:
        clients = 16
    if duration is not None:
        if qps is None:
            typer.echo("frugal: --duration needs --qps", err=True)
            raise typer.Exit(2)
        requests = max(1, round(qps * duration))
    try:
        loaded = load_workload(workload)
        levels = [float(value) for value in thresholds.split(",") if value.strip()]
    except (OSError, ValueError, KeyError) as exc:
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = _settings(config)
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
    prices = PriceTable(settings.prices)
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
                    model_dir=settings.models_path.resolve(),
                    advance=lambda task=task: progress.advance(task),
                )
            )
    rows = [result.summary(loaded, prices, model) for result in results]
    arrival = f"open loop at {qps:g}/s" if qps is not None else f"closed loop, {clients} clients"
    title = f"{loaded.name}, {len(draws):,} prompts, {arrival}"
    table = markdown_table(rows)
    out.mkdir(parents=True, exist_ok=True)
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
    written = [write_json(out / "bench.json", meta, rows)]
    latencies = {
        result.config.name: [o.latency_s * 1000 for o in result.outcomes if o.error is None]
        for result in results
    }
    written += write_plots(out, rows, latencies, title)
    (out / "bench.md").write_text("\n".join([f"# frugal bench: {title}", "", *table, ""]))
    typer.echo("\n".join(table))
    typer.echo("wrote " + ", ".join(str(path) for path in [out / "bench.md", *written]))
