"""Admin routes (`/admin/*`), guarded by ``Authorization: Bearer $FRUGAL_ADMIN_KEY``.

Without an admin key configured the routes do not exist (404); with a wrong or missing key they
answer 401. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, fields
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from frugal.api.body import read_body
from frugal.api.fleet_view import fleet_section, fleet_stats
from frugal.api.openapi import ADMIN_ERRORS, json_body
from frugal.api.state import GatewayState, gateway
from frugal.cache import Entry, SemanticCache, StoreStats
from frugal.config import DEFAULT_THRESHOLD
from frugal.errors import AuthenticationError, InvalidRequestError, NotFoundError

router = APIRouter(prefix="/admin", responses=ADMIN_ERRORS)


_SELECTORS = ("ids", "tenant", "namespace", "scope", "prompt")
_PARTITIONS = ("tenant", "namespace")  # whose entries; alone, or narrowing a prompt


def _selector_schema(schema: dict[str, Any]) -> None:
    """Publish the rule the validator enforces: one selector (``prompt`` may add ``tenant`` or
    ``namespace``), and a selector that is given is never null."""
    for name in _SELECTORS:
        field = schema["properties"][name]
        field.update(next(kind for kind in field.pop("anyOf") if kind.get("type") != "null"))
        field.pop("default", None)

    def alone(name: str, *allowed: str) -> dict[str, Any]:
        """``name`` is given, and no other selector but ``allowed`` (at most one of them)."""
        refused = [{"required": [x]} for x in _SELECTORS if x != name and x not in allowed]
        if allowed:
            refused.append({"required": list(allowed)})
        return {"required": [name], "not": {"anyOf": refused}}

    schema["anyOf"] = [
        alone("ids"),
        alone("scope"),
        alone("tenant"),
        alone("namespace"),
        alone("prompt", *_PARTITIONS),
    ]


class InvalidateRequest(BaseModel):
    """Exactly one way to choose: ``ids``, ``tenant``, ``namespace``, ``scope``, or ``prompt``
    (with ``threshold``, and optionally ``tenant`` or ``namespace``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_selector_schema)
    ids: list[StrictStr] | None = None
    tenant: StrictStr | None = None
    namespace: StrictStr | None = None
    scope: StrictStr | None = None
    prompt: StrictStr | None = None
    threshold: Annotated[float, Field(strict=True, ge=-1.0, le=1.0)] = DEFAULT_THRESHOLD

    @model_validator(mode="after")
    def _one_selector(self) -> InvalidateRequest:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{nulls[0]} must not be null")
        chosen = [name for name in _SELECTORS if getattr(self, name) is not None]
        partitions = [name for name in chosen if name in _PARTITIONS]
        others = [name for name in chosen if name not in _PARTITIONS]
        if len(others) > 1 or len(partitions) > 1 or not chosen:
            raise ValueError(
                "give exactly one of ids, tenant, namespace, scope or prompt "
                "(prompt may add tenant or namespace)"
            )
        if others and partitions and others[0] != "prompt":
            raise ValueError(f"{partitions[0]} combines only with prompt")
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


def _partition(state: GatewayState, *, tenant: str | None, namespace: str | None) -> str | None:
    """The cache partition a selector names: a namespace as it is, a tenant's own partition
    (its namespace, when configuration put it in one), or ``None`` for every partition."""
    if namespace is not None:
        return namespace
    if tenant is None:
        return None
    return state.keys.namespace_of(tenant) if state.keys is not None else tenant


StatsView = Literal["process", "fleet"]


@router.get("/stats")
async def stats(
    request: Request, view: Annotated[StatsView, Query()] = "process"
) -> dict[str, Any]:
    """The gateway's counters, and the Batch API's (``batches``); ``view=fleet``: every live
    replica on the Redis store, summed and listed (404 without the Redis store)."""
    state = admin(request)
    if view == "fleet":
        return await fleet_stats(state)
    return await all_stats(request, state)


async def all_stats(request: Request, state: GatewayState) -> dict[str, Any]:
    """What `/admin/stats` answers (and the dashboard draws): `gateway_stats`, and the Batch
    API's counters under ``batches`` where the app runs one. The caller checks the admin."""
    summary = await gateway_stats(state)
    batches = getattr(request.app.state, "batches", None)
    return {**summary, "batches": batches.stats()} if batches is not None else summary


