"""Commands that run something: the gateway, the simulated provider, the demo, the local
fleet, and the install-time helper `keys add` (`model export` is with the model's commands,
`_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from frugal.cli._common import ConfigOption, HostOption, PortOption, fail, settings
from frugal.errors import ConfigurationError


def serve(
    host: HostOption = None,
    port: PortOption = None,
    config: ConfigOption = None,
    upstream: Annotated[
        str | None, typer.Option(help="Upstream base URL, e.g. http://127.0.0.1:9000/v1.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Gateway processes on the one port (needs FRUGAL_STORE=redis)."),
    ] = None,
) -> None:
    """Run the gateway."""
    from frugal.api import server
    from frugal.api.app import create_app
    from frugal.cli._startup import check_startup
    from frugal.observability.logs import configure_logging

    chosen = settings(config, host=host, port=port, upstream_base_url=upstream, workers=workers)
    if chosen.upstream_base_url is None:
        fail("FRUGAL_UPSTREAM_BASE_URL (or --upstream) is required")
    if chosen.workers > 1 and chosen.store == "embedded" and chosen.cache_mode != "off":
        fail(
            f"--workers {chosen.workers} needs FRUGAL_STORE=redis: with the embedded store each "
            "worker would hold a cache of its own in its memory"
        )
    try:
        check_startup(chosen)
        configure_logging(chosen.log_level)
        if chosen.workers > 1:
            from frugal.api.workers import serve_workers

            serve_workers(chosen)
            return
        server.serve(
            create_app(chosen),
            host=chosen.host,
            port=chosen.port,
            log_level=chosen.log_level,
            drain_s=chosen.shutdown_drain_s,
        )
    except ConfigurationError as exc:
        fail(exc)


def fleet(
    replicas: Annotated[int, typer.Option(min=1, help="Gateway replicas.")] = 3,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes per gateway.")] = 1,
    port: Annotated[
        int | None, typer.Option(help="HAProxy's port, where clients connect (default: free).")
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            envvar="FRUGAL_UPSTREAM_BASE_URL",
            help="The provider's base URL (default: start the simulator).",
        ),
    ] = None,
    run_dir: Annotated[
        Path, typer.Option(help="Where the fleet's logs and data go (emptied first).")
    ] = Path(".frugal/fleet"),
) -> None:
    """Run a local fleet until Ctrl-C: Redis, gateway replicas sharing it, HAProxy in front
    of them, and the simulated provider unless an upstream is given."""
    import signal

    from frugal.local.fleet import running_fleet
    from frugal.local.haproxy import HAProxyUnavailable
    from frugal.local.redis_server import RedisServerUnavailable

    stop_signals = {signal.SIGINT, signal.SIGTERM}
    try:
        with running_fleet(
            run_dir=run_dir, replicas=replicas, workers=workers, upstream=upstream, port=port
        ) as running:
            # Blocked only now, so the children do not inherit the mask; sigwait takes them.
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            for line in running.describe():
                typer.echo(line)
            typer.echo("Ctrl-C stops it all", err=True)
            signal.sigwait(stop_signals)
            typer.echo("stopping the fleet", err=True)
    except (HAProxyUnavailable, RedisServerUnavailable, RuntimeError) as exc:
        fail(exc)


keys_app = typer.Typer(no_args_is_help=True, help="Client keys and their tenants.")


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
    from frugal.errors import KeysFileError
    from frugal.tenants import add_key

    path = file or Path("frugal-keys.yaml")
    try:
        key = add_key(path, tenant)
    except (KeysFileError, OSError, ValueError) as exc:
        fail(exc)
    typer.echo(key)
    typer.echo(f"added to {path} for tenant {tenant!r}; this key is shown only now", err=True)


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
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model names GET /v1/models lists (any is answered)."),
    ] = None,
    flag_containing: Annotated[
        str | None, typer.Option(help="Moderations flag an input that contains this text.")
    ] = None,
    batch_delay_s: Annotated[
        float, typer.Option(help="Seconds a batch waits after its creation before it is answered.")
    ] = 2.0,
    batch_expire_after_s: Annotated[
        float | None,
        typer.Option(help="A batch not completed this many seconds after creation expires (24 h)."),
    ] = None,
) -> None:
    """Run the simulated OpenAI-compatible provider."""
    import uvicorn

    from frugal.sim import DEFAULT_MODELS, SimConfig, create_sim_app

    names = DEFAULT_MODELS if models is None else tuple(m.strip() for m in models.split(","))
    try:
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
            models=names,
            flag_containing=flag_containing,
            batch_delay_s=batch_delay_s,
            batch_expire_after_s=batch_expire_after_s,
        )
    except ValueError as exc:
        fail(exc)
    uvicorn.run(create_sim_app(config), host=host, port=port, log_level="warning")


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
