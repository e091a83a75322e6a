"""The app factory: everything long-lived is built here, in the lifespan, and closed there."""

from __future__ import annotations

import asyncio
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
from frugal.api.models_route import ModelsCache
from frugal.api.openapi import install_openapi
from frugal.api.relay import install_relay
from frugal.api.request_id import RequestIdMiddleware
from frugal.api.state import GatewayState
from frugal.batching import BatchingUpstream, BatchSettings, Coalescer
from frugal.cache import (
    AsyncEmbedder,
    CircuitBreaker,
    EmbeddedStore,
    GuardedStore,
    ModelSpec,
    RedisStore,
    SemanticCache,
    ShadowLog,
    VectorStore,
    load_embedder,
    resolve_model,
)
from frugal.calibration import ThresholdChoice, calibration_of, choose_threshold
from frugal.config import Settings
from frugal.deferred import BatchService, BatchStore, RunnerParts
from frugal.labels import FileLabels, Labels, LabelStore, RecentHits, RedisLabels
from frugal.observability.batch_metrics import BatchMetrics
from frugal.observability.observer import Observer
from frugal.observability.prices import PriceTable
from frugal.pipeline import CachePolicy, Pipeline
from frugal.tenants import Keys
from frugal.upstream import (
    OpenAIUpstream,
    ProviderBatches,
    Relay,
    RetryPolicy,
    provider_transport,
)

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the gateway. ``transport`` replaces the network for unit tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            limits = httpx.Limits(
                max_connections=settings.upstream_max_concurrency,
                max_keepalive_connections=settings.upstream_max_concurrency,
            )
            http = httpx.AsyncClient(
                transport=transport or provider_transport(limits),
                timeout=httpx.Timeout(
                    settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
                ),
            )
            stack.push_async_callback(http.aclose)
            retry = RetryPolicy(
                max_retries=settings.upstream_max_retries,
                base_delay_s=settings.upstream_retry_base_delay_s,
                max_delay_s=settings.upstream_retry_max_delay_s,
            )
            upstream_key = (
                settings.upstream_api_key.get_secret_value()
                if settings.upstream_api_key is not None
                else None
            )
            upstream = OpenAIUpstream(
                http=http,
                base_url=settings.upstream_url,
                api_key=upstream_key,
                retry=retry,
            )
            # The relayed routes on a pool of their own: a long upload holds none of the
            # cached routes' connections.
            relay_http = httpx.AsyncClient(
                transport=transport or provider_transport(limits),
                timeout=http.timeout,
            )
            stack.push_async_callback(relay_http.aclose)
            app.state.relay = Relay(
                http=relay_http, base_url=settings.upstream_url, api_key=upstream_key, retry=retry
            )
            app.state.models_cache = ModelsCache(ttl_s=settings.models_cache_s)
            observer = Observer(
                prices=PriceTable(settings.prices),
                tenant_label=settings.metrics_tenant_label,
                log_prompts=settings.log_prompts,
            )
            batching = BatchingUpstream(
                upstream,
                BatchSettings(
                    window_s=settings.batch_window_ms / 1000,
                    max_size=settings.batch_max_size,
                    max_queue=settings.batch_max_queue,
                    timeout_s=settings.batch_timeout_s,
                    max_concurrency=settings.upstream_max_concurrency,
                ),
                watcher=observer,
            )
            stack.push_async_callback(batching.aclose)
            cache = threshold = labels = recent_hits = shadow = None
            if settings.cache_mode != "off":
                cache, threshold = await _open_cache(settings, stack)
                labels = Labels(_open_labels(settings), model=cache.model.id)
                stack.push_async_callback(labels.aclose)
                if settings.cache_mode == "on":
                    recent_hits = RecentHits()
                else:  # shadow
                    shadow = ShadowLog(
                        cache.embedder,
                        threshold=threshold.threshold,
                        budget=threshold.budget,
                        on_pair=labels.compared,
                    )
                    stack.push_async_callback(shadow.aclose)
            policy = CachePolicy(
                user_is_label=settings.cache_user_is_label,
                admit_length=settings.cache_store_length_finish,
                admit_tool_calls=settings.cache_store_tool_calls,
            )
            coalescer = (
                Coalescer()
                if cache is not None and settings.coalesce and settings.cache_mode == "on"
                else None
            )
            state = GatewayState(
                settings=settings,
                pipeline=Pipeline(
                    upstream=batching,
                    cache=cache,
                    policy=policy,
                    coalescer=coalescer,
                    shadow=shadow,
                    recent_hits=recent_hits,
                ),
                cache=cache,
                upstream=upstream,
                batching=batching,
                coalescer=coalescer,
                observer=observer,
                shadow=shadow,
                keys=Keys.load(settings.api_keys_file) if settings.api_keys_file else None,
                threshold=threshold,
                recent_hits=recent_hits,
                labels=labels,
            )
            app.state.gateway = state
            app.state.batches = _batch_service(
                settings,
                upstream=batching,
                provider=ProviderBatches(
                    http=relay_http,
                    base_url=settings.upstream_url,
                    api_key=upstream_key,
                    retry=retry,
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


async def _open_cache(
    settings: Settings, stack: AsyncExitStack
) -> tuple[SemanticCache, ThresholdChoice]:
    """The cache, for the embedding model ``FRUGAL_EMBEDDER_MODEL`` names (its entries carry
    the model's id), and the threshold in force. Raises `ConfigurationError` for a model that
    cannot be resolved, `SettingsError` for an error budget its calibration cannot meet."""
    spec = resolve_model(settings.embedder_model, model_dir=settings.models_path)
    threshold = _threshold(settings, spec)  # before the model loads: a bad budget stops at once
    model = await asyncio.to_thread(load_embedder, backend=settings.embedder_backend, model=spec)
    embedder = AsyncEmbedder(model, max_batch=settings.embedder_max_batch)
    stack.push_async_callback(embedder.aclose)
    store = await _open_store(settings, dimensions=model.dimensions)
    stack.push_async_callback(store.aclose)
    cache = SemanticCache(
        store=store,
        embedder=embedder,
        model=spec,
        threshold=threshold.threshold,
        ttl_s=settings.cache_ttl_s,
    )
    return cache, threshold


def _threshold(settings: Settings, model: ModelSpec) -> ThresholdChoice:
    """The threshold in force for ``model`` (`frugal.calibration.budget`)."""
    choice = choose_threshold(settings, calibration=lambda: calibration_of(model))
    if choice.source == "setting" and choice.budget is not None:
        logger.info(
            "FRUGAL_CACHE_THRESHOLD is set, so FRUGAL_CACHE_MAX_WRONG_HIT_RATE does not choose "
            "the threshold (shadow mode still compares the live rate with it)"
        )
    return choice


def _open_labels(settings: Settings) -> LabelStore:
    """Labelled pairs beside the cache: a file in the data dir, or a list in Redis."""
    if settings.store == "embedded":
        return FileLabels(settings.data_dir / FileLabels.FILENAME)
    assert settings.redis_url is not None  # load_settings insists on it
    return RedisLabels(settings.redis_url.get_secret_value(), prefix=settings.redis_prefix)


async def _open_store(settings: Settings, *, dimensions: int) -> VectorStore:
    """The embedded store, or the Redis store behind a timeout and a circuit breaker."""
    if settings.store == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return await EmbeddedStore.open(
            settings.data_dir / "cache.sqlite3",
            max_entries=settings.cache_max_entries,
            dimensions=dimensions,
        )
    assert settings.redis_url is not None  # load_settings insists on it
    redis_store = await RedisStore.open(
        settings.redis_url.get_secret_value(),
        prefix=settings.redis_prefix,
        index=settings.redis_index,
        max_entries=settings.cache_max_entries,
        dimensions=dimensions,
    )
    breaker = CircuitBreaker(
        failures=settings.store_breaker_failures,
        reset_s=settings.store_breaker_reset_s,
        name="Redis store",
    )
    if not redis_store.reachable:
        breaker.trip("Redis was not reachable at start-up")
    return GuardedStore(redis_store, timeout_s=settings.store_timeout_ms / 1000, breaker=breaker)
