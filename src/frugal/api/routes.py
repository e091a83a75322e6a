"""OpenAI-compatible routes, the compatibility endpoint `/process_prompt`, health checks."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from frugal.api.body import read_body
from frugal.api.cache_control import HEADER as CONTROL_HEADER
from frugal.api.cache_control import parse_cache_control
from frugal.api.errors import error_json, status_of
from frugal.api.observe import record_answer, record_error, refresh_metrics
from frugal.api.openapi import errors, openai_route
from frugal.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ProcessPromptRequest,
    ResponsesRequest,
)
from frugal.api.state import GatewayState, gateway
from frugal.errors import (
    AuthenticationError,
    ClientDisconnectedError,
    UpstreamAnswerError,
    UpstreamError,
)
from frugal.outcome import Outcome
from frugal.pipeline import Answer, RequestContext, StreamedAnswer
from frugal.provider import Endpoint
from frugal.tenants import OPEN_TENANT, Tenant

logger = logging.getLogger(__name__)

CACHE_HEADER = "x-frugal-cache"
SIMILARITY_HEADER = "x-frugal-similarity"
ITEMS_HEADER = "x-frugal-cache-items"  # a list's items: "hits=60, misses=40"

router = APIRouter()

T = TypeVar("T")


@router.post("/v1/chat/completions", **openai_route(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    return await _serve(request, Endpoint.CHAT, ChatCompletionRequest)


@router.post("/v1/completions", **openai_route(CompletionRequest))
async def completions(request: Request) -> Response:
    return await _serve(request, Endpoint.COMPLETIONS, CompletionRequest)


@router.post("/v1/embeddings", **openai_route(EmbeddingRequest))
async def embeddings(request: Request) -> Response:
    return await _serve(request, Endpoint.EMBEDDINGS, EmbeddingRequest)


@router.post("/v1/responses", **openai_route(ResponsesRequest))
async def responses(request: Request) -> Response:
    """The Responses API: a stateless call is cached and coalesced like a chat (never batched:
    it has no list form); one that keeps state at the provider or acts through its tools is
    relayed as a ``bypass`` (`frugal.cache.scope`)."""
    return await _serve(request, Endpoint.RESPONSES, ResponsesRequest)


@router.post("/process_prompt", **openai_route(ProcessPromptRequest))
async def process_prompt(request: Request) -> Response:
    """The original write-up's endpoint: ``{"text"}`` in, ``{"response"}`` out, via chat."""
    state = gateway(request)
    started = time.perf_counter()
    body: dict[str, Any] | None = None
    try:
        tenant = tenant_of(request, state)
        max_bytes = state.settings.max_body_bytes
        parsed, _ = await read_body(
            request,
            ProcessPromptRequest,
            max_bytes=max_bytes,
            timeout_s=state.settings.client_body_timeout_s,
        )
        messages = [{"role": "user", "content": parsed.text}]
        body = {"model": state.settings.default_model, "messages": messages}
        answer, ctx = await _answer(request, state, tenant, Endpoint.CHAT, body)
        text = _reply_text(answer.body)
    except Exception as exc:
        _record_failure(request, state, Endpoint.CHAT, body, exc, started)
        raise
    record_answer(state, ctx, Endpoint.CHAT, body, answer, started=started, response=answer.body)
    return JSONResponse(
        {"response": text}, headers=_cache_headers(answer.outcome, answer.similarity)
    )


def _reply_text(answer: dict[str, Any]) -> str:
    """The text of a chat answer's first choice; `UpstreamAnswerError` (502) without one."""
    try:
        text = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        text = None
    if not isinstance(text, str):
        raise UpstreamAnswerError("The provider's answer has no message text in its first choice.")
    return text


