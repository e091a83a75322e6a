"""Batches sent to the provider's Batch API (`frugal sim`), with the official SDK."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from openai import NotFoundError, OpenAI

from frugal.tenants import add_key
from tests.conftest import Stack, StackFactory
from tests.deferred.batch_client import (
    chat_line,
    lines_of,
    run,
    start,
    until_ended,
    until_status,
)

PROVIDER = {"FRUGAL_BATCH_API_MODE": "provider", "FRUGAL_BATCH_API_POLL_S": "0.2"}
SIM = ["--batch-delay-s", "0.5", "--reject-containing", "POISON"]

# Questions made of unrelated words: no two of them (n < 130) reach a similarity of 0.9, and
# each paraphrase (one more word) is above 0.99 with its own question and nearest to it.
WORDS = (
    "volcano glacier comet tide bee octopus desert coral lightning rainbow penguin meteor cave "
    "river forest geyser eclipse aurora earthquake hurricane violin tractor pepper castle "
    "satellite cactus lantern harbour saxophone avalanche tulip compass dragonfly marble pyramid "
    "kettle walrus canyon orchid telescope bamboo falcon lagoon chess copper ferry quartz "
    "mushroom tornado yogurt anchor jungle piano spider ladder carnival blizzard lemon oyster "
    "pharaoh rocket vineyard zebra bakery monsoon igloo kangaroo sapphire trumpet"
).split()


def question(n: int) -> str:
    a, b, c = random.Random(n).sample(WORDS, 3)
    return f"How is a {a} related to a {b} and a {c}?"


def paraphrase(n: int) -> str:
    a, b, c = random.Random(n).sample(WORDS, 3)
    return f"How is a {a} related to a {b} and to a {c}?"


@pytest.fixture(scope="module")
def provider(make_stack: StackFactory) -> Stack:
    return make_stack(sim_args=SIM, env=PROVIDER)


def client_of(stack: Stack, key: str = "unused") -> OpenAI:
    return OpenAI(base_url=stack.base_url, api_key=key, max_retries=0)


def test_only_the_unique_misses_reach_the_provider_as_one_batch(provider: Stack) -> None:
    """200 lines: 20 already cached, 40 exact repeats and 30 paraphrases of earlier lines, and
    110 new questions: the provider sees one batch of the 110."""
    client = client_of(provider)
    for n in range(20):  # cache 20 answers through the live routes
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question(110 + n)}]
        )
    lines = [chat_line(f"new-{n}", question(n)) for n in range(110)]
    lines += [chat_line(f"cached-{n}", question(110 + n)) for n in range(20)]
    lines += [chat_line(f"repeat-{n}", question(n)) for n in range(40)]
    lines += [chat_line(f"para-{n}", paraphrase(40 + n)) for n in range(30)]
    provider.reset_sim()
    batch = run(client, lines)
    assert batch.status == "completed"
    stats = provider.sim_stats()
    assert (stats["batches"], stats["batch_lines"], stats["prompts"]) == (1, 110, 0)
    out = lines_of(client, batch.output_file_id)
    assert [line["custom_id"] for line in out] == [line["custom_id"] for line in lines]
    assert len({line["id"] for line in out}) == 200
    assert len({line["response"]["body"]["id"] for line in out}) == 200
    answers = {
        line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"]
        for line in out
    }
    assert all(answers[f"repeat-{n}"] == answers[f"new-{n}"] for n in range(40))
    assert all(answers[f"para-{n}"] == answers[f"new-{40 + n}"] for n in range(30))
    metadata = batch.metadata or {}
    assert metadata["frugal_cache_hits"] == "20"
    assert metadata["frugal_duplicates_folded"] == "70"
    assert metadata["frugal_lines_sent"] == "110"
    # Sent at the batch price, against every line live: well under half.
    assert float(metadata["frugal_cost_usd"]) < float(metadata["frugal_live_cost_usd"]) / 2


def test_a_poisoned_line_fails_alone_into_the_error_file(provider: Stack) -> None:
    client = client_of(provider)
    lines = [chat_line(f"ok-{n}", question(500 + n)) for n in range(5)]
    lines.insert(3, chat_line("bad", "POISON, said the witch"))
    batch = run(client, lines)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (5, 1)
    errors = lines_of(client, batch.error_file_id)
    assert [line["custom_id"] for line in errors] == ["bad"]
    assert [line["custom_id"] for line in lines_of(client, batch.output_file_id)] == [
        f"ok-{n}" for n in range(5)
    ]


def test_cancel_cancels_the_provider_batch(make_stack: StackFactory) -> None:
    stack = make_stack(sim_args=["--batch-delay-s", "30"], env=PROVIDER)
    client = client_of(stack)
    batch = start(client, [chat_line(f"c{n}", question(700 + n)) for n in range(6)])
    until_status(client, batch.id, "in_progress")
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status == "cancelling"
    ended = until_ended(client, batch.id)
    assert ended.status == "cancelled"
    assert {line["error"]["code"] for line in lines_of(client, ended.error_file_id)} == {
        "batch_cancelled"
    }


def test_an_expired_provider_batch_reports_its_lines_as_expired(make_stack: StackFactory) -> None:
    stack = make_stack(
        sim_args=["--batch-delay-s", "5", "--batch-expire-after-s", "0.3"], env=PROVIDER
    )
    client = client_of(stack)
    batch = run(client, [chat_line(f"e{n}", question(800 + n)) for n in range(3)])
    assert batch.status == "expired"
    errors = lines_of(client, batch.error_file_id)
    assert [line["error"]["code"] for line in errors] == ["batch_expired"] * 3


def test_a_gateway_restart_mid_batch_resumes_and_completes_it(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = make_stack(sim_args=["--batch-delay-s", "3"], env=PROVIDER, data_dir=data)
    client = client_of(first)
    lines = [chat_line(f"r{n}", question(900 + n)) for n in range(8)]
    batch = start(client, lines)
    until_status(client, batch.id, "in_progress")
    deadline = time.monotonic() + 60
    while first.sim_stats()["batches"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the provider's batch has been made
    first.gateway.stop()
    second = make_stack(env=PROVIDER, data_dir=data, sim=first.sim)
    client = client_of(second)
    ended = until_ended(client, batch.id)
    assert ended.status == "completed"
    assert [line["custom_id"] for line in lines_of(client, ended.output_file_id)] == [
        f"r{n}" for n in range(8)
    ]
    assert second.sim_stats()["batches"] == 1  # polled by its saved id, never sent again


def test_tenants_never_share_batches_files_or_cached_answers(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.yaml"
    acme, globex = add_key(keys_file, "acme"), add_key(keys_file, "globex")
    stack = make_stack(sim_args=SIM, env={**PROVIDER, "FRUGAL_API_KEYS_FILE": str(keys_file)})
    as_acme, as_globex = client_of(stack, acme), client_of(stack, globex)
    as_acme.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Acme's secret question?"}]
    )
    stack.reset_sim()
    batch = run(as_globex, [chat_line("g", "Acme's secret question?")])
    assert (batch.metadata or {})["frugal_cache_hits"] == "0"
    assert stack.sim_stats()["batch_lines"] == 1
    with pytest.raises(NotFoundError):
        as_acme.batches.retrieve(batch.id)
    with pytest.raises(NotFoundError):
        as_acme.files.retrieve(batch.input_file_id)
    with pytest.raises(NotFoundError):
        as_acme.files.content(str(batch.output_file_id))
    with pytest.raises(NotFoundError):
        as_acme.batches.cancel(batch.id)
    assert batch.id not in [item.id for item in as_acme.batches.list().data]
    mine = run(as_acme, [chat_line("a", "Acme's secret question?")])
    assert (mine.metadata or {})["frugal_cache_hits"] == "1"
