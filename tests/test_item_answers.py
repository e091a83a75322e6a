"""A list call's answer cut into single answers and a list answer put together from them:
OpenAI's indexing (``p * n + k``), each prompt's own choices, usage that adds up."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.errors import UpstreamAnswerError
from frugal.item_answers import assemble_list_answer, no_usage, split_list_answer
from frugal.provider import Endpoint


def completion_call(texts: list[str], n: int, seed: int, usage: dict[str, int]) -> dict[str, Any]:
    """A provider's answer to ``texts`` with ``n`` choices each, listed in a shuffled order."""
    choices = [
        {"index": p * n + k, "text": f"answer {k} to {text}", "finish_reason": "stop"}
        for p, text in enumerate(texts)
        for k in range(n)
    ]
    random.Random(seed).shuffle(choices)
    return {"id": "cmpl-call", "object": "text_completion", "model": "m", "choices": choices,
            "usage": usage}  # fmt: skip


texts_strategy = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8)
usage_strategy = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 500), "completion_tokens": st.integers(0, 500)}
).map(lambda u: {**u, "total_tokens": u["prompt_tokens"] + u["completion_tokens"]})


@given(texts=texts_strategy, n=st.integers(1, 3), seed=st.integers(0, 99), usage=usage_strategy)
def test_each_prompt_gets_its_own_n_choices_and_the_usage_adds_up(
    texts: list[str], n: int, seed: int, usage: dict[str, int]
) -> None:
    singles = split_list_answer(
        Endpoint.COMPLETIONS, completion_call(texts, n, seed, usage), texts, per_item=n
    )
    assert len(singles) == len(texts)
    for text, single in zip(texts, singles, strict=True):
        assert [c["index"] for c in single["choices"]] == list(range(n))
        assert [c["text"] for c in single["choices"]] == [f"answer {k} to {text}" for k in range(n)]
        assert single["usage"]["total_tokens"] == (
            single["usage"]["prompt_tokens"] + single["usage"]["completion_tokens"]
        )
    for part in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert sum(single["usage"][part] for single in singles) == usage[part]


@given(
    texts=texts_strategy,
    n=st.integers(1, 3),
    seed=st.integers(0, 99),
    usage=usage_strategy,
    cached=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_a_list_answer_is_indexed_as_openai_indexes_it(
    texts: list[str], n: int, seed: int, usage: dict[str, int], cached: list[bool]
) -> None:
    """Some prompts answered from the cache (single answers of their own), the others by one
    call: choice ``k`` of the prompt at position ``p`` is at ``index == p * n + k``, and the
    usage is the call's alone."""
    sent = [text for text, from_cache in zip(texts, cached, strict=False) if not from_cache]
    answered = iter(
        split_list_answer(
            Endpoint.COMPLETIONS, completion_call(sent, n, seed, usage), sent, per_item=n
        )
        if sent
        else []
    )
    singles = [
        {"choices": [{"index": k, "text": f"answer {k} to {text}"} for k in range(n)],
         "usage": {"prompt_tokens": 7, "completion_tokens": 7, "total_tokens": 14}}
        if from_cache
        else next(answered)
        for text, from_cache in zip(texts, cached, strict=False)
    ]  # fmt: skip
    head = {"id": "cmpl-x", "object": "text_completion", "model": "m"}
    answer = assemble_list_answer(Endpoint.COMPLETIONS, singles, head=head, usage=usage)
    assert [c["index"] for c in answer["choices"]] == list(range(len(texts) * n))
    for choice in answer["choices"]:
        p, k = divmod(choice["index"], n)
        assert choice["text"] == f"answer {k} to {texts[p]}"
    assert answer["usage"] == usage
    assert {key: answer[key] for key in head} == head


def test_embeddings_are_indexed_by_position_and_their_usage_split_by_length() -> None:
    call = {
        "object": "list",
        "model": "e",
        "data": [{"object": "embedding", "index": i, "embedding": [float(i)]} for i in (1, 0)],
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }
    first, second = split_list_answer(Endpoint.EMBEDDINGS, call, ["aa", "bbbb"], per_item=1)
    assert first["data"] == [{"object": "embedding", "index": 0, "embedding": [0.0]}]
    assert second["data"] == [{"object": "embedding", "index": 0, "embedding": [1.0]}]
    assert (first["usage"], second["usage"]) == (
        {"prompt_tokens": 3, "total_tokens": 3},
        {"prompt_tokens": 6, "total_tokens": 6},
    )
    cached = {"data": [{"object": "embedding", "index": 0, "embedding": [9.0]}]}
    answer = assemble_list_answer(
        Endpoint.EMBEDDINGS,
        [second, cached, first],
        head={"object": "list", "model": "e"},
        usage=no_usage(Endpoint.EMBEDDINGS),
    )
    assert [(d["index"], d["embedding"]) for d in answer["data"]] == [
        (0, [1.0]), (1, [9.0]), (2, [0.0]),
    ]  # fmt: skip
    assert answer["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


@pytest.mark.parametrize(
    "indexes",
    [[0], [0, 1, 2], [0, 0], [1, 2], [0, "1"]],
    ids=["short", "long", "twice", "gap", "not-a-number"],
)
def test_an_answer_that_cannot_be_told_apart_is_an_upstream_error(indexes: list) -> None:
    call = {"choices": [{"index": i, "text": "x"} for i in indexes]}
    with pytest.raises(UpstreamAnswerError):
        split_list_answer(Endpoint.COMPLETIONS, call, ["a", "b"], per_item=1)


def test_an_answer_without_usage_gives_single_answers_without_it() -> None:
    call = {"choices": [{"index": 0, "text": "x"}, {"index": 1, "text": "y"}]}
    singles = split_list_answer(Endpoint.COMPLETIONS, call, ["a", "b"], per_item=1)
    assert all("usage" not in single for single in singles)
    answer = assemble_list_answer(Endpoint.COMPLETIONS, singles, head={}, usage=None)
    assert "usage" not in answer and [c["text"] for c in answer["choices"]] == ["x", "y"]
