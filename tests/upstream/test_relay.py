"""The relay's header rules, retry rules and error mapping, on a mocked transport."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from frugal.api.errors import error_json, status_of
from frugal.errors import (
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from frugal.upstream import Relay, RetryPolicy, has_body
from frugal.upstream.relay import request_headers, response_headers

KEY = "sk-upstream-secret"
CLIENT_KEY = "sk-client-own"


class Script(httpx.AsyncBaseTransport):
    """A transport answering from canned responses (or exceptions), in order. It reads each
    request's body as httpx streams it (httpx's MockTransport would read it whole first) and
    keeps its chunks."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.bodies: list[list[bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        self.bodies.append([chunk async for chunk in request.stream])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make(
    script: Script, *, max_retries: int = 2, max_delay_s: float = 10.0
) -> tuple[Relay, httpx.AsyncClient, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    http = httpx.AsyncClient(transport=script)
    relay = Relay(
        http=http,
        base_url="http://provider.test/v1/",
        api_key=KEY,
        retry=RetryPolicy(
            max_retries=max_retries, base_delay_s=0.1, max_delay_s=max_delay_s, sleep=sleep
        ),
    )
    return relay, http, waits


def status(code: int, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"message": f"status {code}", "type": "x", "param": None, "code": None}}
    return httpx.Response(code, json=body, headers=headers)


async def body_of(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# Header rules.


def test_the_clients_keys_and_frugals_own_headers_do_not_go_on() -> None:
    sent = request_headers(
        [
            ("Authorization", f"Bearer {CLIENT_KEY}"),
            ("api-key", CLIENT_KEY),
            ("X-Api-Key", CLIENT_KEY),
            ("Proxy-Authorization", "Basic abc"),
            ("Cookie", "session=1"),
            ("Host", "gateway.test"),
            ("x-frugal-cache-control", "no-cache"),
            ("X-Frugal-Anything", "1"),
            ("x-request-id", "req_client"),
            ("OpenAI-Organization", "org-other"),
            ("OpenAI-Project", "proj-other"),
            ("Expect", "100-continue"),
        ]
    )
    assert sent == [("accept-encoding", "identity")]


def test_hop_by_hop_headers_and_those_connection_names_are_dropped() -> None:
    sent = request_headers(
        [
            ("Connection", "keep-alive, X-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("X-Hop", "1"),
            ("X-End-To-End", "2"),
        ]
    )
    assert sent == [("x-end-to-end", "2"), ("accept-encoding", "identity")]


def test_what_describes_the_body_and_the_api_goes_on() -> None:
    given = [
        ("Content-Type", "multipart/form-data; boundary=----abc123"),
        ("Content-Length", "5242880"),
        ("Accept", "application/json"),
        ("OpenAI-Beta", "assistants=v2"),
        ("Idempotency-Key", "k-1"),
        ("User-Agent", "OpenAI/Python 3.57.0"),
        ("Accept-Encoding", "gzip"),
    ]
    assert request_headers(given) == [(name.lower(), value) for name, value in given]


def test_the_providers_headers_come_back_less_its_own_business() -> None:
    returned = response_headers(
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "10"),
            ("Content-Encoding", "gzip"),
            ("X-RateLimit-Remaining-Requests", "99"),
            ("Set-Cookie", "__cf_bm=1"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("Date", "Mon, 01 Jan 2026 00:00:00 GMT"),
            ("Server", "cloudflare"),
            ("Alt-Svc", 'h3=":443"'),
            ("x-request-id", "req_provider"),
            ("openai-organization", "org-gateway"),
            ("openai-project", "proj-gateway"),
        ]
    )
    assert returned == [
        ("content-type", "application/octet-stream"),
        ("content-length", "10"),
        ("content-encoding", "gzip"),
        ("x-ratelimit-remaining-requests", "99"),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], False),
        ([("content-length", "0")], False),
        ([("Content-Length", "12")], True),
        ([("transfer-encoding", "chunked")], True),
    ],
)
def test_a_body_is_known_by_its_framing(headers: list[tuple[str, str]], expected: bool) -> None:
    assert has_body(headers) is expected


