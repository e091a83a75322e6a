"""``GET /v1/models`` and ``GET /v1/models/{model}``: the provider's answer, kept a while.

Asked of the provider with the upstream key and nothing of the client's (one answer serves
every client, so nothing a client sends may shape it), and kept in memory for
``FRUGAL_MODELS_CACHE_S`` seconds by path and query string (the list and each model apart);
only a 200 is kept. A kept answer carries ``age`` (seconds since it was fetched). Errors are
those of every route: the client-key check (401), a provider's 4xx with its own status and
body, a 429 with its ``Retry-After``, a 5xx (after retries) as 502, no answer as 502 or 504.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from frugal.api.errors import status_of
from frugal.api.observe import record_relayed, route_label
from frugal.api.openapi import errors
from frugal.api.relay import relay_of, wire_path
from frugal.api.routes import CACHE_HEADER, tenant_of
from frugal.api.state import gateway
from frugal.outcome import Outcome
from frugal.tenants import OPEN_TENANT

logger = logging.getLogger(__name__)

# Bounds the memory a provider that answers 200 for any model id can make the cache take.
MAX_ENTRIES = 1024

router = APIRouter()

_RESPONSES = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}},
    **errors(400, 401, 429, 502, 504, provider=True),
}


@dataclass(frozen=True)
class KeptAnswer:
    body: bytes
    content_type: str
    fetched_at: float  # on the cache's clock


class ModelsCache:
    """Answers by key for ``ttl_s`` seconds of ``clock`` (monotonic; tests pass their own),
    at most ``max_entries`` of them, the oldest forgotten first. ``ttl_s`` 0 keeps nothing."""

    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._answers: OrderedDict[str, KeptAnswer] = OrderedDict()

    def get(self, key: str) -> tuple[KeptAnswer, float] | None:
        """The answer kept for ``key`` and its age in seconds, while younger than ``ttl_s``."""
        kept = self._answers.get(key)
        if kept is None:
            return None
        age_s = self._clock() - kept.fetched_at
        if age_s >= self.ttl_s:
            del self._answers[key]
            return None
        return kept, age_s

    def put(self, key: str, *, body: bytes, content_type: str) -> None:
        if self.ttl_s <= 0:
            return
        self._answers.pop(key, None)
        self._answers[key] = KeptAnswer(body, content_type, self._clock())
        while len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)


def models_cache_of(request: Request) -> ModelsCache:
    """The app's `ModelsCache`, built in its lifespan."""
    cache: ModelsCache = request.app.state.models_cache
    return cache


@router.get("/v1/models", responses=_RESPONSES)
async def list_models(request: Request) -> Response:
    """The provider's models (``{"object": "list", "data": [...]}``)."""
    return await _models(request)


@router.get("/v1/models/{model_id:path}", responses=_RESPONSES)
async def retrieve_model(request: Request, model_id: str) -> Response:
    """One of the provider's models, or the provider's own 404 for a model it does not have."""
    del model_id  # the path goes on as the client encoded it (`wire_path`)
    return await _models(request)


async def _models(request: Request) -> Response:
    state = gateway(request)
    started = time.perf_counter()
    path = wire_path(request)
    query = request.scope.get("query_string", b"")
    key = path + ("?" + query.decode("latin-1") if query else "")
    calls = 0
    age_s: float | None = None  # set when the answer is a kept one

    def report(status: int, *, failed: bool) -> None:
        scope_state = request.scope["state"]
        record_relayed(
            state,
            request_id=str(scope_state["request_id"]),
            tenant=str(scope_state.get("tenant", OPEN_TENANT)),
            route=route_label(path),
            status=status,
            started=started,
            upstream_calls=calls,
            failed=failed,
        )

    try:
        tenant_of(request, state)
        cache = models_cache_of(request)
        found = cache.get(key)
        if found is None:
            relayed = await relay_of(request).send(
                "GET",
                path,
                query=query,
                headers=[("accept", "application/json")],
                request_id=str(request.scope["state"]["request_id"]),
            )
            calls = relayed.tries
            try:
                body = await relayed.aread()
            finally:
                await relayed.aclose()
            if relayed.status_code != 200:
                raise relayed.status_error(body)
            content_type = relayed.response.headers.get("content-type", "application/json")
            cache.put(key, body=body, content_type=content_type)
        else:
            kept, age_s = found
            body, content_type = kept.body, kept.content_type
    except Exception as exc:
        report(status_of(exc), failed=True)
        raise
    report(200, failed=False)
    headers = {CACHE_HEADER: Outcome.BYPASS.header}
    if age_s is not None:
        headers["age"] = str(math.floor(age_s))
    return Response(body, media_type=content_type, headers=headers)
