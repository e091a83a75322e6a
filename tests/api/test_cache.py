"""The semantic cache through the real gateway, real model, real sockets and the `openai` SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, Stack, StackFactory, redis_env

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"
MONA_LISA = "Who painted the Mona Lisa?"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def ask(stack: Stack, text: str, *, control: str | None = None, **fields: Any) -> httpx.Response:
    body = {"model": "sim-small", "messages": user(text), **fields}
    headers = {"x-frugal-cache-control": control} if control else {}
    response = httpx.post(stack.base_url + "/chat/completions", json=body, headers=headers)
    response.raise_for_status()
    return response


def content(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


@pytest.fixture(scope="module", params=["embedded", "redis"])
def stack(request: pytest.FixtureRequest, make_stack: StackFactory) -> Stack:
    """The gateway with each store in turn: every test that takes it runs on both."""
    if request.param == "redis":
        return make_stack(env=redis_env(request.getfixturevalue("redis_server").url))
    return make_stack()


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The module's stack with an empty cache and zeroed simulator counts."""
    return stack.emptied()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0) as sdk:
        yield sdk


async def test_a_paraphrase_is_a_hit_and_another_question_a_miss(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    first = await client.chat.completions.with_raw_response.create(
        model="sim-small", messages=user(FRANCE)
    )
    second = await client.chat.completions.with_raw_response.create(
        model="sim-small", messages=user(FRANCE_PARAPHRASE)
    )
    third = await client.chat.completions.with_raw_response.create(
        model="sim-small", messages=user(MONA_LISA)
    )
    assert first.headers["x-frugal-cache"] == "miss"
    assert second.headers["x-frugal-cache"] == "hit"
    assert float(second.headers["x-frugal-similarity"]) >= 0.9
    assert third.headers["x-frugal-cache"] == "miss"
    assert fresh.sim_stats()["calls"] == 2
    hit = second.parse()
    # The cached answer is the first prompt's answer, as a new response with the original usage.
    assert FRANCE in hit.choices[0].message.content
    assert hit.id != first.parse().id
    assert hit.usage == first.parse().usage
    assert MONA_LISA in third.parse().choices[0].message.content


def test_an_exact_repeat_is_a_hit_with_similarity_one(fresh: Stack) -> None:
    ask(fresh, FRANCE)
    repeat = ask(fresh, "  What is the   capital of France? ")
    assert repeat.headers["x-frugal-cache"] == "hit"
    assert repeat.headers["x-frugal-similarity"] == "1.0000"


@pytest.mark.parametrize(
    "change",
    [
        {"model": "sim-large"},
        {
            "messages": [
                {"role": "system", "content": "Answer in French."},
                *user(FRANCE_PARAPHRASE),
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                *user(FRANCE_PARAPHRASE),
            ]
        },
        {"temperature": 1.5},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "lookup", "parameters": {"type": "object"}},
                }
            ]
        },
        {"response_format": {"type": "json_object"}},
    ],
)
def test_a_change_of_scope_is_a_miss(fresh: Stack, change: dict[str, Any]) -> None:
    ask(fresh, FRANCE)
    body = {"model": "sim-small", "messages": user(FRANCE_PARAPHRASE), **change}
    response = httpx.post(fresh.base_url + "/chat/completions", json=body)
    assert response.headers["x-frugal-cache"] == "miss"
    assert fresh.sim_stats()["calls"] == 2


def test_ttl_per_request_and_expiry(fresh: Stack) -> None:
    ask(fresh, FRANCE, control="ttl=1")
    assert ask(fresh, FRANCE).headers["x-frugal-cache"] == "hit"
    time.sleep(1.2)
    assert ask(fresh, FRANCE).headers["x-frugal-cache"] == "miss"


def test_ttl_zero_stores_nothing(fresh: Stack) -> None:
    ask(fresh, MONA_LISA, control="ttl=0")
    assert ask(fresh, MONA_LISA).headers["x-frugal-cache"] == "miss"


def test_no_cache_and_no_store(fresh: Stack) -> None:
    ask(fresh, FRANCE)
    assert ask(fresh, FRANCE, control="no-cache").headers["x-frugal-cache"] == "bypass"
    ask(fresh, MONA_LISA, control="no-store")
    assert ask(fresh, MONA_LISA).headers["x-frugal-cache"] == "miss"
    assert fresh.sim_stats()["calls"] == 4


def test_threshold_override(fresh: Stack) -> None:
    ask(fresh, FRANCE)
    assert (
        ask(fresh, FRANCE_PARAPHRASE, control="threshold=1.0").headers["x-frugal-cache"] == "miss"
    )
    # threshold=0.0 is a real value, not "unset" (which would mean 0.9): a loosely related
    # question in the same scope now hits.
    loose = ask(fresh, "What is the capital of Spain?", control="threshold=0.0")
    assert loose.headers["x-frugal-cache"] == "hit"
    assert 0.0 <= float(loose.headers["x-frugal-similarity"]) < 0.9


