"""Retry policy and error mapping of the upstream client, on a mocked transport."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from frugal.api.errors import error_json, status_of
from frugal.errors import (
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from frugal.upstream.client import (
    OpenAIUpstream,
    RetryPolicy,
    map_transport_error,
    parse_retry_after,
)

OK = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}


class Script:
    """A transport answering from a list of canned responses (or exceptions), in order."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def status(
    code: int, body: dict | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        code, json=body or {"error": {"message": f"status {code}", "type": "x"}}, headers=headers
    )


def make(
    script: Callable[[httpx.Request], httpx.Response],
    *,
    max_retries: int = 2,
    max_delay_s: float = 10.0,
):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    upstream = OpenAIUpstream(
        http=http,
        base_url="http://provider.test/v1/",
        api_key="sk-secret",
        retry=RetryPolicy(
            max_retries=max_retries, base_delay_s=0.1, max_delay_s=max_delay_s, sleep=sleep
        ),
    )
    return upstream, http, waits


async def test_sends_the_key_and_the_request_id_to_the_right_url() -> None:
    script = Script(httpx.Response(200, json=OK))
    upstream, http, _ = make(script)
    async with http:
        assert await upstream.post("/chat/completions", {"model": "m"}, request_id="req_1") == OK
    sent = script.requests[0]
    assert str(sent.url) == "http://provider.test/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-secret"
    assert sent.headers["x-request-id"] == "req_1"
    assert json.loads(sent.content) == {"model": "m"}


@pytest.mark.parametrize("code", [500, 502, 503, 429])
async def test_5xx_and_429_are_retried_then_succeed(code: int) -> None:
    script = Script(status(code), status(code), httpx.Response(200, json=OK))
    upstream, http, waits = make(script)
    async with http:
        assert await upstream.post("/completions", {}, request_id="r") == OK
    assert len(script.requests) == 3
    assert len(waits) == 2 and upstream.retries == 2


async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    script = Script(status(500), status(500), status(500))
    upstream, http, waits = make(script)
    async with http:
        with pytest.raises(UpstreamStatusError) as caught:
            await upstream.post("/completions", {}, request_id="r")
    assert len(script.requests) == 3
    assert status_of(caught.value) == 502


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
async def test_client_errors_are_never_retried_and_pass_through(code: int) -> None:
    body = {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}
    }
    script = Script(status(code, body))
    upstream, http, waits = make(script)
    async with http:
        with pytest.raises(UpstreamStatusError) as caught:
            await upstream.post("/completions", {}, request_id="r")
    assert len(script.requests) == 1 and waits == []
    assert status_of(caught.value) == code
    assert error_json(caught.value) == body


async def test_retry_after_is_honoured() -> None:
    script = Script(status(429, headers={"Retry-After": "3"}), httpx.Response(200, json=OK))
    upstream, http, waits = make(script)
    async with http:
        await upstream.post("/completions", {}, request_id="r")
    assert waits[0] >= 3.0


async def test_a_retry_after_beyond_the_longest_wait_is_passed_to_the_client() -> None:
    script = Script(status(429, headers={"Retry-After": "60"}))
    upstream, http, waits = make(script, max_delay_s=5.0)
    async with http:
        with pytest.raises(UpstreamStatusError) as caught:
            await upstream.post("/completions", {}, request_id="r")
    assert waits == [] and len(script.requests) == 1
    assert status_of(caught.value) == 429 and caught.value.retry_after_s == 60.0


async def test_connect_errors_are_retried() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=OK))
    upstream, http, _ = make(script)
    async with http:
        assert await upstream.post("/embeddings", {}, request_id="r") == OK


async def test_read_timeouts_are_not_retried() -> None:
    script = Script(httpx.ReadTimeout("slow"))
    upstream, http, _ = make(script)
    async with http:
        with pytest.raises(UpstreamTimeoutError):
            await upstream.post("/embeddings", {}, request_id="r")
    assert len(script.requests) == 1


async def test_a_stream_is_retried_until_its_first_chunk() -> None:
    script = Script(status(503), httpx.Response(200, content=b"data: [DONE]\n\n"))
    upstream, http, _ = make(script)
    async with http:
        stream = await upstream.stream("/chat/completions", {"stream": True}, request_id="r")
        received = b"".join([chunk async for chunk in stream])
        await stream.aclose()
    assert received == b"data: [DONE]\n\n"
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    ("exc", "mapped"),
    [
        (httpx.ConnectError("x"), UpstreamConnectionError),
        (httpx.ConnectTimeout("x"), UpstreamConnectionError),
        (httpx.RemoteProtocolError("x"), UpstreamConnectionError),
        (httpx.ReadError("x"), UpstreamConnectionError),
        (httpx.ReadTimeout("x"), UpstreamTimeoutError),
        (httpx.PoolTimeout("x"), UpstreamTimeoutError),
        (httpx.WriteTimeout("x"), UpstreamTimeoutError),
    ],
)
def test_every_transport_error_is_mapped(exc: httpx.TransportError, mapped: type) -> None:
    assert type(map_transport_error(exc)) is mapped


def test_all_httpx_transport_errors_map_onto_frugals_tree() -> None:
    # A new httpx error class must not slip through unmapped.
    def leaves(cls: type) -> list[type]:
        subs = cls.__subclasses__()
        return [cls] if not subs else [leaf for sub in subs for leaf in leaves(sub)]

    for cls in leaves(httpx.TransportError):
        mapped = map_transport_error(cls("x"))
        assert isinstance(mapped, UpstreamConnectionError | UpstreamTimeoutError), cls


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("2", 2.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_the_key_is_not_in_any_error_message() -> None:
    for exc in (httpx.ConnectError("x"), httpx.ReadTimeout("x")):
        assert "sk-secret" not in map_transport_error(exc).message
