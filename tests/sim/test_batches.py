"""``/v1/batches``: batches created, run, listed, cancelled and expired, through the openai SDK
over real sockets; their output and error files read back line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import BatchRequestCounts
from pydantic import BaseModel

from frugal.local.processes import start_frugal
from tests.sim.batching import ended, file_lines, request_line, submit
from tests.sim.serving import CHAT, SimFactory, chat_body, sdk, stats

COMPLETIONS, EMBEDDINGS, RESPONSES = "/v1/completions", "/v1/embeddings", "/v1/responses"
DAY_S = 24 * 3600


class Weather(BaseModel):
    city: str
    days: int


def weather_format() -> dict[str, Any]:
    schema = {"name": "weather", "schema": Weather.model_json_schema()}
    return {"type": "json_schema", "json_schema": schema}


def answer_parts(endpoint: str, body: dict[str, Any]) -> Any:
    """What a live answer and a batch line's answer share (ids and times aside)."""
    if endpoint == EMBEDDINGS:
        return body["data"], body["usage"], body["model"]
    if endpoint == RESPONSES:
        return [item["content"] for item in body["output"]], body["usage"], body["status"]
    return body["object"], body["choices"], body["usage"], body["model"]


async def test_a_chat_batch_answers_each_line_as_a_live_call_does(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=0)
    bodies = {
        "plain": chat_body("What is 2+2?"),
        "structured": chat_body("the weather", response_format=weather_format()),
        "cut": chat_body("a rather long question", max_tokens=3),
    }
    lines = [request_line(custom_id, CHAT, body) for custom_id, body in bodies.items()]
    async with sdk(url) as client:
        created = await submit(client, lines, CHAT, metadata={"job": "nightly"})
        batch = await ended(client, created.id)
        outputs = await file_lines(client, batch.output_file_id)
        output_file = await client.files.retrieve(batch.output_file_id or "")
    async with httpx.AsyncClient(base_url=url) as http:
        live = {name: (await http.post(CHAT, json=body)).json() for name, body in bodies.items()}

    assert created.id.startswith("batch_") and created.object == "batch"
    assert created.status == "validating" and created.endpoint == CHAT
    assert created.completion_window == "24h" and created.metadata == {"job": "nightly"}
    assert created.output_file_id is None and created.error_file_id is None
    assert created.expires_at == created.created_at + DAY_S
    assert batch.status == "completed" and batch.errors is None and batch.error_file_id is None
    assert batch.request_counts == BatchRequestCounts(total=3, completed=3, failed=0)
    assert batch.model == "sim-small" and output_file.purpose == "batch_output"
    assert None not in (batch.in_progress_at, batch.finalizing_at, batch.completed_at)
    assert (batch.failed_at, batch.expired_at, batch.cancelled_at) == (None, None, None)
    assert [line["custom_id"] for line in outputs] == list(bodies)  # input order kept
    for line in outputs:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        expected = live[line["custom_id"]]
        assert answer_parts(CHAT, response["body"]) == answer_parts(CHAT, expected)
    structured = outputs[1]["response"]["body"]["choices"][0]["message"]["content"]
    assert Weather.model_validate_json(structured).city == "[sim-small] Answer to: the weather"
    assert outputs[2]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    tokens = sum(answer["usage"]["total_tokens"] for answer in live.values())
    assert batch.usage is not None and batch.usage.total_tokens == tokens


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (COMPLETIONS, {"model": "sim-large", "prompt": ["one prompt", "another one"]}),
        (EMBEDDINGS, {"model": "sim-embed", "input": ["embed me", "me too"], "dimensions": 8}),
        (RESPONSES, {"model": "sim-small", "input": "a response", "instructions": "be brief"}),
    ],
)
async def test_each_batchable_endpoint_answers_as_its_live_route(
    make_sim: SimFactory, endpoint: str, body: dict[str, Any]
) -> None:
    url = make_sim(batch_delay_s=0)
    async with sdk(url) as client:
        created = await submit(client, [request_line("only", endpoint, body)], endpoint)
        batch = await ended(client, created.id)
        [line] = await file_lines(client, batch.output_file_id)
    async with httpx.AsyncClient(base_url=url) as http:
        live = (await http.post(endpoint, json=body)).json()

    assert batch.status == "completed" and batch.model == body["model"]
    assert line["custom_id"] == "only" and line["response"]["status_code"] == 200
    assert answer_parts(endpoint, line["response"]["body"]) == answer_parts(endpoint, live)
    counted = stats(url)["batch_endpoints"][endpoint]
    assert counted == {"lines": 1, "tokens": live["usage"]["total_tokens"]}


