"""Shadow mode through the real gateway: the upstream answers everything, and the report counts
what the cache would have done."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.test_observability import request_lines
from tests.conftest import ADMIN_KEY, Stack, StackFactory, run_frugal

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"
MONA_LISA = "Who painted the Mona Lisa?"
BREAD = "How do I bake bread?"
CAKE = "How do I bake a cake?"


def ask(stack: Stack, text: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(stack.base_url + "/chat/completions", json=body, timeout=30)
    response.raise_for_status()
    return response


@pytest.fixture(scope="module")
def shadow(make_stack: StackFactory) -> Stack:
    return make_stack(env={"FRUGAL_CACHE_MODE": "shadow"})


def test_the_upstream_answers_and_the_report_counts_would_be_hits(shadow: Stack) -> None:
    asked = [FRANCE, FRANCE, FRANCE_PARAPHRASE, MONA_LISA]
    responses = [ask(shadow, text) for text in asked]
    assert [r.headers["x-frugal-cache"] for r in responses] == ["shadow"] * 4
    assert shadow.sim_stats()["calls"] == 4  # nobody was served from the cache
    for response, text in zip(responses, asked, strict=True):
        assert text in response.json()["choices"][0]["message"]["content"]
    assert "x-frugal-similarity" not in responses[0].headers  # nothing cached yet
    paraphrase = float(responses[2].headers["x-frugal-similarity"])
    assert float(responses[1].headers["x-frugal-similarity"]) == 1.0
    assert "x-frugal-similarity" not in responses[3].headers  # nothing close to it

    with shadow.admin() as admin:
        report = admin.get("/admin/shadow/report").json()
        cache = admin.get("/admin/stats").json()["cache"]
    assert (report["requests"], report["compared"]) == (4, 2)
    for row in report["thresholds"]:
        would_be = [s for s in (1.0, paraphrase) if s >= row["threshold"]]
        assert row["would_be_hits"] == len(would_be)
        assert row["would_be_hit_rate"] == pytest.approx(len(would_be) / 4)
        # The exact repeat got the very same answer; the paraphrase's answer names its prompt.
        assert row["identical"] == 1
    # Looking up in shadow counts no hit and no miss.
    assert (cache["hits_exact"], cache["hits_semantic"], cache["misses"]) == (0, 0, 0)


def test_the_report_from_the_command_line(shadow: Stack) -> None:
    result = run_frugal(
        "shadow-report",
        "--url",
        shadow.gateway.url,
        env={"FRUGAL_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert "would-be hits" in result.stdout and "0.90" in result.stdout


def test_without_shadow_mode_there_is_no_report(stack: Stack) -> None:
    with stack.admin() as admin:
        assert admin.get("/admin/shadow/report").status_code == 404


def test_a_shadow_record_counts_its_call_and_no_cache_is_a_bypass_streamed_or_not(
    shadow: Stack,
) -> None:
    ask(shadow, MONA_LISA)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": FRANCE}]}
    no_cache = {"x-frugal-cache-control": "no-cache"}
    url = shadow.base_url + "/chat/completions"
    plain = httpx.post(url, json=body, headers=no_cache, timeout=30)
    streamed = httpx.post(url, json={**body, "stream": True}, headers=no_cache, timeout=30)
    assert plain.headers["x-frugal-cache"] == streamed.headers["x-frugal-cache"] == "bypass"
    lines = request_lines(shadow)
    shadowed = [line for line in lines if line["outcome"] == "shadow"]
    assert shadowed and {line["upstream_calls"] for line in shadowed} == {1}
    assert [line["outcome"] for line in lines[-2:]] == ["bypass", "bypass"]
    assert {line["upstream_calls"] for line in lines[-2:]} == {1}


def test_the_live_estimate_and_the_labelled_pairs_of_shadow_mode(make_stack: StackFactory) -> None:
    # Threshold 0.7, set: cake is a would-be hit for bread, whose answer is about something else.
    stack = make_stack(
        env={
            "FRUGAL_CACHE_MODE": "shadow",
            "FRUGAL_CACHE_THRESHOLD": "0.7",
            "FRUGAL_CACHE_MAX_WRONG_HIT_RATE": "0.1",
        }
    )
    for text in (FRANCE, FRANCE_PARAPHRASE, BREAD, CAKE):
        ask(stack, text)
    with stack.admin() as admin:
        report = admin.get("/admin/shadow/report").json()
        labels = admin.get("/admin/cache/labels").text.splitlines()
    # The paraphrase's answer is alike (not diverged), the cake's is not: one wrong of two.
    assert report["estimate"] == {
        "threshold": 0.7,
        "hits": 2,
        "wrong_hits": 1,
        "wrong_hit_rate": 0.5,
        "budget": 0.1,
        "over_budget": True,
    }
    # Only the clearly diverged comparison is a label (answers alike but not identical are
    # neither), with its answer similarity kept.
    (row,) = [json.loads(line) for line in labels]
    assert (row["a"], row["b"], row["label"], row["source"]) == (BREAD, CAKE, 0, "shadow")
    assert 0.7 <= row["similarity"] < 0.9 and 0 < row["answer_similarity"] < 0.9
    result = run_frugal(
        "shadow-report",
        "--url",
        stack.gateway.url,
        env={"FRUGAL_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert "live wrong-hit rate at the threshold in force (0.7): 50.0%" in result.stdout
    assert "ABOVE the budget of 10.0%" in result.stdout
