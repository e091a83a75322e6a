"""One request to a cached route, answered by the pipeline in-process, as the gateway's route
would answer it over HTTP: the same validation, the same ``x-frugal-cache-control`` header,
the same ``x-frugal-cache`` / ``x-frugal-similarity`` / ``x-frugal-cache-items`` /
``x-request-id`` response headers, the same OpenAI-shaped errors and the same Server-Sent
Events for a stream (an upstream failure mid-stream ends it with an error event).

Errors frugal answers carry ``x-should-retry: false``: the pipeline's upstream has already
retried as ``FRUGAL_UPSTREAM_MAX_RETRIES`` says, and the SDK must not retry on top of it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from frugal.api.cache_control import HEADER as CONTROL_HEADER
from frugal.api.cache_control import parse_cache_control
from frugal.api.errors import error_json, invalid_request_from, status_of
from frugal.api.request_id import HEADER as REQUEST_ID_HEADER
from frugal.api.request_id import new_request_id
from frugal.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
)
from frugal.errors import FrugalError, InvalidRequestError, PayloadTooLargeError, UpstreamError
from frugal.outcome import Outcome
from frugal.pipeline import Pipeline, RequestContext, StreamedAnswer
from frugal.provider import Endpoint

logger = logging.getLogger(__name__)

CACHE_HEADER = "x-frugal-cache"
SIMILARITY_HEADER = "x-frugal-similarity"
ITEMS_HEADER = "x-frugal-cache-items"

_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # as the gateway accepts a client's id

SCHEMAS: dict[Endpoint, type[BaseModel]] = {
    Endpoint.CHAT: ChatCompletionRequest,
    Endpoint.COMPLETIONS: CompletionRequest,
    Endpoint.EMBEDDINGS: EmbeddingRequest,
    Endpoint.RESPONSES: ResponsesRequest,
}


@dataclass
class Served:
    """A response: ``content`` for a whole body, ``events`` for a stream (then ``content``
    is empty); iterate ``events`` to the end or `aclose` it."""

    status: int
    headers: dict[str, str]
    content: bytes = b""
    events: AsyncIterator[bytes] | None = field(default=None, repr=False)


async def serve(
    pipeline: Pipeline,
    endpoint: Endpoint,
    raw: bytes,
    headers: dict[str, str],
    *,
    tenant: str,
    max_body_bytes: int,
) -> Served:
    """Answer one request body for ``endpoint`` (``headers`` with lower-case names); a
    failure is an OpenAI-shaped error response, never an exception."""
    sent = headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if _SANE_ID.match(sent) else new_request_id()
    try:
        body, stream = _read(endpoint, raw, max_body_bytes=max_body_bytes)
        ctx = RequestContext(
            request_id=request_id,
            tenant=tenant,
            namespace=tenant,
            control=parse_cache_control(headers.get(CONTROL_HEADER)),
        )
        if stream:
            streamed = await pipeline.answer_stream(endpoint, body, ctx)
            out = _cache_headers(streamed.outcome, streamed.similarity, request_id)
            out |= {"content-type": "text/event-stream", "cache-control": "no-cache"}
            return Served(200, out, events=_relay(streamed, request_id))
        answer = await pipeline.answer(endpoint, body, ctx)
    except FrugalError as exc:
        return _error(exc, request_id)
    out = _cache_headers(answer.outcome, answer.similarity, request_id)
    if answer.items is not None:
        out[ITEMS_HEADER] = answer.items.header
    out["content-type"] = "application/json"
    return Served(200, out, content=json.dumps(answer.body).encode())


def _read(endpoint: Endpoint, raw: bytes, *, max_body_bytes: int) -> tuple[dict[str, Any], bool]:
    """The body as the client sent it, checked against the route's schema, and whether it
    asks for a stream."""
    if len(raw) > max_body_bytes:
        raise PayloadTooLargeError(f"Request body is larger than {max_body_bytes} bytes.")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    try:
        parsed = SCHEMAS[endpoint].model_validate(data)
    except ValidationError as exc:
        raise invalid_request_from(exc) from None
    return data, bool(getattr(parsed, "stream", False))


def _cache_headers(outcome: Outcome, similarity: float | None, request_id: str) -> dict[str, str]:
    headers = {CACHE_HEADER: outcome.header, REQUEST_ID_HEADER: request_id}
    if similarity is not None:
        headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
    return headers


def _error(exc: FrugalError, request_id: str) -> Served:
    status = status_of(exc)
    headers = {
        "content-type": "application/json",
        REQUEST_ID_HEADER: request_id,
        "x-should-retry": "false",
    }
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None and status == 429:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    if status >= 500:
        logger.warning("request %s failed: %s", request_id, exc.message)
    return Served(status, headers, content=json.dumps(error_json(exc)).encode())


async def _relay(streamed: StreamedAnswer, request_id: str) -> AsyncIterator[bytes]:
    """The stream's events; a failure after the first byte ends it with an SSE error event,
    which the SDK raises as an error, as the gateway's route does."""
    try:
        async for event in streamed:
            yield event
    except UpstreamError as exc:
        logger.warning("stream %s broke off: %s", request_id, exc.message)
        yield f"data: {json.dumps(error_json(exc))}\n\n".encode()
    finally:
        await streamed.aclose()
