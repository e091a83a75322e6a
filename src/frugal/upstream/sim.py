"""A simulated OpenAI-compatible provider (``frugal sim``): real HTTP, deterministic answers.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` included; a list
``prompt`` gets one choice per prompt), ``POST /v1/embeddings`` (a list ``input``;
``encoding_format`` ``float`` or ``base64``), ``GET /sim/stats``, ``POST /sim/reset``,
``GET /healthz``. Any model name is accepted; every error has OpenAI's shape.

Answers are ``"[MODEL] Answer to: PROMPT"``, where a chat's prompt is its last user message.
Tokens are whitespace-separated words (`count_tokens`); ``max_tokens`` cuts an answer to that
many words with finish_reason ``"length"``. An embedding is a unit vector drawn from the sha256
of its input text (16 dimensions unless ``dimensions`` says otherwise).

A call (one request to a ``/v1`` route) meets, in this order:

1. counting: ``calls``, and ``prompts`` when its body is valid;
2. ``require_api_key``: 401 without ``Authorization: Bearer KEY``;
3. ``rpm``: 429 with ``Retry-After`` when the last 60 s already admitted ``rpm`` calls
   (refused calls do not enter the window);
4. body validation: 400 naming the bad field in ``param``;
5. ``reject_containing``: 400 for the whole call when any of its texts contains it;
6. ``error_rate``: 500 at once, as an overloaded provider answers;
7. a concurrency slot (calls beyond ``max_concurrency`` wait for one), held while the call
   waits `call_latency_s`; a stream spends the per-token part between its chunks;
8. ``drop_rate``: the connection is closed halfway through the response body;
9. the answer.

``GET /sim/stats``: ``calls`` counts every request received on a ``/v1`` route, whatever its
answer; ``prompts`` counts the items of those with a valid body (a chat is one prompt, a list
``prompt`` or ``input`` its length); ``tokens`` sums the usage ``total_tokens`` of complete
answers only; ``rejected`` counts the answers of steps 2-8 by kind; ``in_flight`` and
``max_in_flight`` count calls holding a concurrency slot, now and at most.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import fastapi
import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from frugal.errors import error_body

__all__ = ["SimConfig", "call_latency_s", "count_tokens", "create_sim_app"]

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
DEFAULT_EMBEDDING_DIMENSIONS = 16
_RPM_WINDOW_S = 60.0
_MAX_TOKENS = 1 << 20


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """How the simulated provider behaves. Rates are probabilities in [0, 1]."""

    call_latency_ms: float = 900.0  # fixed cost of every call
    item_latency_ms: float = 100.0  # cost per prompt or input in the call
    token_latency_ms: float = 0.0  # cost per output token of the call's longest answer
    max_concurrency: int | None = None  # calls beyond it queue
    rpm: int | None = None  # requests per minute, over a sliding 60 s window
    error_rate: float = 0.0  # chance of a 500
    slow_rate: float = 0.0  # chance of slow_ms extra latency
    slow_ms: float = 5000.0
    drop_rate: float = 0.0  # chance the connection closes mid-response
    reject_containing: str | None = None  # 400 for a whole call that contains this text
    require_api_key: str | None = None  # when set, 401 without "Authorization: Bearer KEY"
    seed: int | None = None  # seeds the fault draws, so runs repeat

    def __post_init__(self) -> None:
        for name in ("call_latency_ms", "item_latency_ms", "token_latency_ms", "slow_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("error_rate", "slow_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)!r}")
        for name in ("max_concurrency", "rpm"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)!r}")


def call_latency_s(
    config: SimConfig, *, n_items: int, max_output_tokens: int, slow: bool = False
) -> float:
    """Seconds a call takes. A batch pays for its longest answer, not the sum, as a GPU does.

    >>> call_latency_s(SimConfig(), n_items=5, max_output_tokens=0)
    1.4
    """
    ms = config.call_latency_ms + config.item_latency_ms * n_items
    ms += config.token_latency_ms * max_output_tokens + (config.slow_ms if slow else 0.0)
    return ms / 1000.0


def count_tokens(text: str) -> int:
    """The simulator's token count: whitespace-separated words (``"a b  c"`` is 3)."""
    return len(text.split())


