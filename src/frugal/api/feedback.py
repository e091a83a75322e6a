"""Reporting a wrong cache hit, and the labelled pairs operation collects.

- ``POST /admin/cache/feedback`` ``{"request_id"}``, with the admin key: any hit this gateway
  served recently (`frugal.labels.RecentHits`);
- ``POST /v1/feedback`` ``{"request_id"}``, with a client key: only a hit served to the
  caller's own partition. Any other id, unknown or another partition's, gets the same 404, so
  a report tells nobody about an entry it does not own.

A report invalidates the entry that answered at once, and records the pair (the request's
prompt, the cached prompt) as a negative (`frugal.labels.record`). Each hit can be reported
once; a report that fails (the store is down: 503) can be sent again.

- ``GET /admin/cache/labels``: every labelled pair kept (reports and shadow mode's
  comparisons), oldest first, as JSON lines in the public pairs format, which
  ``frugal model tune --pairs`` reads (``frugal cache labels export`` saves it to a file).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from frugal.api.admin import admin
from frugal.api.body import read_body
from frugal.api.openapi import ADMIN_ERRORS, errors, json_body
from frugal.api.routes import tenant_of
from frugal.api.state import GatewayState, gateway
from frugal.errors import NotFoundError
from frugal.labels import Labels

router = APIRouter()

JSONL = "application/x-ndjson"
_UNKNOWN = "No cache hit was served recently under this request id (a hit is reported once)."
_LINES_PER_CHUNK = 200


class FeedbackRequest(BaseModel):
    """The ``x-request-id`` of the response that was a wrong cache hit."""

    model_config = ConfigDict(extra="forbid")
    request_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]


class FeedbackResult(BaseModel):
    request_id: str
    invalidated: int  # entries removed: 0 when another report or an expiry came first


@router.post(
    "/admin/cache/feedback",
    openapi_extra=json_body(FeedbackRequest),
    response_model=FeedbackResult,
    responses=ADMIN_ERRORS,
)
async def admin_feedback(request: Request) -> dict[str, Any]:
    """Report a hit served by this gateway as wrong, whatever its partition."""
    state = admin(request)
    return await _report(request, state, partition=None)


@router.post(
    "/v1/feedback",
    openapi_extra=json_body(FeedbackRequest),
    response_model=FeedbackResult,
    responses=errors(400, 401, 404, 408, 413, 503),
)
async def client_feedback(request: Request) -> dict[str, Any]:
    """Report a hit served to the caller's own partition as wrong."""
    state = gateway(request)
    tenant = tenant_of(request, state)
    return await _report(request, state, partition=tenant.namespace)


@router.get(
    "/admin/cache/labels",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One labelled pair a line: a, b, label, and where it came from",
            "content": {JSONL: {"schema": {"type": "string"}}},
        },
        **ADMIN_ERRORS,
    },
)
async def labels(request: Request) -> StreamingResponse:
    """Every labelled pair kept, oldest first, as JSON lines."""
    rows = _labels(admin(request)).rows()
    # The first row is read before answering, so that a store that cannot be read is a 503,
    # not a 200 cut short.
    first = await anext(rows, None)
    return StreamingResponse(_lines(first, rows), media_type=JSONL)


async def _report(
    request: Request, state: GatewayState, *, partition: str | None
) -> dict[str, Any]:
    labels = _labels(state)
    assert state.cache is not None  # labels are kept only with a cache
    body, _ = await read_body(
        request,
        FeedbackRequest,
        max_bytes=state.settings.max_body_bytes,
        timeout_s=state.settings.client_body_timeout_s,
    )
    recent = state.recent_hits
    served = recent.take(body.request_id, partition=partition) if recent is not None else None
    if served is None:
        raise NotFoundError(_UNKNOWN, param="request_id")
    try:
        invalidated = await state.cache.invalidate(ids=[served.entry_id])
        await labels.reported(served)
    except BaseException:
        assert recent is not None
        recent.put(served)  # not reported after all: it can be sent again
        raise
    return {"request_id": body.request_id, "invalidated": invalidated}


def _labels(state: GatewayState) -> Labels:
    if state.labels is None:
        raise NotFoundError("The cache is off (FRUGAL_CACHE_MODE=off).")
    return state.labels


async def _lines(
    first: dict[str, Any] | None, rows: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[bytes]:
    if first is None:
        return
    chunk = [json.dumps(first, ensure_ascii=False)]
    async for row in rows:
        chunk.append(json.dumps(row, ensure_ascii=False))
        if len(chunk) >= _LINES_PER_CHUNK:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()
