"""Bad input gets an OpenAI-shaped 4xx, never FastAPI's default 422, and reaches no provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.conftest import Stack, StackFactory


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway.url) as client:
        yield client


def assert_openai_error(response: httpx.Response, status: int, *, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ("/v1/chat/completions", {"model": "m"}, "messages"),
        ("/v1/chat/completions", {"model": "m", "messages": []}, "messages"),
        (
            "/v1/chat/completions",
            {"model": 7, "messages": [{"role": "user", "content": "hi"}]},
            "model",
        ),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
            "messages.0.role",
        ),
        ("/v1/chat/completions", {"model": "m", "messages": "hello"}, "messages"),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
            "stream",
        ),
        ("/v1/completions", {"model": "m"}, "prompt"),
        ("/v1/completions", {"model": "m", "prompt": {"text": "x"}}, "prompt"),
        ("/v1/embeddings", {"model": "m", "input": 3.5}, "input"),
        ("/v1/embeddings", {"input": "x"}, "model"),
        ("/process_prompt", {"prompt": "x"}, "text"),
        # Beyond 2,048 messages, prompts or inputs, a request is refused, not queued.
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user"}] * 2049}, "messages"),
        ("/v1/completions", {"model": "m", "prompt": ["x"] * 2049}, "prompt"),
        ("/v1/embeddings", {"model": "m", "input": ["x"] * 2049}, "input"),
    ],
)
async def test_schema_violations_are_400_naming_the_field(
    stack: Stack, http: httpx.AsyncClient, path: str, body: dict, param: str
) -> None:
    stack.reset_sim()
    error = assert_openai_error(await http.post(path, json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param or error["param"].startswith(param + ".")
    assert stack.sim_stats()["calls"] == 0


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"\xff\xfe", b'"just a string"'])
async def test_a_body_that_is_not_a_json_object_is_400(
    http: httpx.AsyncClient, content: bytes
) -> None:
    response = await http.post(
        "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert assert_openai_error(response, 400)["type"] == "invalid_request_error"


async def test_unknown_route_is_an_openai_shaped_404(http: httpx.AsyncClient) -> None:
    assert_openai_error(await http.post("/v1/nothing-here", json={}), 404)


async def test_wrong_method_is_an_openai_shaped_405(http: httpx.AsyncClient) -> None:
    assert_openai_error(await http.get("/v1/chat/completions"), 405)


async def test_a_body_over_the_limit_is_413(stack: Stack, http: httpx.AsyncClient) -> None:
    huge = "x" * (2 * 1024 * 1024)
    response = await http.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": huge}]}
    )
    assert assert_openai_error(response, 413)["code"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    response = await http.post("/v1/embeddings", content=chunks())
    assert_openai_error(response, 413)


async def test_bad_input_surfaces_as_the_sdks_bad_request_error(stack: Stack) -> None:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model="m", messages=[])
    assert caught.value.status_code == 400
    assert caught.value.param == "messages"


async def test_a_bad_request_does_not_harm_its_neighbours(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    good = {"model": "m", "messages": [{"role": "user", "content": "still fine?"}]}
    bad = {"model": "m", "messages": [{"role": "nobody"}]}
    responses = [await http.post("/v1/chat/completions", json=body) for body in (good, bad, good)]
    assert [r.status_code for r in responses] == [200, 400, 200]
    assert "still fine?" in responses[2].json()["choices"][0]["message"]["content"]


async def test_a_body_slower_than_the_timeout_is_408_and_holds_nobody_up(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(env={"FRUGAL_CLIENT_BODY_TIMEOUT_S": "0.5", "FRUGAL_BATCH_WINDOW_MS": "0"})
    host, port = stack.gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        "content-length: 200\r\n\r\n"
    )
    writer.write(head.encode() + b'{"model": "m", ')  # and then nothing more
    await writer.drain()
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "meanwhile"}]}
        assert (await http.post("/chat/completions", json=body)).status_code == 200
    status_line, body = await asyncio.wait_for(read_response(reader), timeout=10)
    writer.close()
    assert b" 408 " in status_line
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout"


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response's status line and body (by its content-length): the body may
    arrive in a later segment than the head."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *fields = head.rstrip(b"\r\n").split(b"\r\n")
    headers = dict(field.lower().split(b": ", 1) for field in fields)
    return status_line, await reader.readexactly(int(headers[b"content-length"]))