def _embedding(text: str, dimensions: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).astype("<f4")


class _Rejected(Exception):
    """A call answered with an error; ``kind`` names its counter in the stats."""

    def __init__(
        self, kind: str, status: int, message: str, *, type: str = "invalid_request_error",
        param: str | None = None, code: str | None = None, retry_after_s: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.kind, self.status, self.retry_after_s = kind, status, retry_after_s
        self.body = error_body(message, type=type, param=param, code=code)

    def response(self) -> JSONResponse:
        headers = None if self.retry_after_s is None else {"retry-after": str(self.retry_after_s)}
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def _invalid(message: str, param: str | None) -> _Rejected:
    return _Rejected("bad_request", 400, message, param=param)


# -- the request body ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Call:
    """A valid call: its items (prompts answered or inputs embedded) and how to answer them."""

    endpoint: str
    model: str
    items: list[str]
    screened: list[str]  # every text reject_containing looks at
    prompt_tokens: int
    max_tokens: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
    base64: bool = False


def _int(body: dict[str, Any], name: str, maximum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    # bool is a subclass of int, but `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _invalid(f"'{name}' must be an integer in [1, {maximum}], got {value!r}.", name)
    return value


def _bool(body: dict[str, Any], name: str, param: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise _invalid(f"'{param}' must be a boolean, got {value!r}.", param)
    return value


def _texts(value: object, param: str) -> list[str]:
    """A ``prompt`` or ``input``: a string, a list of strings, or token lists (their str form)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise _invalid(f"'{param}' must be a string or a non-empty list.", param)
    if all(isinstance(x, str) for x in value):
        return list(value)
    if all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return [str(value)]
    if all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in value):
        return [str(x) for x in value]
    raise _invalid(f"'{param}' must hold strings or lists of token ids.", param)


def _message(message: object, i: int) -> tuple[str, str]:
    """A chat message's role and text (its text parts joined by spaces)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise _invalid(f"messages[{i}] must be an object with a 'role'.", f"messages[{i}]")
    content, param = message.get("content"), f"messages[{i}].content"
    if content is None or isinstance(content, str):
        return message["role"], content or ""
    if not isinstance(content, list):
        raise _invalid("'content' must be a string or a list of parts.", param)
    if not all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in content):
        raise _invalid("Each content part must be an object with a 'type'.", param)
    texts = [part.get("text") for part in content if part["type"] == "text"]
    if not all(isinstance(text, str) for text in texts):
        raise _invalid("A text part must have a string 'text'.", param)
    return message["role"], " ".join(texts)


def _parse(endpoint: str, raw: bytes) -> _Call:
    """Validate a body; raises `_Rejected` (400) naming the bad field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid("The request body is not valid JSON.", None) from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("'model' is required and must be a non-empty string.", "model")

    if endpoint == EMBEDDINGS:
        inputs = _texts(body.get("input"), "input")
        if "" in inputs:
            raise _invalid("'input' cannot contain an empty string.", "input")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _invalid("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
        dimensions = _int(body, "dimensions", 4096)
        return _Call(
            endpoint=endpoint,
            model=model,
            items=inputs,
            screened=inputs,
            prompt_tokens=sum(map(count_tokens, inputs)),
            dimensions=DEFAULT_EMBEDDING_DIMENSIONS if dimensions is None else dimensions,
            base64=encoding == "base64",
        )

    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _invalid("'stream_options' must be an object.", "stream_options")
    max_tokens = _int(body, "max_tokens", _MAX_TOKENS)
    if endpoint == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("'messages' is required and must be a non-empty list.", "messages")
        turns = [_message(message, i) for i, message in enumerate(messages)]
        screened = [text for _, text in turns]
        users = [text for role, text in turns if role == "user"]
        items = (users or screened)[-1:]
        newer = _int(body, "max_completion_tokens", _MAX_TOKENS)
        max_tokens = max_tokens if newer is None else newer
    else:
        items = screened = _texts(body.get("prompt"), "prompt")
    return _Call(
        endpoint=endpoint,
        model=model,
        items=items,
        screened=screened,
        prompt_tokens=sum(map(count_tokens, screened)),
        max_tokens=max_tokens,
        n=_int(body, "n", 128) or 1,
        stream=_bool(body, "stream", "stream"),
        include_usage=_bool(options, "include_usage", "stream_options.include_usage"),
    )


# -- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    index: int
    words: list[str]  # tokens with their trailing whitespace: joined, they are the answer
    finish_reason: str


def _choices(call: _Call) -> list[_Choice]:
    """``n`` choices per prompt; choice ``p * n + j`` is the j-th answer to prompt ``p``."""
    choices = []
    for p, prompt in enumerate(call.items):
        words = re.findall(r"\S+\s*", f"[{call.model}] Answer to: {prompt}")
        cut = call.max_tokens is not None and len(words) > call.max_tokens
        if cut:
            words = words[: call.max_tokens]
            words[-1] = words[-1].rstrip()
        choices += [_Choice(p * call.n + j, words, "length" if cut else "stop") for j in range(call.n)]
    return choices


def _usage(call: _Call, choices: list[_Choice]) -> dict[str, int]:
    completion = sum(len(choice.words) for choice in choices)
    total = call.prompt_tokens + completion
    return {"prompt_tokens": call.prompt_tokens, "completion_tokens": completion, "total_tokens": total}


def _head(call: _Call, *, chunk: bool) -> dict[str, Any]:
    chat = call.endpoint == CHAT
    kind = ("chat.completion.chunk" if chunk else "chat.completion") if chat else "text_completion"
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        "object": kind,
        "created": int(time.time()),
        "model": call.model,
    }


def _answer(call: _Call, choices: list[_Choice]) -> dict[str, Any]:
    """The whole (unstreamed) response body of a valid call."""
    if call.endpoint == EMBEDDINGS:
        data = []
        for i, text in enumerate(call.items):
            vector = _embedding(text, call.dimensions)
            encoded = base64.b64encode(vector.tobytes()).decode() if call.base64 else None
            data.append({"object": "embedding", "index": i, "embedding": encoded or vector.tolist()})
        usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
        return {"object": "list", "data": data, "model": call.model, "usage": usage}
    answers = []
    for choice in choices:
        text = "".join(choice.words)
        answer = {"message": {"role": "assistant", "content": text}} if call.endpoint == CHAT else {"text": text}
        answers.append({"index": choice.index, **answer, "finish_reason": choice.finish_reason, "logprobs": None})
    return {**_head(call, chunk=False), "choices": answers, "usage": _usage(call, choices)}


def _chunk(head: dict[str, Any], index: int, text: str | None, finish: str | None = None) -> bytes:
    """One SSE event of a stream; for a chat, ``text=None`` is the opening role delta."""
    if head["object"] == "text_completion":
        choice: dict[str, Any] = {"index": index, "text": text or ""}
    elif text is None:
        choice = {"index": index, "delta": {"role": "assistant", "content": ""}}
    else:
        choice = {"index": index, "delta": {"content": text} if text else {}}
    return _sse({**head, "choices": [{**choice, "finish_reason": finish, "logprobs": None}]})


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


# -- bookkeeping -----------------------------------------------------------------------------


class _Stats:
    COUNTS = ("calls", "prompts", "tokens")
    REJECTIONS = ("unauthorized", "rate_limited", "bad_request", "errors", "dropped")

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.endpoints = {e: dict.fromkeys(self.COUNTS, 0) for e in (CHAT, COMPLETIONS, EMBEDDINGS)}
        self.rejected = dict.fromkeys(self.REJECTIONS, 0)
        self.max_in_flight = self.in_flight  # calls still running are still in flight

    def as_dict(self) -> dict[str, Any]:
        totals = {key: sum(counts[key] for counts in self.endpoints.values()) for key in self.COUNTS}
        return {
            **totals,
            "endpoints": {endpoint: dict(counts) for endpoint, counts in self.endpoints.items()},
            "rejected": dict(self.rejected),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


class _RequestsPerMinute:
    """A sliding 60 s window of admitted calls."""

    def __init__(self, rpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rpm, self._clock = rpm, clock
        self._admitted: deque[float] = deque()

    def admit(self) -> int | None:
        """None when the call is admitted, else the whole seconds (>= 1) until a place frees."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - _RPM_WINDOW_S:
            self._admitted.popleft()
        if len(self._admitted) < self._rpm:
            self._admitted.append(now)
            return None
        return max(1, math.ceil(self._admitted[0] + _RPM_WINDOW_S - now))

    def reset(self) -> None:
        self._admitted.clear()


# -- cut connections and streams -------------------------------------------------------------


class _Dropped(Exception):
    """Raised inside an event stream to cut its connection."""


class _DroppedResponse(JSONResponse):
    """Promises its whole body in Content-Length, sends half of it, then closes the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # Returning before the body is complete makes the server close the connection.


class _EventStream(StreamingResponse):
    """Server-sent events; stops when the client leaves, cuts the connection on `_Dropped`."""

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self._send_all(send))
        watching = asyncio.ensure_future(_until_disconnected(receive))
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                task.cancel()
            await asyncio.gather(streaming, watching, return_exceptions=True)
        if not streaming.cancelled():
            streaming.result()  # re-raises what went wrong

    async def _send_all(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            async for event in self._events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except _Dropped:
            return  # the chunked body never ends, so the server closes the connection
        finally:
            await self._events.aclose()  # gives the concurrency slot back if the client left
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# -- the simulator and its app ---------------------------------------------------------------


class _Simulator:
    """The state of one simulated provider: stats, rate window, concurrency slots, fault draws."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self._window = None if config.rpm is None else _RequestsPerMinute(config.rpm)
        limit = config.max_concurrency
        self._slots = None if limit is None else asyncio.Semaphore(limit)
        self._rng = random.Random(config.seed)

    def reset(self) -> None:
        """Zero the stats and the rate window; a seeded simulator starts its draws over."""
        self.stats.reset()
        if self._window is not None:
            self._window.reset()
        self._rng.seed(self.config.seed)

    async def handle(self, endpoint: str, request: Request) -> Response:
        """Answer one call, through the steps listed in the module docstring."""
        raw = await request.body()
        self.stats.endpoints[endpoint]["calls"] += 1
        try:
            parsed: _Call | _Rejected = _parse(endpoint, raw)
        except _Rejected as exc:
            parsed = exc
        else:
            self.stats.endpoints[endpoint]["prompts"] += len(parsed.items)
        try:
            call, slow, drop = self._admit(request.headers.get("authorization", ""), parsed)
        except _Rejected as exc:
            self.stats.rejected[exc.kind] += 1
            return exc.response()

        choices = [] if endpoint == EMBEDDINGS else _choices(call)
        if call.stream and choices:
            return _EventStream(self._stream(call, choices, slow=slow, drop=drop))
        longest = max((len(choice.words) for choice in choices), default=0)
        latency_s = call_latency_s(
            self.config, n_items=len(call.items), max_output_tokens=longest, slow=slow
        )
        async with self._slot():
            await asyncio.sleep(latency_s)
        body = _answer(call, choices)
        if drop:
            self.stats.rejected["dropped"] += 1
            return _DroppedResponse(body)
        self.stats.endpoints[endpoint]["tokens"] += body["usage"]["total_tokens"]
        return JSONResponse(body)

    def _admit(self, authorization: str, parsed: _Call | _Rejected) -> tuple[_Call, bool, bool]:
        """Steps 2-6: raises `_Rejected`, or gives the call and whether it is slow, dropped."""
        config = self.config
        key = config.require_api_key
        if key is not None and not _authorized(authorization, key):
            raise _Rejected("unauthorized", 401, "Incorrect API key.", code="invalid_api_key")
        if self._window is not None and (wait_s := self._window.admit()) is not None:
            message = f"Rate limit reached: {config.rpm} requests per minute."
            raise _Rejected("rate_limited", 429, message, type="rate_limit_error",
                            code="rate_limit_exceeded", retry_after_s=wait_s)  # fmt: skip
        if isinstance(parsed, _Rejected):
            raise parsed
        needle = config.reject_containing
        if needle is not None and any(needle in text for text in parsed.screened):
            param = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}[parsed.endpoint]
            message = f"The request contains the rejected text {needle!r}."
            raise _Rejected("bad_request", 400, message, param=param, code="content_rejected")
        # Three draws per admitted call, always in this order, so that a seeded run repeats.
        rates = (config.error_rate, config.slow_rate, config.drop_rate)
        error, slow, drop = (self._rng.random() < rate for rate in rates)
        if error:
            message = "The server had an error while processing your request."
            raise _Rejected("errors", 500, message, type="server_error")
        return parsed, slow, drop

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of ``max_concurrency`` places, waiting for one if need be."""
        if self._slots is not None:
            await self._slots.acquire()
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            yield
        finally:
            self.stats.in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    async def _stream(
        self, call: _Call, choices: list[_Choice], *, slow: bool, drop: bool
    ) -> AsyncGenerator[bytes, None]:
        """A streamed answer: a word per chunk, every choice advancing one word per token time."""
        head = _head(call, chunk=True)
        if call.include_usage:
            head["usage"] = None  # as OpenAI sends on every chunk but the last
        steps = max(len(choice.words) for choice in choices)
        async with self._slot():
            first_s = call_latency_s(self.config, n_items=len(call.items), max_output_tokens=0)
            await asyncio.sleep(first_s + (self.config.slow_ms / 1000.0 if slow else 0.0))
            if call.endpoint == CHAT:
                for choice in choices:
                    yield _chunk(head, choice.index, None)
            for step in range(steps):
                if drop and step == steps // 2:
                    self.stats.rejected["dropped"] += 1
                    raise _Dropped
                await asyncio.sleep(self.config.token_latency_ms / 1000.0)
                for choice in choices:
                    if step < len(choice.words):
                        yield _chunk(head, choice.index, choice.words[step])
            for choice in choices:
                yield _chunk(head, choice.index, "", choice.finish_reason)
            usage = _usage(call, choices)
            if call.include_usage:
                yield _sse({**head, "choices": [], "usage": usage})
            self.stats.endpoints[call.endpoint]["tokens"] += usage["total_tokens"]
            yield b"data: [DONE]\n\n"


def _authorized(header: str, key: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def create_sim_app(config: SimConfig) -> fastapi.FastAPI:
    """A FastAPI app that plays one OpenAI-compatible provider; its state lives on the app.

    >>> app = create_sim_app(SimConfig(call_latency_ms=0, item_latency_ms=0, seed=1))
    """
    app = fastapi.FastAPI(title="frugal sim", docs_url=None, redoc_url=None, openapi_url=None)
    sim = app.state.sim = _Simulator(config)

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await sim.handle(endpoint, request)

        return serve

    for endpoint in (CHAT, COMPLETIONS, EMBEDDINGS):
        app.add_api_route(endpoint, route(endpoint), methods=["POST"])

    @app.get("/sim/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(sim.stats.as_dict())

    @app.post("/sim/reset")
    async def reset() -> JSONResponse:
        sim.reset()
        return JSONResponse(sim.stats.as_dict())

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        code = "not_found" if exc.status_code == 404 else None
        body = error_body(message, type="invalid_request_error", code=code)
        return JSONResponse(body, status_code=exc.status_code)

    return app