def test_a_bad_control_header_is_400(fresh: Stack) -> None:
    response = httpx.post(
        fresh.base_url + "/chat/completions",
        json={"model": "m", "messages": user(FRANCE)},
        headers={"x-frugal-cache-control": "threshold=2"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-frugal-cache-control"
    assert fresh.sim_stats()["calls"] == 0


async def test_streamed_miss_then_streamed_and_plain_hits(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    async def streamed(text: str) -> tuple[str, str, Any]:
        raw = await client.chat.completions.with_raw_response.create(
            model="sim-small",
            messages=user(text),
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in raw.parse():
            usage = chunk.usage or usage
            pieces.extend(choice.delta.content or "" for choice in chunk.choices)
        return raw.headers["x-frugal-cache"], "".join(pieces), usage

    outcome, first_text, first_usage = await streamed(FRANCE)
    assert outcome == "miss" and FRANCE in first_text
    outcome, text, usage = await streamed(FRANCE_PARAPHRASE)
    assert (outcome, text, usage) == ("hit", first_text, first_usage)
    plain = await client.chat.completions.with_raw_response.create(
        model="sim-small", messages=user(FRANCE_PARAPHRASE)
    )
    assert plain.headers["x-frugal-cache"] == "hit"
    assert plain.parse().choices[0].message.content == first_text
    assert plain.parse().usage == first_usage
    assert fresh.sim_stats()["calls"] == 1


async def test_a_streamed_miss_without_usage_gets_no_usage_chunk(
    fresh: Stack, client: openai.AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="sim-small", messages=user(MONA_LISA), stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    # ...while the stored answer kept the usage the gateway asked for.
    plain = ask(fresh, MONA_LISA)
    assert plain.headers["x-frugal-cache"] == "hit"
    assert plain.json()["usage"]["total_tokens"] > 0


def test_process_prompt_goes_through_the_cache(fresh: Stack) -> None:
    first = httpx.post(fresh.gateway.url + "/process_prompt", json={"text": FRANCE})
    second = httpx.post(fresh.gateway.url + "/process_prompt", json={"text": FRANCE_PARAPHRASE})
    assert (first.headers["x-frugal-cache"], second.headers["x-frugal-cache"]) == ("miss", "hit")
    assert second.json()["response"] == first.json()["response"]


def test_answers_cut_short_are_not_stored(fresh: Stack) -> None:
    ask(fresh, FRANCE, max_tokens=2)  # finish_reason "length"
    assert ask(fresh, FRANCE, max_tokens=2).headers["x-frugal-cache"] == "miss"


def test_completions_are_cached_too(fresh: Stack) -> None:
    def complete(prompt: str) -> httpx.Response:
        return httpx.post(fresh.base_url + "/completions", json={"model": "m", "prompt": prompt})

    complete(FRANCE)
    hit = complete(FRANCE_PARAPHRASE)
    assert hit.headers["x-frugal-cache"] == "hit"
    assert FRANCE in hit.json()["choices"][0]["text"]


# -- bound, restart, mode --------------------------------------------------------------------


def test_lru_bound_evicts_the_least_recently_used(make_stack: StackFactory) -> None:
    stack = make_stack(env={"FRUGAL_CACHE_MAX_ENTRIES": "3"})
    questions = [
        "How tall is Mount Everest?",
        "Who wrote Pride and Prejudice?",
        "What is the boiling point of water?",
        "How many moons does Jupiter have?",
        "What is the speed of light?",
    ]
    for question in questions:
        ask(stack, question)
    assert ask(stack, questions[2]).headers["x-frugal-cache"] == "hit"  # now most recently used
    ask(stack, "Which language is spoken in Brazil?")  # evicts questions[3]
    outcomes = {q: ask(stack, q, control="no-store") for q in questions}
    for question, response in outcomes.items():
        assert question in content(response), "every answer is its own prompt's, hit or miss"
    hits = [q for q, r in outcomes.items() if r.headers["x-frugal-cache"] == "hit"]
    assert hits == [questions[2], questions[4]]
    with stack.admin() as admin:
        assert admin.get("/admin/stats").json()["cache"]["entries"] == 3


def test_entries_survive_a_restart(make_stack: StackFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = make_stack(data_dir=data)
    ask(before, FRANCE)
    before.gateway.stop()
    after = make_stack(data_dir=data)
    response = ask(after, FRANCE_PARAPHRASE)
    assert response.headers["x-frugal-cache"] == "hit"
    assert FRANCE in content(response)
    assert after.sim_stats()["calls"] == 0


def test_cache_mode_off_bypasses(make_stack: StackFactory) -> None:
    stack = make_stack(env={"FRUGAL_CACHE_MODE": "off"})
    ask(stack, FRANCE)
    assert ask(stack, FRANCE).headers["x-frugal-cache"] == "bypass"
    assert stack.sim_stats()["calls"] == 2


# -- admin ---------------------------------------------------------------------------------------


def test_admin_routes_need_the_key(fresh: Stack, make_stack: StackFactory) -> None:
    assert httpx.get(fresh.gateway.url + "/admin/stats").status_code == 401
    wrong = httpx.get(fresh.gateway.url + "/admin/stats", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    without = make_stack(env={"FRUGAL_ADMIN_KEY": ""})
    response = httpx.get(
        without.gateway.url + "/admin/stats", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 404


def test_invalidate_by_id_scope_similarity_and_flush(fresh: Stack) -> None:
    ask(fresh, FRANCE)
    ask(fresh, MONA_LISA)
    ask(fresh, "How tall is Mount Everest?", model="sim-large")
    with fresh.admin() as admin:
        listed = admin.get("/admin/cache/entries").json()["data"]
        assert {e["prompt"] for e in listed} == {FRANCE, MONA_LISA, "How tall is Mount Everest?"}
        by_prompt = {e["prompt"]: e for e in listed}

        removed = admin.post("/admin/cache/invalidate", json={"ids": [by_prompt[MONA_LISA]["id"]]})
        assert removed.json() == {"invalidated": 1}
        assert ask(fresh, MONA_LISA, control="no-store").headers["x-frugal-cache"] == "miss"

        scope = by_prompt["How tall is Mount Everest?"]["scope"]
        assert admin.post("/admin/cache/invalidate", json={"scope": scope}).json() == {
            "invalidated": 1
        }

        similar = admin.post(
            "/admin/cache/invalidate", json={"prompt": FRANCE_PARAPHRASE, "threshold": 0.9}
        )
        assert similar.json() == {"invalidated": 1}
        assert admin.get("/admin/cache/entries").json()["data"] == []

        ask(fresh, FRANCE)
        assert admin.delete("/admin/cache").json() == {"flushed": 1}
        bad = admin.post("/admin/cache/invalidate", json={"ids": ["x"], "scope": "y"})
        assert bad.status_code == 400 and "error" in bad.json()


def test_invalidate_by_tenant(fresh: Stack) -> None:
    ask(fresh, FRANCE)
    with fresh.admin() as admin:
        assert admin.post("/admin/cache/invalidate", json={"tenant": "default"}).json() == {
            "invalidated": 1
        }
        assert admin.post("/admin/cache/invalidate", json={"tenant": "other"}).json() == {
            "invalidated": 0
        }


def test_admin_stats_count_hits_and_misses(fresh: Stack) -> None:
    with fresh.admin() as admin:
        before = admin.get("/admin/stats").json()
        ask(fresh, FRANCE)
        ask(fresh, FRANCE)
        ask(fresh, FRANCE_PARAPHRASE)
        after = admin.get("/admin/stats").json()
    # The exact hit needs no embedding; the miss and the paraphrase do.
    assert after["embedder"]["texts"] - before["embedder"]["texts"] == 2
    assert after["embedder"]["seconds"] > before["embedder"]["seconds"]
    before, after = before["cache"], after["cache"]
    assert after["misses"] - before["misses"] == 1
    assert after["hits_exact"] - before["hits_exact"] == 1
    assert after["hits_semantic"] - before["hits_semantic"] == 1
    assert after["entries"] == 1
    assert after["write_failures"] == 0 and "unsaved" in after  # the embedded store's file


# -- the command line ------------------------------------------------------------------------


def frugal_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frugal", "cache", *args, "--url", stack.gateway.url],
        env={**os.environ, "FRUGAL_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cache_commands_mirror_the_admin_routes(fresh: Stack) -> None:
    ask(fresh, FRANCE)
    ask(fresh, MONA_LISA)
    stats = frugal_cli(fresh, "stats")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["cache"]["entries"] == 2
    listed = frugal_cli(fresh, "list")
    assert FRANCE in listed.stdout and MONA_LISA in listed.stdout
    removed = frugal_cli(fresh, "invalidate", "--prompt", FRANCE_PARAPHRASE, "--threshold", "0.9")
    assert removed.stdout.strip() == "invalidated 1 entries"
    assert frugal_cli(fresh, "flush", "--yes").stdout.strip() == "flushed 1 entries"


def test_the_cache_commands_report_a_wrong_key(fresh: Stack) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugal",
            "cache",
            "stats",
            "--url",
            fresh.gateway.url,
            "--admin-key",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "401" in result.stderr