async def test_a_refused_line_fails_alone_into_the_error_file(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=0, reject_containing="forbidden")
    lines = [
        request_line("fine", CHAT, chat_body("a fine question")),
        request_line("rejected", CHAT, chat_body("a forbidden question")),
        request_line("streamed", CHAT, chat_body("stream it", stream=True)),
        request_line("no messages", CHAT, {"model": "sim-small"}),
        request_line("also fine", CHAT, chat_body("another question")),
    ]
    async with sdk(url) as client:
        batch = await ended(client, (await submit(client, lines, CHAT)).id)
        outputs = await file_lines(client, batch.output_file_id)
        errors = await file_lines(client, batch.error_file_id)
    async with httpx.AsyncClient(base_url=url) as http:
        live_rejection = (await http.post(CHAT, json=chat_body("a forbidden question"))).json()
        live_invalid = (await http.post(CHAT, json={"model": "sim-small"})).json()

    assert batch.status == "completed"
    assert batch.request_counts == BatchRequestCounts(total=5, completed=2, failed=3)
    assert [line["custom_id"] for line in outputs] == ["fine", "also fine"]
    assert [line["custom_id"] for line in errors] == ["rejected", "streamed", "no messages"]
    for line in errors:
        assert line["error"] is None and line["response"]["status_code"] == 400
    rejected, streamed, invalid = (line["response"]["body"]["error"] for line in errors)
    assert rejected == live_rejection["error"] and rejected["code"] == "content_rejected"
    assert streamed["param"] == "stream"
    assert invalid == live_invalid["error"] and invalid["param"] == "messages"


async def test_a_malformed_file_fails_the_batch_naming_each_line(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=0)
    good = chat_body("a question")
    lines = [
        request_line("first", CHAT, good),
        request_line("second", CHAT, good),
        '{"custom_id": "third", "method": "POST", "url": ',  # cut short
        request_line("first", CHAT, good),
        request_line("fifth", "/v1/embeddings", good),
        request_line("sixth", CHAT, good, method="GET"),
        json.dumps({"custom_id": "seventh", "method": "POST", "url": CHAT}),
        request_line("eighth", CHAT, {**good, "model": "sim-large"}),
        request_line("", CHAT, good),
    ]
    async with sdk(url) as client:
        batch = await ended(client, (await submit(client, lines, CHAT)).id)

    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.in_progress_at is None and batch.output_file_id is None
    assert batch.error_file_id is None
    assert batch.errors is not None and batch.errors.object == "list"
    found = [(e.line, e.code, e.param) for e in batch.errors.data or []]
    assert found == [
        (3, "invalid_json_line", None),
        (4, "duplicate_custom_id", "custom_id"),
        (5, "invalid_url", "url"),
        (6, "invalid_method", "method"),
        (7, "missing_required_parameter", "body"),
        (8, "mismatched_model", "body.model"),
        (9, "invalid_value", "custom_id"),
    ]
    assert all(e.message for e in batch.errors.data or [])
    assert stats(url)["batch_lines"] == 0


async def test_an_empty_file_fails_the_batch(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=0)
    async with sdk(url) as client:
        batch = await ended(client, (await submit(client, [], EMBEDDINGS)).id)
    assert batch.status == "failed" and batch.errors is not None
    assert [(e.code, e.line) for e in batch.errors.data or []] == [("empty_file", None)]


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"endpoint": "/v1/moderations/x"}, 400, "endpoint"),
        ({"completion_window": "1h"}, 400, "completion_window"),
        ({"input_file_id": "file-nothere"}, 404, "input_file_id"),
        ({"metadata": {"key": 1}}, 400, "metadata"),
        ({"endpoint": None}, 400, "endpoint"),
    ],
)
async def test_a_bad_create_gets_an_openai_error_naming_the_field(
    url: str, change: dict[str, Any], status: int, param: str
) -> None:
    async with sdk(url) as client:
        uploaded = await client.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
    body = {"input_file_id": uploaded.id, "endpoint": CHAT, "completion_window": "24h", **change}
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/v1/batches", json={k: v for k, v in body.items() if v})

    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert stats(url)["batches"] == 0


async def test_an_input_file_of_another_purpose_is_refused(url: str) -> None:
    async with sdk(url) as client:
        uploaded = await client.files.create(file=("in.jsonl", b"{}\n"), purpose="fine-tune")
        with pytest.raises(openai.BadRequestError) as refused:
            await client.batches.create(
                input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
            )
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.batches.retrieve("batch_nothere")
    assert refused.value.param == "input_file_id" and "purpose" in refused.value.message
    assert "batch_nothere" in unknown.value.message


async def test_batches_are_listed_newest_first_a_page_at_a_time(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=3600)
    line = request_line("one", EMBEDDINGS, {"model": "sim-embed", "input": "x"})
    async with sdk(url) as client:
        ids = [(await submit(client, [line], EMBEDDINGS)).id for _ in range(3)]
        listed = [batch.id async for batch in client.batches.list()]
        first = await client.batches.list(limit=2)
        rest = await client.batches.list(limit=2, after=first.data[-1].id)

    assert listed == ids[::-1]
    assert [batch.id for batch in first.data] == ids[:0:-1] and first.has_more
    assert [batch.id for batch in rest.data] == ids[:1] and not rest.has_more
    # Validated or not yet, each is waiting out the delay.
    assert all(batch.status in ("validating", "in_progress") for batch in first.data)


