"""OpenAI-compatible routes, the compatibility endpoint `/process_prompt`, health checks."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

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
from frugal.errors import UpstreamError
from frugal.pipeline import Answer, Endpoint, StreamedAnswer

logger = logging.getLogger(__name__)

CACHE_HEADER = "x-frugal-cache"

router = APIRouter()


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
    parsed, _ = await read_body(
        request, ProcessPromptRequest, max_bytes=state.settings.max_body_bytes
    )
    body = {
        "model": state.settings.default_model,
        "messages": [{"role": "user", "content": parsed.text}],
    }
    answer = await state.pipeline.answer(Endpoint.CHAT, body, request_id=_request_id(request))
    text = answer.body["choices"][0]["message"]["content"]
    return JSONResponse({"response": text}, headers={CACHE_HEADER: answer.cache.value})


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready = gateway(request).ready
    return JSONResponse(
        {"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503
    )


async def _serve(request: Request, endpoint: Endpoint, schema: type[BaseModel]) -> Response:
    state = gateway(request)
    parsed, body = await read_body(request, schema, max_bytes=state.settings.max_body_bytes)
    request_id = _request_id(request)
    if getattr(parsed, "stream", False):
        streamed = await state.pipeline.answer_stream(endpoint, body, request_id=request_id)
        return StreamingResponse(
            _relay(streamed, request_id),
            media_type="text/event-stream",
            headers={CACHE_HEADER: streamed.cache.value, "cache-control": "no-cache"},
        )
    answer: Answer = await state.pipeline.answer(endpoint, body, request_id=request_id)
    return JSONResponse(answer.body, headers={CACHE_HEADER: answer.cache.value})


async def _relay(streamed: StreamedAnswer, request_id: str) -> AsyncIterator[bytes]:
    """Relay chunks as they arrive; a failure after the first byte ends the stream with an
    SSE error event (the status line is already sent, and the SDK raises on such an event)."""
    try:
        async for chunk in streamed:
            yield chunk
    except UpstreamError as exc:
        logger.warning("stream %s broke off: %s", request_id, exc.message)
        yield _sse(exc.body())
    finally:
        await streamed.aclose()


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _request_id(request: Request) -> str:
    return str(request.scope["state"]["request_id"])
