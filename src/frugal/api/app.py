"""The app factory: everything long-lived is built here, in the lifespan, and closed there
(the request path itself by `frugal.assembly.open_core`, shared with the library)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from frugal.api import (
    admin,
    batches,
    dashboard,
    feedback,
    models_route,
    reembed,
    routes,
    stored_responses,
)
from frugal.api.errors import install_error_handlers
from frugal.api.fleet_view import replica_report
from frugal.api.models_route import ModelsCache
from frugal.api.openapi import install_openapi
from frugal.api.relay import install_relay
from frugal.api.request_id import RequestIdMiddleware
from frugal.api.state import GatewayState
from frugal.assembly import open_core, provider_limits
from frugal.batching import BatchingUpstream
from frugal.cache import SemanticCache
from frugal.config import Settings
from frugal.deferred import BatchService, BatchStore, RunnerParts
from frugal.fleet import Fleet, FleetCollector, FleetReporter, replica_id
from frugal.observability.batch_metrics import BatchMetrics
from frugal.observability.observer import Observer
from frugal.observability.prices import PriceTable
from frugal.tenants import Keys
from frugal.upstream import ProviderBatches, Relay, provider_transport

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the gateway. ``transport`` replaces the network for unit tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            observer = Observer(
                prices=PriceTable(settings.prices),
                tenant_label=settings.metrics_tenant_label,
                log_prompts=settings.log_prompts,
                # With the Redis store this is one replica of a fleet: its metrics say which.
                replica=replica_id(settings) if settings.store == "redis" else None,
            )
            core = await open_core(
                settings, stack, transport=transport, watcher=observer, load_in_background=True
            )
            cache, threshold, upstream_key = core.cache, core.threshold, core.upstream_key
            # The relayed routes on a pool of their own: a long upload holds none of the
            # cached routes' connections.
            relay_http = httpx.AsyncClient(
                transport=transport or provider_transport(provider_limits(settings)),
                timeout=core.http.timeout,
            )
            stack.push_async_callback(relay_http.aclose)
            app.state.relay = Relay(
                http=relay_http,
                base_url=settings.upstream_url,
                api_key=upstream_key,
                retry=core.retry,
            )
            app.state.models_cache = ModelsCache(ttl_s=settings.models_cache_s)
            state = GatewayState(
                settings=settings,
                pipeline=core.pipeline,
                cache=cache,
                upstream=core.upstream,
                batching=core.batching,
                coalescer=core.coalescer,
                observer=observer,
                shadow=core.shadow,
                keys=Keys.load(settings.api_keys_file) if settings.api_keys_file else None,
                threshold=threshold,
                recent_hits=core.recent_hits,
                labels=core.labels,
                fleet=core.fleet,
            )
            app.state.gateway = state
            app.state.batches = _batch_service(
                settings,
                upstream=core.batching,
                provider=ProviderBatches(
                    http=relay_http,
                    base_url=settings.upstream_url,
                    api_key=upstream_key,
                    retry=core.retry,
                ),
                cache=cache if settings.cache_mode == "on" else None,
                observer=observer,
            )
            stack.push_async_callback(app.state.batches.aclose)
            resumed = app.state.batches.resume()
            if resumed:
                logger.info("%d unfinished batches resumed", resumed)
            if settings.admin_key is None:
                logger.info("admin routes are off: FRUGAL_ADMIN_KEY is not set")
            if state.keys is None:
                logger.warning(
                    "the gateway runs open, as one tenant: set FRUGAL_API_KEYS_FILE "
                    "(frugal keys add TENANT) to require client keys"
                )
            else:
                logger.info("%d client keys loaded", len(state.keys))
            logger.info(
                "frugal gateway forwarding to %s; cache %s%s%s",
                settings.upstream_url,
                settings.cache_mode,
                f", embedder model {cache.model.id}" if cache else "",
                f", threshold {threshold.threshold:g} ({threshold.source})" if threshold else "",
            )
            if core.fleet is not None:
                _join_fleet(state, core.fleet, stack)
            state.ready = True
            try:
                yield
            finally:
                state.ready = False

    app = FastAPI(title="frugal", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(routes.router)
    app.include_router(admin.router)
    app.include_router(feedback.router)
    app.include_router(reembed.router)
    app.include_router(dashboard.router)
    app.include_router(models_route.router)
    app.include_router(stored_responses.router)
    app.include_router(batches.router)
    install_relay(app)  # every other /v1/ path: what no route matches
    return app


def _join_fleet(state: GatewayState, fleet: Fleet, stack: AsyncExitStack) -> None:
    """Count the fleet's leases in the metrics, and report to the fleet view until closed."""
    if fleet.leases is not None:
        state.observer.metrics.registry.register(FleetCollector(fleet.leases.counts))

    async def report() -> dict[str, object]:
        return await replica_report(state, fleet)

    reporter = FleetReporter(
        fleet.client,
        names=fleet.names,
        replica=fleet.replica,
        interval_s=state.settings.fleet_report_s,
        report=report,
    )
    reporter.start()
    stack.push_async_callback(reporter.aclose)


def _batch_service(
    settings: Settings,
    *,
    upstream: BatchingUpstream,
    provider: ProviderBatches,
    cache: SemanticCache | None,
    observer: Observer,
) -> BatchService:
    """The Batch API's batches, kept under the data dir (with the Redis store too, for now:
    a batch is run by the replica that took it)."""
    parts = RunnerParts(
        store=BatchStore(settings.data_dir / "batches"),
        upstream=upstream,
        provider=provider,
        cache=cache,
        prices=PriceTable(settings.prices),
        schemas=batches.LINE_SCHEMAS,
        poll_s=settings.batch_api_poll_s,
        live_rps=settings.batch_api_live_rps,
        user_is_label=settings.cache_user_is_label,
        admit_length=settings.cache_store_length_finish,
        admit_tool_calls=settings.cache_store_tool_calls,
    )
    metrics = BatchMetrics(observer.metrics.registry)
    return BatchService(parts, mode=settings.batch_api_mode, metrics=metrics)