async def test_a_cancelled_batch_answers_nothing_and_lists_what_it_did_not_run(
    make_sim: SimFactory,
) -> None:
    url = make_sim(batch_delay_s=3600)
    lines = [request_line(f"q{i}", CHAT, chat_body(f"question {i}")) for i in range(3)]
    async with sdk(url) as client:
        created = await submit(client, lines, CHAT)
        cancelling = await client.batches.cancel(created.id)
        batch = await ended(client, created.id)
        errors = await file_lines(client, batch.error_file_id)
        with pytest.raises(openai.ConflictError) as conflict:
            await client.batches.cancel(created.id)

    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    assert batch.output_file_id is None and batch.completed_at is None
    assert batch.request_counts == BatchRequestCounts(total=3, completed=0, failed=3)
    assert [line["custom_id"] for line in errors] == ["q0", "q1", "q2"]
    assert all(line["response"] is None for line in errors)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert "cancelled" in conflict.value.message
    assert stats(url)["batch_lines"] == 0


async def test_a_completed_batch_cannot_be_cancelled(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=0)
    line = request_line("one", COMPLETIONS, {"model": "sim-small", "prompt": "x"})
    async with sdk(url) as client:
        batch = await ended(client, (await submit(client, [line], COMPLETIONS)).id)
        with pytest.raises(openai.ConflictError) as conflict:
            await client.batches.cancel(batch.id)
        after = await client.batches.retrieve(batch.id)
    assert batch.status == "completed" and after.status == "completed"
    assert conflict.value.body == {
        "message": "Cannot cancel a batch with status 'completed'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_a_batch_past_its_deadline_expires_with_its_lines_in_the_error_file(
    tmp_path: Path,
) -> None:
    # The real command, so that its flags are what is tested: the delay outlasts the deadline.
    args = ["sim", "--call-latency-ms", "0", "--item-latency-ms", "0"]
    sim = start_frugal(
        [*args, "--batch-delay-s", "5", "--batch-expire-after-s", "0.2"], log_dir=tmp_path
    )
    try:
        lines = [
            request_line(f"q{i}", RESPONSES, {"model": "m", "input": str(i)}) for i in range(2)
        ]
        async with sdk(sim.url) as client:
            created = await submit(client, lines, RESPONSES)
            batch = await ended(client, created.id)
            errors = await file_lines(client, batch.error_file_id)
        counted = stats(sim.url)
    finally:
        sim.stop()

    assert created.expires_at is not None and created.expires_at - created.created_at <= 1
    assert batch.status == "expired" and batch.expired_at is not None
    assert batch.output_file_id is None and batch.completed_at is None
    assert batch.request_counts == BatchRequestCounts(total=2, completed=0, failed=2)
    assert [line["custom_id"] for line in errors] == ["q0", "q1"]
    message = "This request could not be executed before the completion window expired."
    for line in errors:
        assert line["response"] is None
        assert line["error"] == {"code": "batch_expired", "message": message}
    assert counted["batch_lines"] == 0 and counted["batches"] == 1


async def test_batch_lines_are_counted_apart_from_calls(make_sim: SimFactory) -> None:
    url = make_sim(batch_delay_s=0, reject_containing="forbidden")
    lines = [
        request_line("a", CHAT, chat_body("one question")),
        request_line("b", CHAT, chat_body("a forbidden one")),
    ]
    async with sdk(url) as client:
        batch = await ended(client, (await submit(client, lines, CHAT)).id)
        [output] = await file_lines(client, batch.output_file_id)
    counted = stats(url)
    httpx.post(url + "/sim/reset").raise_for_status()
    zeroed = stats(url)

    tokens = output["response"]["body"]["usage"]["total_tokens"]
    assert counted["batches"] == 1 and counted["batch_lines"] == 2
    assert counted["batch_tokens"] == tokens and counted["tokens"] == 0
    assert counted["batch_endpoints"][CHAT] == {"lines": 2, "tokens": tokens}
    # The lines are not calls; the batch routes are (and the file upload and download).
    assert counted["endpoints"][CHAT] == {"calls": 0, "prompts": 0, "tokens": 0}
    batch_calls = counted["endpoints"]["/v1/batches"]["calls"]
    assert batch_calls >= 2 and counted["calls"] == batch_calls + 2
    assert counted["rejected"]["bad_request"] == 0
    assert (zeroed["batches"], zeroed["batch_lines"], zeroed["batch_tokens"]) == (0, 0, 0)
