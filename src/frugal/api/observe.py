"""Turning a finished HTTP request into a `RequestRecord` for the observer."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from frugal.api.state import GatewayState
from frugal.observability.record import RequestRecord
from frugal.outcome import Outcome
from frugal.pipeline import Answer, RequestContext, StreamedAnswer
from frugal.provider import Endpoint


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
    outcome = answer.outcome
    usage = (response or {}).get("usage")
    prompt_tokens, completion_tokens, cost = observer.cost(model, usage)
    hit = answer.hit
    observer.request(
        RequestRecord(
            request_id=ctx.request_id,
            tenant=ctx.tenant,
            endpoint=endpoint,
            model=model,
            outcome=outcome,
            status=200,
            latency_s=time.perf_counter() - started,
            similarity=answer.similarity,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            upstream_calls=1 if outcome.called_upstream else 0,
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
            endpoint=endpoint,
            model=state.observer.model_label((body or {}).get("model")),
            outcome=Outcome.ERROR,
            status=status,
            latency_s=time.perf_counter() - started,
        )
    )


async def refresh_metrics(state: GatewayState) -> None:
    """Copy what other parts count into the metrics' snapshot, just before a scrape."""
    snapshot = state.observer.metrics.collector.snapshot
    snapshot.upstream_retries = state.upstream.retries
    if state.cache is None:
        return
    held = await state.cache.stats()
    if (store := held.store) is not None:  # else the last known counts stay
        snapshot.entries = store.entries
        snapshot.evictions = store.evictions
        snapshot.expirations = store.expirations
        snapshot.write_failures = store.write_failures
        snapshot.unsaved = store.unsaved
    snapshot.store_errors = held.counters.errors
    snapshot.breaker = held.breaker.state.value if held.breaker is not None else None
    if (embedder := held.embedder) is not None:
        snapshot.embedder_calls = embedder.calls
        snapshot.embedder_texts = embedder.texts
        snapshot.embedder_seconds = embedder.seconds
        snapshot.embedder_batch_sizes = Counter(embedder.batch_sizes)
