"""Lists answered item by item, end to end: the official `openai` SDK against `frugal serve` in
front of `frugal sim`. Embeddings are cached per text (exactly, never embedded by frugal), a list
of prompts per prompt (exactly and by meaning, shared with single prompts); only the misses go
upstream, in one call, and the answer comes back in the request's order with the usage of what
was sent."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from frugal.tenants import add_key
from tests.conftest import CANARY_KEY, Stack, StackFactory

TENANTS = ("acme", "globex")
WORDS = "river copper violin glacier orchid saddle lantern meteor pottery sonnet falcon".split()


@pytest.fixture(scope="module")
def keyed(
    make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Stack, dict[str, str]]:
    """A gateway with a client key for each of two tenants."""
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys = {tenant: add_key(path, tenant) for tenant in TENANTS}
    return make_stack(env={"FRUGAL_API_KEYS_FILE": str(path)}), keys


@pytest.fixture
async def clients(
    keyed: tuple[Stack, dict[str, str]],
) -> AsyncIterator[dict[str, openai.AsyncOpenAI]]:
    """An SDK client per tenant, through the gateway, and ``direct``: straight to the sim."""
    stack, keys = keyed
    made = {
        tenant: openai.AsyncOpenAI(base_url=stack.base_url, api_key=key, max_retries=0)
        for tenant, key in keys.items()
    }
    made["direct"] = openai.AsyncOpenAI(
        base_url=stack.sim.url + "/v1", api_key=CANARY_KEY, max_retries=0
    )
    yield made
    for client in made.values():
        await client.close()


def texts(count: int) -> list[str]:
    """Distinct texts no other test sends."""
    run = uuid.uuid4().hex[:8]
    rng = random.Random(run)
    return [f"{rng.choice(WORDS)} {rng.choice(WORDS)} passage {i} of {run}" for i in range(count)]


def sent(stack: Stack, path: str) -> dict[str, int]:
    return stack.sim_stats()["endpoints"].get("/v1" + path, {"calls": 0, "prompts": 0})


def words(items: list[str]) -> int:
    """The simulator's tokens: whitespace-separated words."""
    return sum(len(item.split()) for item in items)


@pytest.mark.parametrize("encoding", ["float", "base64", None], ids=["float", "base64", "sdk"])
async def test_a_list_of_100_with_60_cached_sends_the_other_40_and_answers_like_the_provider(
    keyed: tuple[Stack, dict[str, str]],
    clients: dict[str, openai.AsyncOpenAI],
    encoding: str | None,
) -> None:
    """``None``: the SDK's default, which asks for base64 and decodes it."""
    stack, _ = keyed
    client = clients["acme"]
    options = {} if encoding is None else {"encoding_format": encoding}
    given = texts(100)
    await client.embeddings.create(model="sim-embed", input=given[:60], **options)
    asked = given[:]
    random.Random(7).shuffle(asked)  # cached and new texts interleaved
    before = sent(stack, "/embeddings")
    raw = await client.embeddings.with_raw_response.create(
        model="sim-embed", input=asked, **options
    )
    after = sent(stack, "/embeddings")
    assert (after["calls"] - before["calls"], after["prompts"] - before["prompts"]) == (1, 40)
    assert raw.headers["x-frugal-cache"] == "partial"
    assert raw.headers["x-frugal-cache-items"] == "hits=60, misses=40"
    reply = raw.parse()
    assert [item.index for item in reply.data] == list(range(100))
    direct = await clients["direct"].embeddings.create(model="sim-embed", input=asked, **options)
    assert [item.embedding for item in reply.data] == [item.embedding for item in direct.data]
    new = [text for text in asked if text not in given[:60]]
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == words(new)


