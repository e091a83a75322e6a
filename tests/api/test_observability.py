"""Metrics, savings and request logs through the real gateway: after a scripted sequence of
hits, misses, a batch and an error, every count and every cent is exactly what it should be."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from frugal.observability.prices import PriceTable
from tests.conftest import CANARY_KEY, Stack, StackFactory

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"
BATCHED = ["Name a prime number.", "Name a colour.", "Name a river."]


def samples(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(stack.gateway.url + "/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def chat(stack: Stack, text: str, model: str = "gpt-4o-mini") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    response = httpx.post(stack.base_url + "/chat/completions", json=body, timeout=30)
    response.raise_for_status()
    return response


@pytest.fixture(scope="module")
def scripted(make_stack: StackFactory) -> tuple[Stack, dict]:
    """One miss, an exact hit, a semantic hit, three completions in one batch, one bad body."""
    stack = make_stack(env={"FRUGAL_BATCH_WINDOW_MS": "300", "FRUGAL_BATCH_MAX_SIZE": "5"})
    first = chat(stack, FRANCE)
    assert chat(stack, FRANCE).headers["x-frugal-cache"] == "hit"
    assert chat(stack, FRANCE_PARAPHRASE).headers["x-frugal-cache"] == "hit"

    async def batch() -> None:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            bodies = [{"model": "gpt-4o-mini", "prompt": prompt} for prompt in BATCHED]
            answers = await asyncio.gather(*(http.post("/completions", json=b) for b in bodies))
            assert all(answer.status_code == 200 for answer in answers)

    asyncio.run(batch())
    bad = httpx.post(stack.base_url + "/chat/completions", content=b"{not json")
    assert bad.status_code == 400
    return stack, first.json()["usage"]


def test_metrics_count_each_outcome_call_and_batch(scripted: tuple[Stack, dict]) -> None:
    stack, _ = scripted
    found = samples(stack)
    chat_labels = {"tenant": "default", "endpoint": "/chat/completions", "model": "gpt-4o-mini"}
    for outcome, count in {"miss": 1, "hit_exact": 1, "hit_semantic": 1}.items():
        assert value(found, "frugal_requests_total", **chat_labels, outcome=outcome) == count
    completions = {**chat_labels, "endpoint": "/completions"}
    assert value(found, "frugal_requests_total", **completions, outcome="miss") == 3
    errors = {**chat_labels, "model": "unknown", "outcome": "error"}
    assert value(found, "frugal_requests_total", **errors) == 1
    assert value(found, "frugal_upstream_calls_total", endpoint="/chat/completions") == 1
    assert value(found, "frugal_upstream_calls_total", endpoint="/completions") == 1
    assert value(found, "frugal_upstream_items_total", endpoint="/completions") == 3
    assert value(found, "frugal_batch_size_count", endpoint="/completions") == 1
    assert value(found, "frugal_batch_size_sum", endpoint="/completions") == 3
    assert value(found, "frugal_hit_similarity_count", endpoint="/chat/completions") == 1
    assert value(found, "frugal_cache_entries") == 4  # France, and the three completions
    assert value(found, "frugal_embedder_texts_total") >= 5
    hit_latency = {"endpoint": "/chat/completions", "outcome": "hit_exact"}
    assert value(found, "frugal_request_duration_seconds_count", **hit_latency) == 1


def test_savings_are_the_cached_answers_tokens_at_list_price(
    scripted: tuple[Stack, dict],
) -> None:
    stack, usage = scripted
    found = samples(stack)
    who = {"tenant": "default", "endpoint": "/chat/completions", "model": "gpt-4o-mini"}
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    assert value(found, "frugal_tokens_saved_total", **who, kind="prompt") == 2 * prompt
    assert value(found, "frugal_tokens_saved_total", **who, kind="completion") == 2 * completion
    # gpt-4o-mini: $0.15 in, $0.60 out per million tokens
    expected = 2 * (prompt * 0.15 + completion * 0.60) / 1e6
    assert value(found, "frugal_money_saved_usd_total", **who) == pytest.approx(expected)
    assert PriceTable().cost(
        "gpt-4o-mini", prompt_tokens=2 * prompt, completion_tokens=2 * completion
    ) == pytest.approx(expected)

    with stack.admin() as admin:
        summary = admin.get("/admin/stats").json()["summary"]["since_start"]
    assert summary["outcomes"] == {
        "hit_exact": 1,
        "hit_semantic": 1,
        "coalesced": 0,
        "miss": 4,
        "partial": 0,
        "bypass": 0,
        "shadow": 0,
        "error": 1,
    }
    assert summary["calls_saved"] == 2
    assert summary["hit_rate"] == pytest.approx(2 / 6)
    assert summary["tokens_saved"] == {
        "prompt": 2 * prompt,
        "completion": 2 * completion,
        "total": 2 * (prompt + completion),
    }
    assert summary["money_saved_usd"] == pytest.approx(expected, abs=1e-6)
    assert summary["latency_ms"]["hit"]["count"] == 2
    assert summary["latency_ms"]["miss"]["count"] == 4


def test_admin_stats_reports_the_batch_sizes_and_top_prompts(
    scripted: tuple[Stack, dict],
) -> None:
    stack, _ = scripted
    with stack.admin() as admin:
        stats = admin.get("/admin/stats").json()
    assert stats["batching"]["batch_sizes"] == {"3": 1}  # the completions (a chat goes at once)
    top = stats["summary"]["top_prompts"]
    assert [(t["prompt"], t["hits"]) for t in top] == [(FRANCE, 2)]
    misses = [m["prompt"] for m in stats["summary"]["recent_misses"]]
    assert sorted(misses) == sorted([FRANCE, *BATCHED])


def test_an_unpriced_model_counts_tokens_but_not_money(make_stack: StackFactory) -> None:
    stack = make_stack()
    chat(stack, FRANCE, model="sim-small")
    chat(stack, FRANCE, model="sim-small")
    with stack.admin() as admin:
        summary = admin.get("/admin/stats").json()["summary"]["since_start"]
    assert summary["unpriced_models"] == ["sim-small"]
    assert summary["money_saved_usd"] == 0
    assert summary["tokens_saved"]["total"] > 0
    found = samples(stack)
    who = {"tenant": "default", "endpoint": "/chat/completions", "model": "sim-small"}
    assert value(found, "frugal_unpriced_saved_requests_total", **who) == 1
    assert ("frugal_money_saved_usd_total", frozenset(who.items())) not in found


def test_a_price_table_in_the_settings_file_is_used(
    make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = tmp_path_factory.mktemp("config") / "frugal.yaml"
    config.write_text("prices:\n  sim-small: {input_per_million: 1000000, output_per_million: 0}\n")
    stack = make_stack(env={"FRUGAL_CONFIG_FILE": str(config)})
    usage = chat(stack, FRANCE, model="sim-small").json()["usage"]
    chat(stack, FRANCE, model="sim-small")
    with stack.admin() as admin:
        summary = admin.get("/admin/stats").json()["summary"]["since_start"]
    assert summary["money_saved_usd"] == pytest.approx(usage["prompt_tokens"] * 1.0)


def request_lines(stack: Stack) -> list[dict]:
    lines = [json.loads(line) for line in stack.gateway.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "frugal.requests"]


def test_one_json_line_per_request_without_prompts_or_keys(
    scripted: tuple[Stack, dict],
) -> None:
    stack, _ = scripted
    log = stack.gateway.log()
    assert CANARY_KEY not in log
    for text in [FRANCE, FRANCE_PARAPHRASE, *BATCHED]:
        assert text not in log
    lines = request_lines(stack)
    assert [line["outcome"] for line in lines] == [
        "miss",
        "hit_exact",
        "hit_semantic",
        *["miss"] * 3,
        "error",
    ]
    semantic = lines[2]
    assert semantic["similarity"] >= 0.9 and semantic["upstream_calls"] == 0
    assert semantic["request_id"].startswith("req_") and semantic["tenant"] == "default"
    assert set(semantic) >= {"endpoint", "model", "latency_ms", "status"}


def test_prompts_are_logged_only_when_asked(make_stack: StackFactory) -> None:
    stack = make_stack(env={"FRUGAL_LOG_PROMPTS": "true"})
    chat(stack, FRANCE)
    assert [line.get("prompt") for line in request_lines(stack)] == [FRANCE]
    assert CANARY_KEY not in stack.gateway.log()


def test_the_tenant_label_can_be_turned_off(make_stack: StackFactory) -> None:
    stack = make_stack(env={"FRUGAL_METRICS_TENANT_LABEL": "false"})
    chat(stack, FRANCE)
    found = samples(stack)
    labels = {"endpoint": "/chat/completions", "model": "gpt-4o-mini", "outcome": "miss"}
    assert value(found, "frugal_requests_total", **labels) == 1