async def test_the_upstream_key_replaces_the_clients_and_the_request_goes_where_asked() -> None:
    script = Script(httpx.Response(200, json={"ok": True}))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send(
            "post",
            "/files/file%2Fx/content",
            query=b"limit=2&after=a%20b",
            headers=[("authorization", f"Bearer {CLIENT_KEY}"), ("content-type", "text/plain")],
            body=body_of(b"hello ", b"world"),
            request_id="req_1",
        )
        await relayed.aclose()
    sent = script.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == "http://provider.test/v1/files/file%2Fx/content?limit=2&after=a%20b"
    assert sent.headers.get_list("authorization") == [f"Bearer {KEY}"]
    assert sent.headers["x-request-id"] == "req_1"
    assert sent.headers["content-type"] == "text/plain"
    assert script.bodies[0] == [b"hello ", b"world"]  # chunk by chunk, as they came


async def test_no_upstream_key_sends_no_authorization_at_all() -> None:
    script = Script(httpx.Response(200))
    http = httpx.AsyncClient(transport=script)
    relay = Relay(http=http, base_url="http://provider.test/v1", api_key=None)
    client = [("authorization", "Bearer c")]
    async with http:
        await (await relay.send("GET", "/models", headers=client, request_id="r")).aclose()
    assert "authorization" not in script.requests[0].headers


@pytest.mark.parametrize(
    "path", ["/../admin", "/files/..", "/files/%2e%2E/x", "/./files", "/files?x=1", "/f#x"]
)
async def test_a_path_that_would_leave_the_api_base_is_refused_unsent(path: str) -> None:
    script = Script()
    relay, http, _ = make(script)
    async with http:
        with pytest.raises(InvalidRequestError):
            await relay.send("GET", path, request_id="r")
    assert script.requests == []


# The answer.


async def test_the_body_comes_back_raw_in_the_providers_encoding() -> None:
    packed = gzip.compress(b"a file's bytes" * 100)
    headers = {"content-encoding": "gzip"}
    script = Script(httpx.Response(200, content=body_of(packed[:50], packed[50:]), headers=headers))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send("GET", "/files/f/content", request_id="r")
        received = b"".join([chunk async for chunk in relayed])
        await relayed.aclose()
    assert received == packed
    assert ("content-encoding", "gzip") in relayed.headers


async def test_a_provider_failing_mid_body_is_an_upstream_error() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"first"
        raise httpx.ReadError("connection reset")

    script = Script(httpx.Response(200, content=broken()))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send("GET", "/files/f/content", request_id="r")
        received = []
        with pytest.raises(UpstreamConnectionError):
            async for chunk in relayed:
                received.append(chunk)
        await relayed.aclose()
    assert received == [b"first"]


async def test_an_error_answer_read_whole_is_the_error_every_route_raises() -> None:
    body = {"error": {"message": "No such model", "type": "invalid_request_error",
                      "param": None, "code": "model_not_found"}}  # fmt: skip
    script = Script(httpx.Response(404, json=body))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send("GET", "/models/nope", request_id="r")
        error = relayed.status_error(await relayed.aread())
        await relayed.aclose()
    assert isinstance(error, UpstreamStatusError)
    assert status_of(error) == 404 and error_json(error) == body


# Retry rules.


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "DELETE"])
@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
async def test_a_bodiless_idempotent_request_is_retried(method: str, code: int) -> None:
    script = Script(status(code), status(code), httpx.Response(200))
    relay, http, waits = make(script)
    async with http:
        relayed = await relay.send(method, "/files", request_id="r")
        await relayed.aclose()
    assert relayed.status_code == 200 and relayed.tries == 3
    assert len(script.requests) == 3 and len(waits) == 2 and relay.retries == 2


async def test_when_retries_are_spent_the_last_answer_is_relayed_as_sent() -> None:
    script = Script(status(503), status(503), status(503))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send("GET", "/files", request_id="r")
        body = await relayed.aread()
        await relayed.aclose()
    assert relayed.status_code == 503 and relayed.tries == 3
    assert b"status 503" in body


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
async def test_a_request_with_a_body_is_never_retried(method: str) -> None:
    script = Script(status(503))
    relay, http, waits = make(script)
    async with http:
        relayed = await relay.send(method, "/files", body=body_of(b"x"), request_id="r")
        await relayed.aclose()
    assert relayed.status_code == 503 and len(script.requests) == 1 and waits == []


