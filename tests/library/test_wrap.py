"""`frugal.wrap` around the official SDK clients, against a real `frugal sim` process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

import frugal
from tests.conftest import CANARY_KEY
from tests.library.conftest import Sim

CHAT = "/v1/chat/completions"
FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"
MONA_LISA = "Who painted the Mona Lisa?"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def threads_return_to(before: set[threading.Thread]) -> set[threading.Thread]:
    """The threads left once those ``close`` stopped have ended: the embedder's and the SQLite
    file's workers are told to stop and end on their own, unjoined, so they are given a while
    (a wait for a condition, not a measure of time). The caller's own event loop keeps its
    executor threads (``asyncio_N``): they are the loop's, not the client's."""
    deadline = time.monotonic() + 30
    while True:
        left = {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}
        if left <= before or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture
def client(sim: Sim, settings: dict[str, Any]) -> Iterator[openai.OpenAI]:
    with frugal.wrap(openai.OpenAI(base_url=sim.base_url, api_key=CANARY_KEY), **settings) as sdk:
        yield sdk


@pytest.fixture
async def aclient(sim: Sim, settings: dict[str, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    given = openai.AsyncOpenAI(base_url=sim.base_url, api_key=CANARY_KEY)
    async with frugal.wrap(given, **settings) as sdk:
        yield sdk


def ask(client: openai.OpenAI, text: str, **fields: Any) -> tuple[str, str]:
    """The answer's text and its ``x-frugal-cache``, asked with ``fields``."""
    fields = {"model": "sim-small", "messages": user(text), **fields}
    raw = client.chat.completions.with_raw_response.create(**fields)
    return raw.parse().choices[0].message.content or "", raw.headers["x-frugal-cache"]


@pytest.mark.parametrize("stream", [False, True])
def test_sync_a_paraphrase_is_a_hit_after_one_upstream_call(
    client: openai.OpenAI, sim: Sim, stream: bool
) -> None:
    texts, outcomes = [], []
    for text in (FRANCE, FRANCE_PARAPHRASE):
        raw = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=user(text), stream=stream
        )
        outcomes.append(raw.headers["x-frugal-cache"])
        if stream:
            chunks = list(raw.parse())
            assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
            texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        else:
            texts.append(raw.parse().choices[0].message.content)
    assert outcomes == ["miss", "hit"]
    assert texts[0] == texts[1] and FRANCE in texts[0]  # the simulator names what it answered
    assert sim.calls(CHAT) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_async_a_paraphrase_is_a_hit_after_one_upstream_call(
    aclient: openai.AsyncOpenAI, sim: Sim, stream: bool
) -> None:
    texts, outcomes = [], []
    for text in (FRANCE, FRANCE_PARAPHRASE):
        raw = await aclient.chat.completions.with_raw_response.create(
            model="sim-small", messages=user(text), stream=stream
        )
        outcomes.append(raw.headers["x-frugal-cache"])
        if stream:
            chunks = [chunk async for chunk in raw.parse()]
            texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        else:
            texts.append(raw.parse().choices[0].message.content)
    assert outcomes == ["miss", "hit"]
    assert texts[0] == texts[1] and FRANCE in texts[0]
    assert sim.calls(CHAT) == 1


def test_a_hit_is_the_fresh_answer_with_a_new_id_and_time(client: openai.OpenAI) -> None:
    """Chat, completions, Responses API and embeddings: the cached answer parses into the same
    typed object as the fresh one, equal to it but for the id and the time."""
    asked = user(FRANCE)
    chats = [client.chat.completions.create(model="sim-small", messages=asked) for _ in "ab"]
    assert isinstance(chats[1], openai.types.chat.ChatCompletion)
    assert chats[0].id != chats[1].id
    assert chats[0].model_dump(exclude={"id", "created"}) == chats[1].model_dump(
        exclude={"id", "created"}
    )
    completions = [client.completions.create(model="sim-small", prompt=MONA_LISA) for _ in "ab"]
    assert isinstance(completions[1], openai.types.Completion)
    assert completions[0].id != completions[1].id
    assert completions[0].model_dump(exclude={"id", "created"}) == completions[1].model_dump(
        exclude={"id", "created"}
    )
    responses = [client.responses.create(model="sim-small", input=FRANCE) for _ in "ab"]
    assert isinstance(responses[1], openai.types.responses.Response)
    assert responses[0].id != responses[1].id
    assert responses[0].model_dump(exclude={"id", "created_at"}) == responses[1].model_dump(
        exclude={"id", "created_at"}
    )
    raws = [client.embeddings.with_raw_response.create(model="e", input=FRANCE) for _ in "ab"]
    assert [raw.headers["x-frugal-cache"] for raw in raws] == ["miss", "hit"]
    embeddings = [raw.parse() for raw in raws]
    assert isinstance(embeddings[1], openai.types.CreateEmbeddingResponse)
    assert embeddings[0].data == embeddings[1].data