async def gateway_stats(state: GatewayState) -> dict[str, Any]:
    """Everything `/admin/stats` (and the dashboard) shows, under the names the parts use."""
    summary: dict[str, Any] = {
        "cache": {"mode": state.settings.cache_mode},
        "upstream": {"calls": state.batching.calls, "retries": state.upstream.retries},
        "batching": _batching(state),
        "store": {"kind": state.settings.store, "health": "off"},
        "summary": state.observer.summary.report(),
    }
    if state.fleet is not None:
        summary["fleet"] = fleet_section(state.fleet)
    if state.cache is None:
        return summary
    held = await state.cache.stats()
    counters = held.counters
    summary["cache"].update(
        **asdict(held.store) if held.store is not None else dict.fromkeys(_STORE_COUNTS),
        **asdict(counters),
        hit_rate=counters.hit_rate,
        model=held.model,
        threshold=held.threshold,
        threshold_source=state.threshold.source if state.threshold is not None else None,
    )
    summary["store"]["health"] = held.health
    if held.breaker is not None:
        summary["store"].update(
            breaker=held.breaker.state.value, opened=held.breaker.opened, closed=held.breaker.closed
        )
    if (embedder := held.embedder) is not None:
        summary["embedder"] = {
            **asdict(embedder),
            "seconds": round(embedder.seconds, 3),
            "mean_batch": embedder.texts / embedder.calls if embedder.calls else 0.0,
            "batch_sizes": {str(size): n for size, n in sorted(embedder.batch_sizes.items())},
        }
    return summary


_STORE_COUNTS = [field.name for field in fields(StoreStats)]


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
    namespace: str | None = None,
) -> dict[str, Any]:
    """Live entries, newest first; ``tenant`` lists what that tenant can be answered from
    (its namespace's entries, when it shares one)."""
    state = admin(request)
    partition = _partition(state, tenant=tenant, namespace=namespace)
    found = await _cache(state).entries(offset=offset, limit=limit, partition=partition)
    return {"data": [_describe(entry) for entry in found], "offset": offset, "limit": limit}


@router.post("/cache/invalidate", openapi_extra=json_body(InvalidateRequest))
async def invalidate(request: Request) -> dict[str, int]:
    """Remove entries. A tenant that shares its namespace with other tenants cannot be
    invalidated alone (its answers are theirs too): that is a 400 naming the namespace,
    which is then the selector to use."""
    state = admin(request)
    cache = _cache(state)
    body, _ = await read_body(
        request,
        InvalidateRequest,
        max_bytes=state.settings.max_body_bytes,
        timeout_s=state.settings.client_body_timeout_s,
    )
    partition = _partition(state, tenant=body.tenant, namespace=body.namespace)
    if body.prompt is not None:
        removed = await cache.invalidate_similar(
            body.prompt, min_similarity=body.threshold, partition=partition
        )
    elif body.tenant is not None:
        assert partition is not None
        _refuse_shared(state, body.tenant, partition)
        removed = await cache.invalidate(partition=partition)
    else:
        removed = await cache.invalidate(ids=body.ids, partition=partition, scope=body.scope)
    return {"invalidated": removed}


def _refuse_shared(state: GatewayState, tenant: str, partition: str) -> None:
    others = sorted(state.keys.tenants_in(partition) - {tenant}) if state.keys else []
    if others:
        raise InvalidRequestError(
            f"Tenant {tenant!r} shares the namespace {partition!r} with {', '.join(others)}: "
            f"its cached answers are theirs too. To remove them for every tenant of it, "
            f'invalidate {{"namespace": "{partition}"}}.',
            param="tenant",
        )


@router.delete("/cache")
async def flush(request: Request) -> dict[str, int]:
    return {"flushed": await _cache(admin(request)).flush()}


def _batching(state: GatewayState) -> dict[str, Any]:
    stats = state.batching.stats
    return {
        "batches": stats.batches,
        "items": stats.items,
        "units": stats.units,
        "mean_batch_units": stats.units / stats.batches if stats.batches else 0.0,
        "mean_queue_wait_ms": 1000 * _mean(stats.queue_wait_s),
        "dropped_cancelled": stats.dropped_cancelled,
        "expired": stats.expired,
        "rejected_full": stats.rejected_full,
        "coalesced": state.coalescer.coalesced if state.coalescer is not None else 0,
        "batch_sizes": {str(size): n for size, n in sorted(stats.batch_sizes.items())},
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _describe(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "prompt": entry.prompt,
        "partition": entry.partition,
        "scope": entry.scope,
        "model": entry.model,
        "labels": entry.labels,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "hits": entry.hits,
    }
