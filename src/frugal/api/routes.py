"""OpenAI-compatible routes, the compatibility endpoint `/process_prompt`, health checks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from frugal.api.body import read_body
from frugal.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ProcessPromptRequest,
    openapi_body,
)
from frugal.api.state import gateway
from frugal.cache.control import HEADER as CONTROL_HEADER
from frugal.cache.control import parse_cache_control
from frugal.endpoints import Endpoint
from frugal.errors import ClientDisconnectedError, UpstreamError
from frugal.pipeline import CacheOutcome, RequestContext, StreamedAnswer

logger = logging.getLogger(__name__)

CACHE_HEADER = "x-frugal-cache"
SIMILARITY_HEADER = "x-frugal-similarity"

router = APIRouter()

T = TypeVar("T")


@router.post("/v1/chat/completions", openapi_extra=openapi_body(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    return await _serve(request, Endpoint.CHAT, ChatCompletionRequest)


@router.post("/v1/completions", openapi_extra=openapi_body(CompletionRequest))
async def completions(request: Request) -> Response:
    return await _serve(request, Endpoint.COMPLETIONS, CompletionRequest)


@router.post("/v1/embeddings", openapi_extra=openapi_body(EmbeddingRequest))
async def embeddings(request: Request) -> Response:
    return await _serve(request, Endpoint.EMBEDDINGS, EmbeddingRequest)


@router.post("/process_prompt", openapi_extra=openapi_body(ProcessPromptRequest))
async def process_prompt(request: Request) -> Response:
    """The original write-up's endpoint: ``{"text"}`` in, ``{"response"}`` out, via chat."""
    state = gateway(request)
    max_bytes = state.settings.max_body_bytes
    parsed, _ = await read_body(request, ProcessPromptRequest, max_bytes=max_bytes)
    messages = [{"role": "user", "content": parsed.text}]
    body = {"model": state.settings.default_model, "messages": messages}
    answer = await _unless_disconnected(
        request, state.pipeline.answer(Endpoint.CHAT, body, _context(request))
    )
    text = answer.body["choices"][0]["message"]["content"]
    return JSONResponse({"response": text}, headers=_cache_headers(answer.cache, answer.similarity))


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """503 until started (and when stopping); a degraded cache still serves, so it stays 200."""
    state = gateway(request)
    body = {"status": "ready" if state.ready else "not ready", "cache": state.cache_health}
    return JSONResponse(body, status_code=200 if state.ready else 503)


async def _serve(request: Request, endpoint: Endpoint, schema: type[BaseModel]) -> Response:
    state = gateway(request)
    parsed, body = await read_body(request, schema, max_bytes=state.settings.max_body_bytes)
    ctx = _context(request)
    if getattr(parsed, "stream", False):
        streamed = await state.pipeline.answer_stream(endpoint, body, ctx)
        headers = {
            **_cache_headers(streamed.cache, streamed.similarity),
            "cache-control": "no-cache",
        }
        return StreamingResponse(
            _relay(streamed, ctx.request_id), media_type="text/event-stream", headers=headers
        )
    answer = await _unless_disconnected(request, state.pipeline.answer(endpoint, body, ctx))
    return JSONResponse(answer.body, headers=_cache_headers(answer.cache, answer.similarity))


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it when the client goes away (a queued miss then costs nothing
    upstream: the batcher drops cancelled callers). The work runs in this task; only the
    watcher is a task of its own."""
    this = asyncio.current_task()
    assert this is not None
    finished = False

    def client_left(watcher: asyncio.Task[None]) -> None:
        if not finished and not watcher.cancelled() and watcher.exception() is None:
            this.cancel()

    watcher = asyncio.ensure_future(_disconnected(request))
    watcher.add_done_callback(client_left)
    try:
        return await work
    except asyncio.CancelledError:
        # Ours when the watcher saw the client leave and nobody else cancelled this task.
        if watcher.done() and not watcher.cancelled() and this.uncancel() == 0:
            raise ClientDisconnectedError("The client closed the connection.") from None
        raise
    finally:
        finished = True
        watcher.cancel()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next message can only be the client leaving.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _context(request: Request) -> RequestContext:
    control = parse_cache_control(request.headers.get(CONTROL_HEADER))
    return RequestContext(request_id=str(request.scope["state"]["request_id"]), control=control)


def _cache_headers(outcome: CacheOutcome, similarity: float | None) -> dict[str, str]:
    headers = {CACHE_HEADER: outcome.value}
    if similarity is not None:
        headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
    return headers


async def _relay(streamed: StreamedAnswer, request_id: str) -> AsyncIterator[bytes]:
    """Relay events as they arrive; a failure after the first byte ends the stream with an
    SSE error event (the status line is already sent, and the SDK raises on such an event)."""
    try:
        async for event in streamed:
            yield event
    except UpstreamError as exc:
        logger.warning("stream %s broke off: %s", request_id, exc.message)
        yield _sse(exc.body())
    finally:
        await streamed.aclose()


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()
