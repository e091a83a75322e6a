"""The Batch API through the gateway, live mode, with the official SDK against `frugal sim`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import NotFoundError, OpenAI

from tests.conftest import Stack, StackFactory
from tests.deferred.batch_client import chat_line, lines_of, run, start, until_ended, upload

LIVE = {
    "FRUGAL_BATCH_API_MODE": "live",
    "FRUGAL_BATCH_API_POLL_S": "0.2",
    "FRUGAL_BATCH_API_LIVE_RPS": "500",
}


@pytest.fixture(scope="module")
def live(make_stack: StackFactory) -> Stack:
    return make_stack(sim_args=["--reject-containing", "POISON"], env=LIVE)


_OPENED: list[OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every client a test made is closed after it (their sockets would outlive the test)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def client_of(stack: Stack, key: str = "unused") -> OpenAI:
    client = OpenAI(base_url=stack.base_url, api_key=key, max_retries=0)
    _OPENED.append(client)
    return client


def test_a_live_batch_answers_every_line_in_order_folding_repeats_and_paraphrases(
    live: Stack,
) -> None:
    client = client_of(live)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Name a prime above 90."}]
    )
    lines = [
        chat_line("a", "What is the capital of Peru?"),
        chat_line("b", "Name a prime above 90."),  # cached
        chat_line("c", "What is the capital of Peru?"),  # exact repeat of a
        chat_line("d", "What's the capital of Peru?"),  # paraphrase of a
        chat_line("e", "How many legs does a spider have?"),
    ]
    live.reset_sim()
    batch = run(client, lines)
    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.request_counts.completed == 5
    out = lines_of(client, batch.output_file_id)
    assert [line["custom_id"] for line in out] == ["a", "b", "c", "d", "e"]
    assert len({line["id"] for line in out}) == 5
    assert len({line["response"]["body"]["id"] for line in out}) == 5  # each its own answer
    texts = [line["response"]["body"]["choices"][0]["message"]["content"] for line in out]
    assert texts[0] == texts[2] == texts[3]
    assert live.sim_stats()["prompts"] == 2  # a and e only
    metadata = batch.metadata or {}
    assert metadata["frugal_cache_hits"] == "1"
    assert metadata["frugal_duplicates_folded"] == "2"
    assert metadata["frugal_paraphrases_folded"] == "1"
    assert metadata["frugal_lines_sent"] == "2"
    assert float(metadata["frugal_live_cost_usd"]) > float(metadata["frugal_cost_usd"]) > 0


def test_answers_of_a_batch_are_cached_for_live_requests(live: Stack) -> None:
    client = client_of(live)
    run(client, [chat_line("x", "Which ocean is the largest one?")])
    raw = httpx.post(
        live.base_url + "/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Which ocean is the largest one?"}],
        },
    )
    assert raw.headers["x-frugal-cache"] == "hit"


def test_a_poisoned_line_fails_alone_into_the_error_file(live: Stack) -> None:
    client = client_of(live)
    lines = [chat_line(f"ok-{n}", f"Tell me fact number {n} about owls.") for n in range(4)]
    lines.insert(2, chat_line("bad", "POISON in this question"))
    batch = run(client, lines)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 1)
    errors = lines_of(client, batch.error_file_id)
    assert [line["custom_id"] for line in errors] == ["bad"]
    assert errors[0]["response"]["status_code"] == 400
    good = lines_of(client, batch.output_file_id)
    assert [line["custom_id"] for line in good] == ["ok-0", "ok-1", "ok-2", "ok-3"]


def test_a_bad_file_fails_the_batch_naming_each_bad_line(live: Stack) -> None:
    client = client_of(live)
    good = chat_line("one", "Hello there?")
    text = b"\n".join(
        [
            httpx.Request("POST", "http://x", json=good).content,
            b"{not json",
            httpx.Request(
                "POST", "http://x", json={**good, "custom_id": "get", "method": "GET"}
            ).content,
            httpx.Request("POST", "http://x", json=good).content,  # custom_id repeated
            httpx.Request(
                "POST", "http://x", json={**good, "custom_id": "two", "body": {"model": "m"}}
            ).content,
            httpx.Request(
                "POST", "http://x", json={**good, "custom_id": "3", "url": "/v1/embeddings"}
            ).content,
        ]
    )
    batch = until_ended(client, start(client, text).id)
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    found = {(error.line, error.code) for error in batch.errors.data}
    assert found == {
        (2, "invalid_json_line"),
        (3, "invalid_method"),
        (4, "duplicate_custom_id"),
        (5, "invalid_body"),
        (6, "mismatched_url"),
    }
    assert batch.output_file_id is None


def test_an_unknown_endpoint_or_window_is_refused_at_once(live: Stack) -> None:
    client = client_of(live)
    file_id = upload(client, [chat_line("a", "Hi?")])
    with pytest.raises(Exception) as refused:
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/images",  # type: ignore[arg-type]
            completion_window="24h",
        )
    assert getattr(refused.value, "status_code", None) == 400


def test_files_and_batches_are_listed_read_and_deleted(live: Stack) -> None:
    client = client_of(live)
    first = run(client, [chat_line("a", "What colour is the sky at noon?")])
    second = run(client, [chat_line("a", "What colour is grass in spring?")])
    listed = client.batches.list(limit=1)
    assert [batch.id for batch in listed.data] == [second.id]
    assert listed.has_more
    after = client.batches.list(after=second.id, limit=100)
    assert after.data[0].id == first.id
    record = client.files.retrieve(first.input_file_id)
    assert (record.purpose, record.filename) == ("batch", "batch.jsonl")
    assert client.files.delete(first.input_file_id).deleted
    with pytest.raises(NotFoundError):
        client.files.retrieve(first.input_file_id)


def test_other_purposes_are_relayed_to_the_provider_unchanged(live: Stack) -> None:
    client = client_of(live)
    payload = b"fine-tune bytes " * 1000
    created = client.files.create(file=("train.jsonl", payload), purpose="fine-tune")
    assert not created.id.startswith("file-frugal-")
    held = httpx.get(f"{live.sim.url}/sim/files/{created.id}").json()
    assert held["bytes"] == len(payload)
    assert client.files.content(created.id).content == payload


def test_cancel_stops_a_live_batch(make_stack: StackFactory) -> None:
    slow = make_stack(env={**LIVE, "FRUGAL_BATCH_API_LIVE_RPS": "2"})
    client = client_of(slow)
    lines = [chat_line(f"q{n}", f"Question {n} about rivers?") for n in range(40)]
    batch = start(client, lines)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    ended = until_ended(client, batch.id)
    assert ended.status == "cancelled"
    assert ended.request_counts is not None
    assert ended.request_counts.completed + ended.request_counts.failed == 40
    assert ended.request_counts.failed > 0
    errors = lines_of(client, ended.error_file_id)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}


def test_batch_figures_reach_the_admin_stats_and_prometheus(make_stack: StackFactory) -> None:
    stack = make_stack(env=LIVE)
    client = client_of(stack)
    run(client, [chat_line("a", "Why is the sea salty?"), chat_line("b", "Why is the sea salty?")])
    with stack.admin() as admin:
        section = admin.get("/admin/stats").json()["batches"]
    assert section["finished_since_start"] == {"completed": 1}
    assert section["lines_since_start"] == {"hit": 0, "folded": 1, "sent": 1, "failed": 0}
    assert section["live_cost_usd_since_start"] > section["cost_usd_since_start"] > 0
    exposition = httpx.get(stack.gateway.url + "/metrics").text
    assert 'frugal_batch_lines_total{result="folded"} 1.0' in exposition
    assert 'frugal_batch_lines_total{result="sent"} 1.0' in exposition
    assert 'frugal_batches_total{status="completed"} 1.0' in exposition