@router.get(
    "/metrics",
    response_class=Response,  # so that the 401 is documented as JSON, the 200 as text
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **errors(401)},
    openapi_extra={"security": [{"bearer": []}, {}]},  # a bearer key only when one is set
)
async def metrics(request: Request) -> Response:
    """Prometheus text format; see `frugal.observability.metrics`.

    Open unless ``FRUGAL_METRICS_KEY`` is set; then only ``Authorization: Bearer <that key>``
    reads it (compared in constant time), and anything else is `AuthenticationError` (401).
    """
    state = gateway(request)
    metrics_key = state.settings.metrics_key
    if metrics_key is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = metrics_key.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise AuthenticationError("A valid metrics key is required.")
    await refresh_metrics(state)
    return Response(state.observer.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Starting, loading the cache, or stopping"}})
async def readyz(request: Request) -> JSONResponse:
    """503 until started, while the cache loads its entries (misses are served meanwhile) or
    failed to, and when stopping; a degraded cache still serves, so it stays 200."""
    state = gateway(request)
    cache = state.cache_health
    ready = state.ready and cache not in ("loading", "failed")
    body = {"status": "ready" if ready else "not ready", "cache": cache}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _serve(request: Request, endpoint: Endpoint, schema: type[BaseModel]) -> Response:
    state = gateway(request)
    started = time.perf_counter()
    body: dict[str, Any] | None = None
    try:
        tenant = tenant_of(request, state)
        parsed, body = await read_body(
            request,
            schema,
            max_bytes=state.settings.max_body_bytes,
            timeout_s=state.settings.client_body_timeout_s,
        )
        if getattr(parsed, "stream", False):
            ctx = _context(request, tenant)
            streamed = await state.pipeline.answer_stream(endpoint, body, ctx)
            headers = {
                **_cache_headers(streamed.outcome, streamed.similarity),
                "cache-control": "no-cache",
            }
            relayed = _relay(streamed, ctx, state, endpoint, body, started)
            return StreamingResponse(relayed, media_type="text/event-stream", headers=headers)
        answer, ctx = await _answer(request, state, tenant, endpoint, body)
    except Exception as exc:
        _record_failure(request, state, endpoint, body, exc, started)
        raise
    record_answer(state, ctx, endpoint, body, answer, started=started, response=answer.body)
    headers = _cache_headers(answer.outcome, answer.similarity)
    if answer.items is not None:
        headers[ITEMS_HEADER] = answer.items.header
    return JSONResponse(answer.body, headers=headers)


def _record_failure(
    request: Request,
    state: GatewayState,
    endpoint: Endpoint,
    body: dict[str, Any] | None,
    exc: Exception,
    started: float,
) -> None:
    record_error(
        state,
        request_id=str(request.scope["state"]["request_id"]),
        tenant=str(request.scope["state"].get("tenant", OPEN_TENANT)),
        endpoint=endpoint,
        body=body,
        status=status_of(exc),
        started=started,
    )


async def _answer(
    request: Request, state: GatewayState, tenant: Tenant, endpoint: Endpoint, body: dict[str, Any]
) -> tuple[Answer, RequestContext]:
    """A non-streamed answer, cancelled if the client leaves while it waits for the provider."""
    watch = ClientWatch(request)
    ctx = _context(request, tenant, on_upstream=watch.start)
    return await watch.guard(state.pipeline.answer(endpoint, body, ctx)), ctx


class ClientWatch:
    """Cancels the task serving a request when its client leaves, once `start`ed.

    Started only when the request is about to wait for the provider (`RequestContext.
    on_upstream`): a queued miss whose client left then costs nothing upstream, as the batcher
    drops cancelled callers. A cache hit, answered in milliseconds, never starts one: the
    watcher is a task, and a task per request cost about a sixth of a hit's CPU. Used around
    `Pipeline.answer` only: a stream's response notices its client leaving by itself.
    """

    def __init__(self, request: Request) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._request = request
        self._task = task
        self._watcher: asyncio.Task[None] | None = None
        self._finished = False
        self._cancelled_for_client = False

    def start(self) -> None:
        if self._watcher is None and not self._finished:
            self._watcher = asyncio.ensure_future(_disconnected(self._request))
            self._watcher.add_done_callback(self._client_left)

    async def guard(self, work: Awaitable[T]) -> T:
        """Await ``work`` (in this task); `ClientDisconnectedError` when the client left."""
        try:
            return await work
        except asyncio.CancelledError:
            # Ours only if this watch cancelled the task and nobody else asked for a cancel.
            if self._cancelled_for_client and self._task.uncancel() == 0:
                raise ClientDisconnectedError("The client closed the connection.") from None
            raise
        finally:
            self._finished = True
            if self._watcher is not None:
                self._watcher.cancel()

    def _client_left(self, watcher: asyncio.Task[None]) -> None:
        if not self._finished and not watcher.cancelled() and watcher.exception() is None:
            self._cancelled_for_client = True
            self._task.cancel()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next message can only be the client leaving.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def tenant_of(request: Request, state: GatewayState) -> Tenant:
    """The caller's tenant, from its bearer key; 401 when keys are required and it has none."""
    if state.keys is None:
        return Tenant(name=OPEN_TENANT, namespace=OPEN_TENANT)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    tenant = state.keys.tenant_for(key.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        raise AuthenticationError("Incorrect or missing API key: send a frugal client key.")
    request.scope["state"]["tenant"] = tenant.name
    return tenant


def _context(
    request: Request, tenant: Tenant, *, on_upstream: Callable[[], None] | None = None
) -> RequestContext:
    control = parse_cache_control(request.headers.get(CONTROL_HEADER))
    hook = {} if on_upstream is None else {"on_upstream": on_upstream}  # streams take none
    return RequestContext(
        request_id=str(request.scope["state"]["request_id"]),
        tenant=tenant.name,
        namespace=tenant.namespace,
        control=control,
        **hook,
    )


def _cache_headers(outcome: Outcome, similarity: float | None) -> dict[str, str]:
    headers = {CACHE_HEADER: outcome.header}
    if similarity is not None:
        headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
    return headers


async def _relay(
    streamed: StreamedAnswer,
    ctx: RequestContext,
    state: GatewayState,
    endpoint: Endpoint,
    body: dict[str, Any],
    started: float,
) -> AsyncIterator[bytes]:
    """Relay events as they arrive; a failure after the first byte ends the stream with an
    SSE error event (the status line is already sent, and the SDK raises on such an event).
    The request is reported once the stream has ended."""
    failed_with: int | None = None
    try:
        async for event in streamed:
            yield event
    except UpstreamError as exc:
        failed_with = status_of(exc)
        logger.warning("stream %s broke off: %s", ctx.request_id, exc.message)
        yield _sse(error_json(exc))
    except (asyncio.CancelledError, GeneratorExit):
        failed_with = status_of(ClientDisconnectedError("the client left mid-stream"))
        raise
    finally:
        await streamed.aclose()
        if failed_with is not None:
            record_error(
                state,
                request_id=ctx.request_id,
                tenant=ctx.tenant,
                endpoint=endpoint,
                body=body,
                status=failed_with,
                started=started,
            )
        else:
            cached = streamed.hit.response if streamed.hit is not None else None
            record_answer(state, ctx, endpoint, body, streamed, started=started, response=cached)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()
