"""The Responses API through the gateway: the official `openai` SDK against `frugal serve` in
front of `frugal sim`, over real sockets, with the real embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.conftest import Stack

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The module's stack with an empty cache and zeroed simulator counts."""
    return stack.emptied()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0) as sdk:
        yield sdk


async def create(client: openai.AsyncOpenAI, text: str, **fields: Any) -> tuple[Any, str]:
    """The parsed response and its ``x-frugal-cache`` header."""
    raw = await client.responses.with_raw_response.create(model="sim-small", input=text, **fields)
    return raw.parse(), raw.headers["x-frugal-cache"]


async def test_a_paraphrase_is_answered_from_the_cache_with_one_upstream_call(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    first, first_outcome = await create(client, FRANCE)
    second, second_outcome = await create(client, FRANCE_PARAPHRASE)
    assert (first_outcome, second_outcome) == ("miss", "hit")
    assert FRANCE in first.output_text and second.output_text == first.output_text
    assert second.id != first.id and second.id.startswith("resp_frugal_")
    assert second.usage is not None and second.usage == first.usage
    assert fresh.sim_stats()["calls"] == 1


async def test_streams_are_the_typed_event_sequence_on_a_miss_and_on_a_hit(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    answers = []
    for text in (FRANCE, FRANCE_PARAPHRASE):
        async with client.responses.stream(model="sim-small", input=text) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.output_text.delta" in kinds
        assert final.usage is not None and final.usage.total_tokens > 0
        answers.append(final)
    assert answers[1].output_text == answers[0].output_text
    assert answers[1].id.startswith("resp_frugal_")
    # The streamed miss was stored from its completed event: a plain call is a hit too.
    plain, outcome = await create(client, FRANCE)
    assert outcome == "hit" and plain.output_text == answers[0].output_text
    assert fresh.sim_stats()["calls"] == 1


async def test_instructions_are_scope_two_calls_that_differ_only_there_never_share(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    _, terse = await create(client, FRANCE, instructions="Answer in one word.")
    _, verbose = await create(client, FRANCE, instructions="Answer at length.")
    _, again = await create(client, FRANCE, instructions="Answer in one word.")
    assert (terse, verbose, again) == ("miss", "miss", "hit")
    assert fresh.sim_stats()["calls"] == 2


async def test_state_at_the_provider_or_tools_acting_there_are_relayed_as_bypass(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    stored, stored_outcome = await create(client, FRANCE, store=True)
    follow_up, follow_up_outcome = await create(
        client, "And of Italy?", previous_response_id=stored.id
    )
    searching, searching_outcome = await create(client, FRANCE, tools=[{"type": "web_search"}])
    assert (stored_outcome, follow_up_outcome, searching_outcome) == ("bypass",) * 3
    assert "And of Italy?" in follow_up.output_text and FRANCE in searching.output_text
    again, outcome = await create(client, FRANCE, store=True)
    assert outcome == "bypass" and again.id != stored.id
    assert fresh.sim_stats()["calls"] == 4


async def test_a_stored_response_is_retrieved_and_deleted_through_the_gateway(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    stored, _ = await create(client, FRANCE, store=True)
    retrieved = await client.responses.retrieve(stored.id)
    assert retrieved.id == stored.id and retrieved.output_text == stored.output_text
    await client.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(stored.id)


async def test_an_id_minted_for_a_cache_hit_is_not_found_without_asking_the_provider(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    await create(client, FRANCE)
    hit, outcome = await create(client, FRANCE_PARAPHRASE)
    assert outcome == "hit"
    calls = fresh.sim_stats()["calls"]
    for attempt in (client.responses.retrieve, client.responses.delete):
        with pytest.raises(openai.NotFoundError) as raised:
            await attempt(hit.id)
        assert "cache" in raised.value.message
        assert raised.value.body["code"] == "not_found"  # type: ignore[index]
    assert fresh.sim_stats()["calls"] == calls


async def test_a_hit_can_be_reported_wrong_like_a_chat_hit(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    await create(client, FRANCE)
    raw = await client.responses.with_raw_response.create(
        model="sim-small", input=FRANCE_PARAPHRASE
    )
    assert raw.headers["x-frugal-cache"] == "hit"
    with fresh.admin() as admin:
        reported = admin.post(
            "/admin/cache/feedback", json={"request_id": raw.headers["x-request-id"]}
        )
    assert reported.status_code == 200, reported.text
    _, outcome = await create(client, FRANCE_PARAPHRASE)
    assert outcome == "miss"


async def test_a_stored_prompt_template_call_is_relayed_and_an_incomplete_one_refused(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    raw = await client.responses.with_raw_response.create(
        prompt={"id": "pmpt_capitals", "variables": {"country": "France"}}
    )
    assert raw.headers["x-frugal-cache"] == "bypass"
    assert "pmpt_capitals" in raw.parse().output_text
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(model="sim-small")
    assert "input" in refused.value.message
    assert fresh.sim_stats()["calls"] == 1
