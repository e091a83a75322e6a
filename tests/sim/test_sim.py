"""The simulated provider, spoken to over real sockets with httpx and the official openai SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import struct
import time
from typing import Any

import httpx
import openai
import pytest

from frugal.sim import SimConfig, call_latency_s, completions
from frugal.sim.rate_limit import RequestsPerMinute
from tests.sim.serving import CHAT, USER_X, SimFactory, chat_body, events, sdk, stats

# -- answers ---------------------------------------------------------------------------------


async def test_chat_answers_the_last_user_message(url: str) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": t} for t in ("second", "one")]},
    ]
    async with httpx.AsyncClient(base_url=url) as client:
        first = (await client.post(CHAT, json={"model": "sim-large", "messages": messages})).json()
        again = (await client.post(CHAT, json={"model": "sim-large", "messages": messages})).json()

    assert first["object"] == "chat.completion" and first["id"].startswith("chatcmpl-")
    assert first["model"] == "sim-large"
    [choice] = first["choices"]
    assert choice["message"]["content"] == "[sim-large] Answer to: second one"
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert again["choices"][0]["message"] == choice["message"]
    # Tokens are words: 2 + 2 + 2 + 2 in the messages, 5 in the answer.
    assert first["usage"] == {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13}


async def test_chat_through_the_openai_sdk(url: str) -> None:
    async with sdk(url) as client:
        reply = await client.chat.completions.create(
            model="sim-small", messages=[{"role": "user", "content": "What is 2+2?"}]
        )
    assert reply.choices[0].message.content == "[sim-small] Answer to: What is 2+2?"
    assert reply.usage is not None and reply.usage.total_tokens == 3 + 6


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_cuts_the_answer_by_words(url: str, limit: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        reply = (await client.post(CHAT, json=chat_body("a long question", **{limit: 4}))).json()
    assert reply["choices"][0]["message"]["content"] == "[sim-small] Answer to: a"
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 4


async def test_streamed_chat_is_consumed_by_the_openai_sdk(url: str) -> None:
    async with sdk(url) as client:
        whole = await client.chat.completions.create(
            model="sim-small", messages=[{"role": "user", "content": "tell me a story"}]
        )
        stream = await client.chat.completions.create(
            model="sim-small",
            messages=[{"role": "user", "content": "tell me a story"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]

    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 7  # a word each
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


async def test_stream_without_include_usage_has_no_usage_chunk(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(CHAT, json=chat_body("hello", stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = events(response.text)
    assert payloads[-1] == "[DONE]"
    assert all("usage" not in p and len(p["choices"]) == 1 for p in payloads[:-1])
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }


async def test_completions_answer_each_prompt_of_a_list_by_index(url: str) -> None:
    prompts = ["alpha question", "beta question", "gamma question"]
    async with sdk(url) as client:
        reply = await client.completions.create(model="sim-small", prompt=prompts)
        twice = await client.completions.create(model="sim-small", prompt=prompts[:2], n=2)

    assert reply.object == "text_completion"
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    for choice, prompt in zip(reply.choices, prompts, strict=True):
        assert choice.text == f"[sim-small] Answer to: {prompt}"
    assert reply.usage is not None and reply.usage.prompt_tokens == 6
    # With n, choice p * n + j is the j-th answer to prompt p.
    assert [c.text.endswith(prompts[c.index // 2]) for c in twice.choices] == [True] * 4


async def test_completions_accept_token_prompts_and_stream(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        body = {"model": "m", "prompt": [[1, 2], [3]]}
        tokens = (await client.post("/v1/completions", json=body)).json()
        body = {"model": "m", "prompt": ["one", "two"], "stream": True}
        streamed = events((await client.post("/v1/completions", json=body)).text)

    assert [c["text"] for c in tokens["choices"]] == ["[m] Answer to: [1, 2]", "[m] Answer to: [3]"]
    texts = ["", ""]
    for payload in streamed[:-1]:
        assert payload["object"] == "text_completion"
        [choice] = payload["choices"]
        texts[choice["index"]] += choice["text"]
    assert texts == ["[m] Answer to: one", "[m] Answer to: two"]


async def test_embeddings_are_deterministic_unit_vectors_in_both_encodings(url: str) -> None:
    inputs = ["the cat sat", "a dog ran", "the cat sat"]
    async with sdk(url) as client:
        default = await client.embeddings.create(model="sim-embed", input=inputs)  # base64 wire
        floats = await client.embeddings.create(
            model="sim-embed", input=inputs, encoding_format="float"
        )
        small = await client.embeddings.create(model="sim-embed", input="the cat sat", dimensions=8)

    vectors = [item.embedding for item in default.data]
    assert [item.index for item in default.data] == [0, 1, 2]
    assert vectors == [item.embedding for item in floats.data]
    assert len(vectors[0]) == 16 and len(small.data[0].embedding) == 8
    assert vectors[0] == vectors[2] != vectors[1]
    for vector in [*vectors, small.data[0].embedding]:
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert default.usage.prompt_tokens == 9


async def test_base64_embeddings_are_little_endian_float32(url: str) -> None:
    body = {"model": "m", "input": "hello", "encoding_format": "base64"}
    async with httpx.AsyncClient(base_url=url) as client:
        encoded = (await client.post("/v1/embeddings", json=body)).json()["data"][0]["embedding"]
        floats = (await client.post("/v1/embeddings", json={"model": "m", "input": "hello"})).json()
    raw = base64.b64decode(encoded)
    assert list(struct.unpack("<16f", raw)) == floats["data"][0]["embedding"]


# -- stats -----------------------------------------------------------------------------------


async def test_stats_count_calls_prompts_tokens_and_reset_zeroes_them(url: str) -> None:
    async with sdk(url) as client:
        chat = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        completions = await client.completions.create(model="m", prompt=["a", "b", "c"])
        embeddings = await client.embeddings.create(model="m", input=["x", "y"])
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}  # not a call
        assert (await client.post(CHAT, json={"model": "m"})).status_code == 400
        counted = (await client.get("/sim/stats")).json()
        zeroed = (await client.post("/sim/reset")).json()

    usages = [chat.usage, completions.usage, embeddings.usage]
    assert [u.total_tokens for u in usages if u] == [
        counted["endpoints"][e]["tokens"] for e in (CHAT, "/v1/completions", "/v1/embeddings")
    ]
    assert chat.usage is not None
    chat_tokens = chat.usage.total_tokens
    assert counted["endpoints"][CHAT] == {"calls": 2, "prompts": 1, "tokens": chat_tokens}
    assert counted["endpoints"]["/v1/completions"]["prompts"] == 3
    assert counted["endpoints"]["/v1/embeddings"]["prompts"] == 2
    assert (counted["calls"], counted["prompts"]) == (4, 6)
    assert counted["tokens"] == sum(u.total_tokens for u in usages if u)
    assert counted["rejected"] == {
        "unauthorized": 0,
        "rate_limited": 0,
        "bad_request": 1,
        "errors": 0,
        "dropped": 0,
        "not_found": 0,
    }
    assert zeroed == stats(url)
    assert (zeroed["calls"], zeroed["prompts"], zeroed["tokens"]) == (0, 0, 0)
    assert set(zeroed["rejected"].values()) == {0}
    assert all(set(counts.values()) == {0} for counts in zeroed["endpoints"].values())


async def test_max_concurrency_queues_calls_instead_of_rejecting_them(make_sim: SimFactory) -> None:
    capped, open_ = make_sim(max_concurrency=1, call_latency_ms=50), make_sim(call_latency_ms=300)
    async with httpx.AsyncClient() as client:
        for url in (capped, open_):
            calls = [client.post(url + CHAT, json=chat_body(f"q{i}")) for i in range(4)]
            replies = await asyncio.gather(*calls)
            assert [r.status_code for r in replies] == [200] * 4
    assert stats(capped)["max_in_flight"] == 1
    assert stats(open_)["max_in_flight"] > 1  # the counter does see overlapping calls
    assert stats(capped)["in_flight"] == 0


def test_latency_model_charges_a_batch_for_its_longest_answer() -> None:
    config = SimConfig(call_latency_ms=900, item_latency_ms=100, token_latency_ms=10, slow_ms=5000)
    one = call_latency_s(config, n_items=1, max_output_tokens=20)
    assert one == pytest.approx(0.9 + 0.1 + 0.2)
    assert call_latency_s(config, n_items=5, max_output_tokens=20) == pytest.approx(one + 0.4)
    slow = call_latency_s(config, n_items=1, max_output_tokens=20, slow=True)
    assert slow == pytest.approx(one + 5)


# -- limits and faults -----------------------------------------------------------------------


async def test_rpm_answers_429_with_retry_after_until_reset(make_sim: SimFactory) -> None:
    url = make_sim(rpm=2)
    async with sdk(url) as client:
        for i in range(2):
            await client.completions.create(model="m", prompt=f"q{i}")
        with pytest.raises(openai.RateLimitError):
            await client.completions.create(model="m", prompt="one too many")
    async with httpx.AsyncClient(base_url=url) as client:
        refused = await client.post(CHAT, json=chat_body("again"))
        await client.post("/sim/reset")
        after_reset = await client.post(CHAT, json=chat_body("again"))

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert after_reset.status_code == 200
    assert stats(url)["rejected"]["rate_limited"] == 0  # zeroed by the reset


def test_rpm_window_slides() -> None:
    now = [100.0]
    window = RequestsPerMinute(2, clock=lambda: now[0])
    assert window.admit() is None
    now[0] = 130.0
    assert window.admit() is None
    now[0] = 150.5
    assert window.admit() == 10  # the first call leaves the window at 160 s
    now[0] = 160.0
    assert window.admit() is None
    assert window.admit() == 30


async def test_error_rate_answers_500(make_sim: SimFactory) -> None:
    url = make_sim(error_rate=1.0)
    async with sdk(url) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(model="m", messages=USER_X)
    assert raised.value.status_code == 500
    assert raised.value.body["type"] == "server_error"  # type: ignore[index]
    assert stats(url)["rejected"]["errors"] == 1


async def test_faults_change_while_running(make_sim: SimFactory) -> None:
    url = make_sim()
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.post(CHAT, json=chat_body("x"))).status_code == 200
        changed = await client.post("/sim/faults", json={"error_rate": 1.0})
        assert changed.json() == {
            "error_rate": 1.0,
            "slow_rate": 0.0,
            "slow_ms": 5000.0,
            "drop_rate": 0.0,
        }
        assert (await client.post(CHAT, json=chat_body("x"))).status_code == 500
        for bad in ({"error_rate": 2}, {"rpm": 5}, ["error_rate"]):
            refused = await client.post("/sim/faults", json=bad)
            assert refused.status_code == 400 and "message" in refused.json()["error"]
        await client.post("/sim/faults", json={"error_rate": 0})
        assert (await client.post(CHAT, json=chat_body("x"))).status_code == 200


async def test_seeded_faults_repeat(make_sim: SimFactory) -> None:
    runs = []
    for url in (make_sim(error_rate=0.5, seed=7), make_sim(error_rate=0.5, seed=7)):
        async with httpx.AsyncClient(base_url=url) as client:
            replies = [await client.post(CHAT, json=chat_body("x")) for _ in range(12)]
            runs.append([reply.status_code for reply in replies])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


async def test_drop_rate_closes_the_connection_mid_response(make_sim: SimFactory) -> None:
    url = make_sim(drop_rate=1.0)
    async with httpx.AsyncClient(base_url=url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(CHAT, json=chat_body("x"))
        received = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("POST", CHAT, json=chat_body("x", stream=True)) as response:
                async for line in response.aiter_lines():
                    received.append(line)
    assert any(line.startswith("data: {") for line in received)  # it broke mid-stream
    assert "data: [DONE]" not in received
    counted = stats(url)
    assert counted["rejected"]["dropped"] == 2 and counted["tokens"] == 0


async def test_a_client_leaving_a_stream_gives_its_slot_back(make_sim: SimFactory) -> None:
    # Each word takes 2 s: the slot can only be free within the deadline if the stream stopped.
    url = make_sim(max_concurrency=1, token_latency_ms=2000)
    async with httpx.AsyncClient(base_url=url) as client:
        async with client.stream("POST", CHAT, json=chat_body("x", stream=True)) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    break  # leaves after the opening chunk, closing the connection
        deadline = time.monotonic() + 5
        while (counted := (await client.get("/sim/stats")).json())["in_flight"]:
            assert time.monotonic() < deadline, "the slot was not given back"
            await asyncio.sleep(0.01)
    assert counted["max_in_flight"] == 1 and counted["tokens"] == 0


async def test_reject_containing_fails_the_whole_call(make_sim: SimFactory) -> None:
    url = make_sim(reject_containing="POISON")
    async with sdk(url) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.completions.create(model="m", prompt=["fine", "has POISON in it", "fine"])
        fine = await client.completions.create(model="m", prompt=["fine", "also fine"])
    assert raised.value.body["param"] == "prompt"  # type: ignore[index]
    assert len(fine.choices) == 2
    async with httpx.AsyncClient(base_url=url) as client:
        system = {"role": "system", "content": "POISON"}
        body = {"model": "m", "messages": [system, {"role": "user", "content": "hi"}]}
        assert (await client.post(CHAT, json=body)).status_code == 400  # any message counts
    assert stats(url)["rejected"]["bad_request"] == 2


async def test_require_api_key(make_sim: SimFactory) -> None:
    url = make_sim(require_api_key="sk-right")
    async with httpx.AsyncClient(base_url=url) as client:
        missing = await client.post(CHAT, json=chat_body("x"))
    async with sdk(url, key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="m", messages=USER_X)
    async with sdk(url, key="sk-right") as client:
        reply = await client.chat.completions.create(model="m", messages=USER_X)

    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert reply.choices[0].message.content == "[m] Answer to: x"
    assert stats(url)["rejected"]["unauthorized"] == 2


# -- malformed requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (CHAT, b"{not json", None),
        (CHAT, b"[1, 2]", None),
        (CHAT, {"messages": [{"role": "user", "content": "x"}]}, "model"),
        (CHAT, {"model": "m"}, "messages"),
        (CHAT, {"model": "m", "messages": []}, "messages"),
        (CHAT, {"model": "m", "messages": ["hi"]}, "messages[0]"),
        (CHAT, {"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (CHAT, chat_body("x", n="2"), "n"),
        (CHAT, chat_body("x", max_tokens=0), "max_tokens"),
        (CHAT, chat_body("x", stream="yes"), "stream"),
        (CHAT, chat_body("x", stream_options={"include_usage": 1}), "stream_options.include_usage"),
        ("/v1/completions", {"model": "m"}, "prompt"),
        ("/v1/completions", {"model": "m", "prompt": [1.5]}, "prompt"),
        ("/v1/embeddings", {"model": "m", "input": []}, "input"),
        ("/v1/embeddings", dict(model="m", input="x", encoding_format="hex"), "encoding_format"),
        ("/v1/embeddings", {"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
async def test_bad_bodies_get_an_openai_shaped_400(
    url: str, path: str, body: bytes | dict[str, Any], param: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(path, content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}
    assert stats(url)["calls"] == 1 and stats(url)["prompts"] == 0


async def test_unknown_routes_get_an_openai_shaped_404(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        missing = await client.post("/v1/nothing-here", json={})
        wrong_method = await client.get(CHAT)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert stats(url)["calls"] == 0


async def test_an_unexpected_failure_is_logged_with_its_traceback_and_answered_500(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(completions, "answer_body", boom)
    secret = "sk-sim-secret-0b7e"
    url = make_sim(require_api_key=secret)
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(base_url=url) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            response = await client.post(CHAT, json=chat_body("x"), headers=headers)

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and set(error) == {"message", "type", "param", "code"}
    [record] = [r for r in caplog.records if r.name.startswith("frugal.sim")]
    assert record.levelno == logging.ERROR and CHAT in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "Traceback" in caplog.text and "RuntimeError: boom" in caplog.text
    assert secret not in caplog.text


@pytest.mark.parametrize(
    ("field", "value"), [("error_rate", 1.5), ("rpm", 0), ("call_latency_ms", -1.0)]
)
def test_config_rejects_impossible_values_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SimConfig(**{field: value})