async def test_a_single_text_is_cached_as_an_item_of_any_list(
    keyed: tuple[Stack, dict[str, str]], clients: dict[str, openai.AsyncOpenAI]
) -> None:
    stack, _ = keyed
    client = clients["acme"]
    one, two = texts(2)
    await client.embeddings.create(model="sim-embed", input=one)
    before = sent(stack, "/embeddings")
    raw = await client.embeddings.with_raw_response.create(model="sim-embed", input=[two, one])
    assert sent(stack, "/embeddings")["prompts"] - before["prompts"] == 1
    assert raw.headers["x-frugal-cache-items"] == "hits=1, misses=1"
    alone = await client.embeddings.with_raw_response.create(model="sim-embed", input=two)
    assert alone.headers["x-frugal-cache"] == "hit"
    assert alone.parse().usage.prompt_tokens == 0  # nothing was sent for it
    direct = await clients["direct"].embeddings.create(model="sim-embed", input=two)
    assert alone.parse().data[0].embedding == direct.data[0].embedding


async def test_two_tenants_never_share_an_item(
    keyed: tuple[Stack, dict[str, str]], clients: dict[str, openai.AsyncOpenAI]
) -> None:
    stack, _ = keyed
    shared = texts(3)
    await clients["acme"].embeddings.create(model="sim-embed", input=shared)
    before = sent(stack, "/embeddings")
    theirs = await clients["globex"].embeddings.with_raw_response.create(
        model="sim-embed", input=shared
    )
    assert theirs.headers["x-frugal-cache"] == "miss"
    assert sent(stack, "/embeddings")["prompts"] - before["prompts"] == 3
    ours = await clients["acme"].embeddings.with_raw_response.create(
        model="sim-embed", input=shared
    )
    assert ours.headers["x-frugal-cache"] == "hit"
    assert ours.headers["x-frugal-cache-items"] == "hits=3, misses=0"


async def test_token_arrays_are_relayed_and_not_cached(
    keyed: tuple[Stack, dict[str, str]], clients: dict[str, openai.AsyncOpenAI]
) -> None:
    stack, _ = keyed
    for _ in range(2):
        raw = await clients["acme"].embeddings.with_raw_response.create(
            model="sim-embed", input=[[1, 2, 3], [4, 5]]
        )
        assert raw.headers["x-frugal-cache"] == "bypass"
        assert "x-frugal-cache-items" not in raw.headers


async def test_cache_control_applies_to_the_list(
    keyed: tuple[Stack, dict[str, str]], clients: dict[str, openai.AsyncOpenAI]
) -> None:
    client = clients["acme"]
    given = texts(2)

    async def embed(control: str | None = None) -> httpx.Headers:
        headers = {} if control is None else {"x-frugal-cache-control": control}
        raw = await client.embeddings.with_raw_response.create(
            model="sim-embed", input=given, extra_headers=headers
        )
        return raw.headers

    assert (await embed("no-store"))["x-frugal-cache"] == "miss"
    assert (await embed("no-cache"))["x-frugal-cache"] == "bypass"  # stored, though not read
    assert (await embed())["x-frugal-cache"] == "hit"
    assert (await embed("no-cache, no-store"))["x-frugal-cache"] == "bypass"


# -- completions with a list of prompts -----------------------------------------------------

RESET = "How do I reset my password?"
RESET_PARAPHRASE = "How can I reset my password?"


def expected_text(prompt: str) -> str:
    return f"[sim-small] Answer to: {prompt}"


async def test_a_list_of_prompts_some_cached_some_paraphrased_some_new(
    keyed: tuple[Stack, dict[str, str]], clients: dict[str, openai.AsyncOpenAI]
) -> None:
    stack, _ = keyed
    client = clients["globex"]
    cached, new_one, new_two = texts(3)
    for prompt in (cached, RESET):  # single prompts, cached as such
        await client.completions.create(model="sim-small", prompt=prompt)
    prompts = [new_one, cached, RESET_PARAPHRASE, new_two]
    before = sent(stack, "/completions")
    raw = await client.completions.with_raw_response.create(model="sim-small", prompt=prompts)
    after = sent(stack, "/completions")
    assert (after["calls"] - before["calls"], after["prompts"] - before["prompts"]) == (1, 2)
    assert raw.headers["x-frugal-cache"] == "partial"
    assert raw.headers["x-frugal-cache-items"] == "hits=2, misses=2"
    assert float(raw.headers["x-frugal-similarity"]) >= 0.9  # the paraphrase's
    reply = raw.parse()
    assert [(c.index, c.text) for c in reply.choices] == [
        (0, expected_text(new_one)),
        (1, expected_text(cached)),
        (2, expected_text(RESET)),  # the cached answer to the question it means
        (3, expected_text(new_two)),
    ]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == words([new_one, new_two])
    assert reply.usage.completion_tokens == words([expected_text(new_one), expected_text(new_two)])
    # Each new prompt's answer was stored as a single prompt's: asked alone, it is a hit.
    alone = await client.completions.with_raw_response.create(model="sim-small", prompt=new_two)
    assert alone.headers["x-frugal-cache"] == "hit"
    assert alone.parse().choices[0].text == expected_text(new_two)
    assert sent(stack, "/completions")["prompts"] == after["prompts"]


