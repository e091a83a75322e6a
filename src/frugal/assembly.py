"""Building the request path from `Settings`: the one place that turns settings into the
upstream client, batching, the cache (embedder, store, threshold), shadow mode, coalescing
and the `Pipeline` over them. The gateway (`frugal.api.app`) and the in-process library
(`frugal.library`) both build theirs here, so the two cannot drift apart.

Everything opened is registered on the caller's `AsyncExitStack`, which closes it.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx

from frugal.batching import BatchingUpstream, BatchSettings, Coalescer, UpstreamWatcher
from frugal.cache import (
    AsyncEmbedder,
    CircuitBreaker,
    EmbeddedStore,
    GuardedStore,
    LoadingStore,
    ModelSpec,
    RedisStore,
    SemanticCache,
    ShadowLog,
    SqliteFile,
    VectorStore,
    load_embedder,
    resolve_model,
)
from frugal.calibration import ThresholdChoice, calibration_of, choose_threshold
from frugal.config import Settings, redis_target
from frugal.fleet import Fleet, open_fleet
from frugal.labels import FileLabels, Labels, LabelStore, RecentHits, RedisLabels
from frugal.pipeline import CachePolicy, Pipeline
from frugal.upstream import OpenAIUpstream, RetryPolicy, provider_transport

logger = logging.getLogger(__name__)


@dataclass
class Core:
    """The parts of the request path, open until the stack that `open_core` was given closes.

    ``cache``, ``threshold`` and ``labels`` are ``None`` with the cache off; ``recent_hits``
    only in cache mode ``on`` (when asked for), ``shadow`` only in shadow mode."""

    settings: Settings
    http: httpx.AsyncClient
    retry: RetryPolicy
    upstream_key: str | None
    upstream: OpenAIUpstream
    batching: BatchingUpstream
    policy: CachePolicy
    pipeline: Pipeline
    cache: SemanticCache | None = None
    threshold: ThresholdChoice | None = None
    labels: Labels | None = None
    recent_hits: RecentHits | None = None
    shadow: ShadowLog | None = None
    coalescer: Coalescer | None = None
    fleet: Fleet | None = None  # with the Redis store: this process in the fleet


def provider_limits(settings: Settings) -> httpx.Limits:
    """A provider pool's limits: ``FRUGAL_UPSTREAM_MAX_CONCURRENCY`` connections."""
    return httpx.Limits(
        max_connections=settings.upstream_max_concurrency,
        max_keepalive_connections=settings.upstream_max_concurrency,
    )


async def open_core(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    watcher: UpstreamWatcher | None = None,
    remember_hits: bool = True,
    load_in_background: bool = False,
) -> Core:
    """Open the request path that ``settings`` describe, its closing pushed on ``stack``.

    ``transport`` replaces the network (unit tests); ``watcher`` is told of upstream calls and
    batches (the gateway's metrics); ``remember_hits`` keeps the hits served so that one can
    be reported wrong (the gateway's feedback routes); ``load_in_background`` returns before
    the embedded store has read its entries (`frugal.cache.loading`: the gateway serves
    misses meanwhile, not ready). Raises `ConfigurationError` for an
    embedding model that cannot be resolved, `SettingsError` for an error budget its
    calibration cannot meet.
    """
    http = httpx.AsyncClient(
        transport=transport or provider_transport(provider_limits(settings)),
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
        http=http, base_url=settings.upstream_url, api_key=upstream_key, retry=retry
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
        watcher=watcher,
    )
    stack.push_async_callback(batching.aclose)
    cache = threshold = labels = recent_hits = shadow = None
    if settings.cache_mode != "off":
        cache, threshold = await open_cache(settings, stack, load_in_background=load_in_background)
        labels = Labels(_open_labels(settings), model=cache.model.id)
        stack.push_async_callback(labels.aclose)
        if settings.cache_mode == "on":
            recent_hits = RecentHits() if remember_hits else None
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
    fleet = None
    if settings.store == "redis":
        fleet = await open_fleet(settings, stack, cache=cache, coalescing=coalescer is not None)
    pipeline = Pipeline(
        upstream=batching,
        cache=cache,
        policy=policy,
        coalescer=coalescer,
        shadow=shadow,
        recent_hits=recent_hits,
        fleet=fleet.leases if fleet is not None else None,
    )
    return Core(
        settings=settings,
        http=http,
        retry=retry,
        upstream_key=upstream_key,
        upstream=upstream,
        batching=batching,
        policy=policy,
        pipeline=pipeline,
        cache=cache,
        threshold=threshold,
        labels=labels,
        recent_hits=recent_hits,
        shadow=shadow,
        coalescer=coalescer,
        fleet=fleet,
    )


async def open_cache(
    settings: Settings, stack: AsyncExitStack, *, load_in_background: bool = False
) -> tuple[SemanticCache, ThresholdChoice]:
    """The cache alone (embedder and store), for the embedding model ``FRUGAL_EMBEDDER_MODEL``
    names (its entries carry the model's id), and the threshold in force; its closing pushed
    on ``stack``. Raises as `open_core` does."""
    spec = resolve_model(settings.embedder_model, model_dir=settings.models_path)
    threshold = _threshold(settings, spec)  # before the model loads: a bad budget stops at once
    model = await asyncio.to_thread(load_embedder, backend=settings.embedder_backend, model=spec)
    embedder = AsyncEmbedder(model, max_batch=settings.embedder_max_batch)
    stack.push_async_callback(embedder.aclose)
    store = await _open_store(
        settings, dimensions=model.dimensions, load_in_background=load_in_background
    )
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
    return RedisLabels(redis_target(settings), prefix=settings.redis_prefix)


async def _open_store(
    settings: Settings, *, dimensions: int, load_in_background: bool
) -> VectorStore:
    """The embedded store (its file checked here, its entries read here or, with
    ``load_in_background``, behind a `LoadingStore`), or the Redis store behind a timeout and a
    circuit breaker."""
    if settings.store == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        file = await SqliteFile.open(settings.data_dir / "cache.sqlite3", dimensions=dimensions)
        loading = EmbeddedStore.load(
            file,
            max_entries=settings.cache_max_entries,
            max_bytes=settings.cache_max_bytes,
            index_checkpoint_s=settings.cache_index_checkpoint_s,
        )
        return LoadingStore(loading) if load_in_background else await loading
    redis_store = await RedisStore.open(
        redis_target(settings),
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
