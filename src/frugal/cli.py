"""The `frugal` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from frugal.config import Settings, SettingsError, load_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="frugal, an LLM gateway.",
)

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on.")]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config_file=config, **overrides)
    except SettingsError as exc:
        typer.echo(f"frugal: {exc}", err=True)
        raise typer.Exit(2) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="Upstream base URL, e.g. http://127.0.0.1:9000/v1.")
    ] = None,
) -> None:
    """Run the gateway."""
    from frugal.api.app import create_app

    settings = _settings(config, host=host, port=port, upstream_base_url=upstream)
    if settings.upstream_base_url is None:
        typer.echo("frugal: FRUGAL_UPSTREAM_BASE_URL (or --upstream) is required", err=True)
        raise typer.Exit(2)
    _configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )


model_app = typer.Typer(no_args_is_help=True, help="The embedding model.")
app.add_typer(model_app, name="model")


@model_app.command("export")
def model_export(
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write to (default: the model dir).")
    ] = None,
) -> None:
    """Export the packaged all-MiniLM-L6-v2 weights to ONNX (needs torch; run once at install)."""
    from frugal.cache.export import export_onnx

    target = out if out is not None else _settings(config).models_path
    typer.echo(f"exported {export_onnx(target)}")


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
    from frugal.upstream.sim import SimConfig, create_sim_app

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
) -> None:
    """Start a simulated provider and the gateway, replay a workload, print what was saved."""
    from frugal.demo import print_report, run_demo

    sim_args = [
        "--call-latency-ms",
        str(call_latency_ms),
        "--item-latency-ms",
        str(item_latency_ms),
    ]
    print_report(run_demo(workload=workload, concurrency=concurrency, sim_args=sim_args))