async def test_n_choices_per_prompt_are_indexed_as_openai_indexes_them(
    keyed: tuple[Stack, dict[str, str]], clients: dict[str, openai.AsyncOpenAI]
) -> None:
    stack, _ = keyed
    client = clients["globex"]
    prompts = texts(3)
    await client.completions.create(model="sim-small", prompt=prompts[1], n=2)
    before = sent(stack, "/completions")
    reply = await client.completions.create(model="sim-small", prompt=prompts, n=2)
    assert sent(stack, "/completions")["prompts"] - before["prompts"] == 2
    assert [choice.index for choice in reply.choices] == list(range(6))
    for choice in reply.choices:
        assert choice.text == expected_text(prompts[choice.index // 2])
    direct = await clients["direct"].completions.create(model="sim-small", prompt=prompts, n=2)
    assert [(c.index, c.text) for c in reply.choices] == [(c.index, c.text) for c in direct.choices]
    other_n = await client.completions.with_raw_response.create(
        model="sim-small", prompt=prompts, n=1
    )
    assert other_n.headers["x-frugal-cache"] == "miss"  # n is part of the scope


# -- what operators see ----------------------------------------------------------------------


def samples(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(stack.gateway.url + "/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_items_and_partial_lists_are_counted_honestly(make_stack: StackFactory) -> None:
    """A partial list is a request the cache was asked about and did not answer whole: it
    lowers the hit rate as a miss does, saves no call, and its cached items' tokens count as
    saved; per-item counters say how much of it the cache answered."""
    stack = make_stack()
    given = texts(10)
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0) as client:
        await client.embeddings.create(model="text-embedding-3-small", input=given[:4])  # miss
        await client.embeddings.create(model="text-embedding-3-small", input=given)  # partial
        await client.embeddings.create(model="text-embedding-3-small", input=given[:4])  # hit
    with stack.admin() as admin:
        summary = admin.get("/admin/stats").json()["summary"]["since_start"]
    assert {k: v for k, v in summary["outcomes"].items() if v} == {
        "miss": 1,
        "partial": 1,
        "hit_exact": 1,
    }
    assert summary["hit_rate"] == pytest.approx(1 / 3)
    assert summary["calls_saved"] == 1
    assert summary["items"] == {"hits": 8, "misses": 10, "hit_rate": pytest.approx(8 / 18)}
    saved = 2 * words(given[:4])  # the cached items' tokens, each time they were served
    assert summary["tokens_saved"]["prompt"] == saved
    found = samples(stack)
    endpoint = {"endpoint": "/embeddings"}
    for result, count in (("hit", 8), ("miss", 10)):
        labels = frozenset({**endpoint, "result": result}.items())
        assert found[("frugal_cache_items_total", labels)] == count
    who = {"tenant": "default", "endpoint": "/embeddings", "model": "text-embedding-3-small"}
    partial = frozenset({**who, "outcome": "partial"}.items())
    assert found[("frugal_requests_total", partial)] == 1
    tokens = frozenset({**who, "kind": "prompt"}.items())
    assert found[("frugal_tokens_saved_total", tokens)] == saved
    assert '"items": {"hits": 4, "misses": 6}' in stack.gateway.log()
