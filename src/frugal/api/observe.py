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
    (a replayed or non-streamed answer), for its token counts: a list answered item by item
    reports the tokens of its cached items instead (its answer's usage counts only what was
    sent), which is what it saved."""
    observer = state.observer
    model = observer.model_label(body.get("model"))
    outcome = answer.outcome
    items = answer.items if isinstance(answer, Answer) else None
    usage = (response or {}).get("usage")
    if items is not None:
        usage = {
            "prompt_tokens": items.saved_prompt_tokens,
            "completion_tokens": items.saved_completion_tokens,
        }
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
            items_hit=items.hits if items is not None else 0,
            items_missed=items.misses if items is not None else 0,
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


# OpenAI's resources below /v1 (its API reference): a relayed request is labelled by one of
# these, the first segment of its path, so that ids and made-up paths add no label values.
RELAYED_ROUTES = frozenset(
    {
        "assistants",
        "audio",
        "batches",
        "chat",
        "completions",
        "containers",
        "conversations",
        "embeddings",
        "evals",
        "files",
        "fine_tuning",
        "images",
        "models",
        "moderations",
        "organization",
        "realtime",
        "responses",
        "threads",
        "uploads",
        "vector_stores",
        "videos",
    }
)
OTHER_ROUTE = "/other"


def route_label(path: str) -> str:
    """The metrics' and logs' ``endpoint`` for a relayed ``path`` below the API base:
    ``/files/file-abc/content`` → ``/files``; a resource OpenAI does not have → ``/other``."""
    first = path.lstrip("/").split("/", 1)[0]
    return f"/{first}" if first in RELAYED_ROUTES else OTHER_ROUTE


def record_relayed(
    state: GatewayState,
    *,
    request_id: str,
    tenant: str,
    route: str,
    status: int,
    started: float,
    upstream_calls: int,
    failed: bool = False,
) -> None:
    """Report a relayed request (the cache not read): outcome ``bypass`` when the provider
    answered, whatever its status (it is relayed as sent); ``error`` when no answer was
    relayed whole (``failed``: refused by frugal, the provider unreachable, the body cut)."""
    state.observer.request(
        RequestRecord(
            request_id=request_id,
            tenant=tenant,
            endpoint=route,
            model=state.observer.model_label(None),
            outcome=Outcome.ERROR if failed else Outcome.BYPASS,
            status=status,
            latency_s=time.perf_counter() - started,
            upstream_calls=upstream_calls,
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
