"""Admin routes (`/admin/*`), guarded by ``Authorization: Bearer $FRUGAL_ADMIN_KEY``.

Without an admin key configured the routes do not exist (404); with a wrong or missing key they
answer 401. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from frugal.api.body import read_body
from frugal.api.openapi import ADMIN_ERRORS, json_body
from frugal.api.state import GatewayState, gateway
from frugal.cache.embedder import AsyncEmbedder
from frugal.cache.semantic import SemanticCache
from frugal.cache.store import CacheStoreError, Entry, StoreStats
from frugal.errors import AuthenticationError, InvalidRequestError, NotFoundError

router = APIRouter(prefix="/admin", responses=ADMIN_ERRORS)


_SELECTORS = ("ids", "tenant", "scope", "prompt")


def _selector_schema(schema: dict[str, Any]) -> None:
    """Publish the rule the validator enforces: one selector (``prompt`` may add ``tenant``),
    and a selector that is given is never null."""
    for name in _SELECTORS:
        field = schema["properties"][name]
        field.update(next(kind for kind in field.pop("anyOf") if kind.get("type") != "null"))
        field.pop("default", None)

    def alone(name: str, *excluded: str) -> dict[str, Any]:
        return {"required": [name], "not": {"anyOf": [{"required": [x]} for x in excluded]}}

    schema["anyOf"] = [
        alone("ids", "tenant", "scope", "prompt"),
        alone("scope", "ids", "tenant", "prompt"),
        alone("tenant", "ids", "scope"),
        alone("prompt", "ids", "scope"),
    ]


class InvalidateRequest(BaseModel):
    """Exactly one way to choose: ``ids``, ``tenant``, ``scope``, or ``prompt`` (+``threshold``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_selector_schema)
    ids: list[StrictStr] | None = None
    tenant: StrictStr | None = None
    scope: StrictStr | None = None
    prompt: StrictStr | None = None
    threshold: Annotated[float, Field(strict=True, ge=-1.0, le=1.0)] = 0.9

    @model_validator(mode="after")
    def _one_selector(self) -> InvalidateRequest:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{nulls[0]} must not be null")
        chosen = [name for name in ("ids", "scope", "prompt") if getattr(self, name) is not None]
        if len(chosen) > 1 or (not chosen and self.tenant is None):
            raise ValueError(
                "give exactly one of ids, tenant, scope or prompt (prompt may add tenant)"
            )
        if chosen and chosen[0] != "prompt" and self.tenant is not None:
            raise ValueError("tenant combines only with prompt")
        return self


def admin(request: Request) -> GatewayState:
    """The gateway's state, once the caller has proved to be the admin."""
    state = gateway(request)
    if state.settings.admin_key is None:
        raise NotFoundError("Unknown route.")
    if not bearer_is_admin(request, state):
        raise AuthenticationError("A valid admin key is required.")
    return state


def bearer_is_admin(request: Request, state: GatewayState) -> bool:
    """Whether the request carries ``Authorization: Bearer <admin key>`` (constant time)."""
    expected = state.settings.admin_key
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return (
        expected is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), expected.get_secret_value().encode())
    )


def _cache(state: GatewayState) -> SemanticCache:
    if state.cache is None:
        raise NotFoundError("The cache is off (FRUGAL_CACHE_MODE=off).")
    return state.cache


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    return await gateway_stats(admin(request))


async def gateway_stats(state: GatewayState) -> dict[str, Any]:
    """Everything `/admin/stats` (and the dashboard) shows."""
    summary: dict[str, Any] = {
        "cache": {"mode": state.settings.cache_mode},
        "upstream": {"calls": state.batching.calls, "retries": state.upstream.retries},
        "batching": _batching(state),
        "store": _store(state),
        "summary": state.observer.summary.report(),
    }
    if state.cache is not None:
        counters = state.cache.counters
        try:
            held: StoreStats | None = await state.cache.store.stats()
        except CacheStoreError:  # the rest of the summary is still worth having
            held = None
        hits = counters.hits_exact + counters.hits_semantic
        looked_up = hits + counters.misses
        summary["cache"].update(
            entries=held.entries if held else None,
            evictions=held.evictions if held else None,
            expirations=held.expirations if held else None,
            write_failures=held.write_failures if held else None,
            unsaved=held.unsaved if held else None,
            hits_exact=counters.hits_exact,
            hits_semantic=counters.hits_semantic,
            misses=counters.misses,
            stored=counters.stored,
            errors=counters.errors,
            hit_rate=hits / looked_up if looked_up else 0.0,
            threshold=state.cache.threshold,
        )
        if isinstance(state.cache.embedder, AsyncEmbedder):
            summary["embedder"] = _embedder(state.cache.embedder)
    return summary