async def test_post_without_a_body_is_not_retried_either() -> None:
    script = Script(status(500))
    relay, http, waits = make(script)
    async with http:
        relayed = await relay.send("POST", "/batches/b/cancel", request_id="r")
        await relayed.aclose()
    assert relayed.status_code == 500 and len(script.requests) == 1 and waits == []


async def test_a_get_with_a_body_is_not_retried() -> None:
    script = Script(status(502))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send("GET", "/files", body=body_of(b"{}"), request_id="r")
        await relayed.aclose()
    assert relayed.status_code == 502 and len(script.requests) == 1


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409])
async def test_a_client_error_is_never_retried(code: int) -> None:
    script = Script(status(code))
    relay, http, waits = make(script)
    async with http:
        relayed = await relay.send("GET", "/files/f", request_id="r")
        await relayed.aclose()
    assert relayed.status_code == code and len(script.requests) == 1 and waits == []


async def test_a_lost_connection_is_retried_for_a_get() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200))
    relay, http, _ = make(script)
    async with http:
        relayed = await relay.send("GET", "/models", request_id="r")
        await relayed.aclose()
    assert relayed.status_code == 200 and relayed.tries == 2


async def test_a_lost_connection_on_a_post_is_the_gateways_502() -> None:
    script = Script(httpx.ConnectError("refused"))
    relay, http, _ = make(script)
    async with http:
        with pytest.raises(UpstreamConnectionError) as caught:
            await relay.send("POST", "/moderations", body=body_of(b"{}"), request_id="r")
    assert len(script.requests) == 1 and status_of(caught.value) == 502


async def test_an_unreachable_provider_is_a_502_once_retries_are_spent() -> None:
    script = Script(*[httpx.ConnectError("refused")] * 3)
    relay, http, _ = make(script)
    async with http:
        with pytest.raises(UpstreamConnectionError):
            await relay.send("GET", "/models", request_id="r")
    assert len(script.requests) == 3


async def test_a_read_timeout_is_a_504_and_not_retried() -> None:
    script = Script(httpx.ReadTimeout("slow"))
    relay, http, waits = make(script)
    async with http:
        with pytest.raises(UpstreamTimeoutError) as caught:
            await relay.send("GET", "/files", request_id="r")
    assert len(script.requests) == 1 and waits == [] and status_of(caught.value) == 504


async def test_retry_after_is_honoured() -> None:
    script = Script(status(429, headers={"Retry-After": "3"}), httpx.Response(200))
    relay, http, waits = make(script)
    async with http:
        await (await relay.send("GET", "/files", request_id="r")).aclose()
    assert waits[0] >= 3.0


async def test_a_retry_after_beyond_the_longest_wait_is_relayed_at_once() -> None:
    script = Script(status(429, headers={"Retry-After": "60"}))
    relay, http, waits = make(script, max_delay_s=5.0)
    async with http:
        relayed = await relay.send("GET", "/files", request_id="r")
        await relayed.aclose()
    assert relayed.status_code == 429 and waits == [] and len(script.requests) == 1
    assert ("retry-after", "60") in relayed.headers


async def test_an_error_the_body_raises_passes_through_unchanged() -> None:
    class TooBig(Exception):
        pass

    async def refusing() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise TooBig

    script = Script(httpx.Response(200))
    relay, http, _ = make(script)
    async with http:
        with pytest.raises(TooBig):
            await relay.send("POST", "/files", body=refusing(), request_id="r")


async def test_a_cookie_the_provider_set_never_goes_out_again() -> None:
    script = Script(httpx.Response(200, headers={"set-cookie": "__cf_bm=tenant-a; Path=/"}),
                    httpx.Response(200))  # fmt: skip
    relay, http, _ = make(script)
    async with http:
        for _ in range(2):
            await (await relay.send("GET", "/files", request_id="r")).aclose()
    assert "cookie" not in script.requests[1].headers