def test_the_scope_keeps_apart_what_changes_the_answer(client: openai.OpenAI, sim: Sim) -> None:
    """A system prompt, another model or earlier turns make another question."""
    ask(client, FRANCE)
    system = [{"role": "system", "content": "Answer in French."}, *user(FRANCE_PARAPHRASE)]
    earlier = [*user(MONA_LISA), {"role": "assistant", "content": "Leonardo."}, *user(FRANCE)]
    assert ask(client, FRANCE_PARAPHRASE, messages=system)[1] == "miss"
    assert ask(client, FRANCE_PARAPHRASE, model="sim-large")[1] == "miss"
    assert ask(client, FRANCE, messages=earlier)[1] == "miss"
    assert ask(client, FRANCE_PARAPHRASE)[1] == "hit"
    assert sim.calls(CHAT) == 4


def test_per_call_control_and_tenants(
    sim: Sim, client: openai.OpenAI, settings: dict[str, Any]
) -> None:
    """``x-frugal-cache-control`` works per call; another tenant has a partition of its own."""
    ask(client, FRANCE)
    no_cache = {"x-frugal-cache-control": "no-cache"}
    assert ask(client, FRANCE, extra_headers=no_cache)[1] == "bypass"
    other = openai.OpenAI(base_url=sim.base_url, api_key=CANARY_KEY)
    with frugal.wrap(other, tenant="acme", **settings) as acme:
        assert ask(acme, FRANCE)[1] == "miss"
        assert ask(acme, FRANCE_PARAPHRASE)[1] == "hit"
    assert sim.calls(CHAT) == 3
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, FRANCE, extra_headers={"x-frugal-cache-control": "ttl=forever"})
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "x-frugal-cache-control" in refused.value.message


def test_bad_input_is_the_sdks_own_error(client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="sim-small", messages=[])
    assert refused.value.status_code == 400
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "messages"
    assert sim.calls() == 0


def test_every_other_call_goes_to_the_provider(client: openai.OpenAI, sim: Sim) -> None:
    models = client.models.list()
    assert any(model.id == "sim-small" for model in models.data)
    moderated = client.moderations.create(input="hello")
    assert moderated.results
    assert sim.calls("/v1/models") == 1 and sim.calls("/v1/moderations") == 1


async def test_async_hits_other_endpoints_and_closes(aclient: openai.AsyncOpenAI, sim: Sim) -> None:
    first = await aclient.responses.create(model="sim-small", input=FRANCE, stream=True)
    events = [event.type async for event in first]
    again = await aclient.responses.with_raw_response.create(model="sim-small", input=FRANCE)
    assert events[-1] == "response.completed"
    assert again.headers["x-frugal-cache"] == "hit"
    assert sim.calls("/v1/responses") == 1


def test_no_thread_is_left_behind_after_a_thousand_sync_calls(
    sim: Sim, settings: dict[str, Any]
) -> None:
    before = set(threading.enumerate())
    client = frugal.wrap(openai.OpenAI(base_url=sim.base_url, api_key=CANARY_KEY), **settings)
    ask(client, FRANCE)
    during = set(threading.enumerate())
    for i in range(1000):
        ask(client, FRANCE_PARAPHRASE if i % 2 else FRANCE)
        if i % 10 == 0:
            list(
                client.chat.completions.create(
                    model="sim-small", messages=user(FRANCE), stream=True
                )
            )
    assert set(threading.enumerate()) == during  # no thread per call
    client.close()
    assert threads_return_to(before) <= before
    assert sim.calls(CHAT) == 1


async def test_an_async_client_leaves_no_task_or_thread_once_closed(
    sim: Sim, settings: dict[str, Any]
) -> None:
    threads = set(threading.enumerate())
    tasks = asyncio.all_tasks()
    given = openai.AsyncOpenAI(base_url=sim.base_url, api_key=CANARY_KEY)
    async with frugal.wrap(given, **settings) as client:
        for text in (FRANCE, FRANCE_PARAPHRASE, MONA_LISA):
            await client.chat.completions.create(model="sim-small", messages=user(text))
    assert asyncio.all_tasks() == tasks
    assert threads_return_to(threads) <= threads
    assert sim.calls(CHAT) == 2
