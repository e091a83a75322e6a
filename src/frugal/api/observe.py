"""Turning a finished HTTP request into a `RequestRecord` for the observer."""

from __future__ import annotations

import time
from typing import Any

from frugal.api.state import GatewayState
from frugal.cache.embedder import AsyncEmbedder
from frugal.cache.store import CacheStoreError
from frugal.endpoints import Endpoint
from frugal.observability.record import RequestRecord
from frugal.pipeline import Answer, CacheOutcome, RequestContext, StreamedAnswer


def outcome_of(answer: Answer | StreamedAnswer) -> str:
    if answer.cache is CacheOutcome.HIT:
        return "hit_exact" if answer.hit is not None and answer.hit.exact else "hit_semantic"
    return answer.cache.value


def record_answer(
    state: GatewayState,
    ctx: RequestContext,
    endpoint: Endpoint,
    body: dict[str, Any],
    answer: Answer | StreamedAnswer,
    *,
    started: float,
    response: dict[str, Any] | None,
) -> None:
    """Report an answered request; ``response`` is the answer's body, when there is one whole
    (a replayed or non-streamed answer), for its token counts."""
    observer = state.observer
    model = observer.model_label(body.get("model"))
    outcome = outcome_of(answer)
    usage = (response or {}).get("usage")
    prompt_tokens, completion_tokens, cost = observer.cost(model, usage)
    hit = answer.hit
    observer.request(
        RequestRecord(
            request_id=ctx.request_id,
            tenant=ctx.tenant,
            endpoint=endpoint.value,
            model=model,
            outcome=outcome,
            status=200,
            latency_s=time.perf_counter() - started,
            similarity=answer.similarity,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            upstream_calls=1 if outcome in ("miss", "bypass") else 0,
            prompt=answer.question,
            cached_prompt=hit.prompt if hit is not None else None,
            entry_id=hit.entry_id if hit is not None else None,
            streamed=isinstance(answer, StreamedAnswer),
        )
    )


def record_error(
    state: GatewayState,
    *,
    request_id: str,
    tenant: str,
    endpoint: Endpoint,
    body: dict[str, Any] | None,
    status: int,
    started: float,
) -> None:
    state.observer.request(
        RequestRecord(
            request_id=request_id,
            tenant=tenant,
            endpoint=endpoint.value,
            model=state.observer.model_label((body or {}).get("model")),
            outcome="error",
            status=status,
            latency_s=time.perf_counter() - started,
        )
    )


async def refresh_metrics(state: GatewayState) -> None:
    """Copy what other parts count into the metrics' snapshot, just before a scrape."""
    snapshot = state.observer.metrics.collector.snapshot
    snapshot.upstream_retries = state.upstream.retries
    cache = state.cache
    if cache is None:
        return
    try:
        held = await cache.store.stats()
    except CacheStoreError:
        pass  # the last known counts stay
    else:
        snapshot.entries = held.entries
        snapshot.evictions = held.evictions
        snapshot.expirations = held.expirations
        snapshot.write_failures = held.write_failures
        snapshot.unsaved = held.unsaved
    snapshot.store_errors = cache.counters.errors
    breaker = state.breaker
    snapshot.breaker = breaker.state.value if breaker is not None else None
    embedder = cache.embedder
    if isinstance(embedder, AsyncEmbedder):
        snapshot.embedder_calls = embedder.calls
        snapshot.embedder_texts = embedder.texts
        snapshot.embedder_seconds = embedder.seconds
        snapshot.embedder_batch_sizes = embedder.batch_sizes.copy()