def _store(state: GatewayState) -> dict[str, Any]:
    summary: dict[str, Any] = {"kind": state.settings.store, "health": state.cache_health}
    if (breaker := state.breaker) is not None:
        summary.update(breaker=breaker.state.value, opened=breaker.opened, closed=breaker.closed)
    return summary


def _embedder(embedder: AsyncEmbedder) -> dict[str, Any]:
    return {
        "calls": embedder.calls,
        "texts": embedder.texts,
        "mean_batch": embedder.texts / embedder.calls if embedder.calls else 0.0,
        "model_seconds": round(embedder.seconds, 3),
        "batch_sizes": {str(size): count for size, count in sorted(embedder.batch_sizes.items())},
    }


@router.get("/shadow/report")
async def shadow_report(request: Request) -> dict[str, Any]:
    """What the cache would have done, by threshold (``FRUGAL_CACHE_MODE=shadow`` only)."""
    state = admin(request)
    if state.shadow is None:
        raise NotFoundError("Shadow mode is off (FRUGAL_CACHE_MODE=shadow turns it on).")
    await state.shadow.settle()
    return {"threshold": state.cache.threshold if state.cache else None} | state.shadow.report()


@router.get("/cache/entries")
async def entries(
    request: Request,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    tenant: str | None = None,
) -> dict[str, Any]:
    cache = _cache(admin(request))
    found = await cache.store.list_entries(
        offset=offset, limit=limit, partition=tenant, now=time.time()
    )
    return {"data": [_describe(entry) for entry in found], "offset": offset, "limit": limit}


@router.post("/cache/invalidate", openapi_extra=json_body(InvalidateRequest))
async def invalidate(request: Request) -> dict[str, int]:
    state = admin(request)
    cache = _cache(state)
    body, _ = await read_body(
        request,
        InvalidateRequest,
        max_bytes=state.settings.max_body_bytes,
        timeout_s=state.settings.client_body_timeout_s,
    )
    if body.ids is not None:
        removed = await cache.store.delete(body.ids)
    elif body.scope is not None:
        removed = await cache.store.delete_where(scope=body.scope)
    elif body.prompt is not None:
        vector = await cache.embed(body.prompt)
        if vector is None:
            raise InvalidRequestError("The prompt could not be embedded.", param="prompt")
        removed = await cache.store.delete_similar(
            vector=vector, min_similarity=body.threshold, partition=body.tenant
        )
    else:
        removed = await cache.store.delete_where(partition=body.tenant)
    return {"invalidated": removed}


@router.delete("/cache")
async def flush(request: Request) -> dict[str, int]:
    cache = _cache(admin(request))
    return {"flushed": await cache.store.flush()}


def _batching(state: GatewayState) -> dict[str, Any]:
    stats = state.batching.stats
    return {
        "batches": stats.batches,
        "requests": stats.items,
        "items": stats.units,
        "mean_batch_items": stats.units / stats.batches if stats.batches else 0.0,
        "mean_queue_wait_ms": 1000 * _mean(stats.queue_wait_s),
        "dropped_cancelled": stats.dropped_cancelled,
        "expired": stats.expired,
        "rejected_full": stats.rejected_full,
        "coalesced": state.coalescer.coalesced if state.coalescer is not None else 0,
        "batch_sizes": {str(size): stats.sizes[size] for size in sorted(stats.sizes)},
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _describe(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "prompt": entry.prompt,
        "partition": entry.partition,
        "scope": entry.scope,
        "labels": entry.labels,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "hits": entry.hits,
    }
