"""Scope rules: two prompts share an answer only when everything else is equal."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.cache.scope import cache_key, item_keys, normalise
from frugal.provider import Endpoint

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Who is the president of France?"},
        {"role": "assistant", "content": "Emmanuel Macron."},
        {"role": "user", "content": "How old is he?"},
    ],
    "temperature": 0.2,
}


def key(body: dict[str, Any], partition: str = "acme", **kwargs: Any):
    return cache_key(Endpoint.CHAT, body, partition=partition, **kwargs)


def changed(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    target = body
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return body


def test_only_the_last_user_message_is_the_question() -> None:
    found = key(BASE)
    assert found is not None
    assert found.prompt == "How old is he?"
    assert found.labels == {
        "partition": "acme",
        "endpoint": "/chat/completions",
        "model": "gpt-4o-mini",
    }


def test_the_question_itself_is_not_part_of_the_scope() -> None:
    other = changed("messages.3.content", "What age is he?")
    assert key(other).scope == key(BASE).scope
    assert key(other).prompt_hash != key(BASE).prompt_hash


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("model", "gpt-4o"),
        ("messages.0.content", "You are verbose."),  # system prompt
        ("messages.1.content", "Who is the president of the USA?"),  # an earlier turn
        ("messages.2.content", "Donald Trump."),
        ("temperature", 0.9),
        ("top_p", 0.5),
        ("max_tokens", 10),
        ("stop", ["\n"]),
        ("seed", 7),
        ("n", 2),
        ("logit_bias", {"50256": -100}),
        ("presence_penalty", 1.0),
        ("frequency_penalty", 1.0),
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "none"),
        ("response_format", {"type": "json_object"}),
        ("some_future_field", True),  # unknown fields may change the answer
        ("messages.3.name", "alice"),
    ],
)
def test_each_scope_field_changed_alone_prevents_sharing(path: str, value: Any) -> None:
    assert key(changed(path, value)).scope != key(BASE).scope


def test_partition_and_endpoint_are_part_of_the_scope() -> None:
    assert key(BASE, partition="acme").scope != key(BASE, partition="globex").scope
    completion = cache_key(Endpoint.COMPLETIONS, {"model": "m", "prompt": "x"}, partition="acme")
    chat = cache_key(
        Endpoint.CHAT,
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        partition="acme",
    )
    assert completion.scope != chat.scope


@pytest.mark.parametrize(
    ("path", "value"),
    [("stream", True), ("stream_options", {"include_usage": True}), ("user", "end-user-17")],
)
def test_delivery_fields_do_not_change_the_scope(path: str, value: Any) -> None:
    assert key(changed(path, value)).scope == key(BASE).scope


def test_user_counts_when_it_is_not_a_label() -> None:
    with_user = changed("user", "end-user-17")
    assert key(with_user, user_is_label=False).scope != key(BASE, user_is_label=False).scope


def test_follow_ups_in_different_conversations_never_share_a_scope() -> None:
    about_germany = changed("messages.1.content", "Who is the chancellor of Germany?")
    assert key(about_germany).prompt == key(BASE).prompt == "How old is he?"
    assert key(about_germany).scope != key(BASE).scope


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (Endpoint.EMBEDDINGS, {"model": "e", "input": "x"}),
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": ["a", "b"]}),
        (Endpoint.CHAT, {"model": "m", "messages": [{"role": "assistant", "content": "x"}]}),
        (
            Endpoint.CHAT,
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:..."}},
                        ],
                    }
                ],
            },
        ),
    ],
)
def test_requests_without_a_single_text_question_are_not_cacheable(
    endpoint: Endpoint, body: dict[str, Any]
) -> None:
    assert cache_key(endpoint, body, partition="t") is None


def test_text_parts_are_the_question() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
    }
    assert key(body).prompt == "hi there"


def test_normalise_collapses_spaces_and_unicode_forms_but_keeps_case() -> None:
    assert (
        normalise("  What   is\tthe capital\u00a0of France? ") == "What is the capital of France?"
    )
    assert normalise("ﬁle") == "file"
    assert normalise("US") != normalise("us")


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
field_names = st.sampled_from(
    ["temperature", "top_p", "seed", "max_tokens", "stop", "x_extra", "model"]
)


@given(
    extra=st.dictionaries(field_names, json_scalars, max_size=4),
    other=st.dictionaries(field_names, json_scalars, max_size=4),
    question=st.text(min_size=1, max_size=20),
    partition=st.sampled_from(["a", "b"]),
    other_partition=st.sampled_from(["a", "b"]),
)
def test_scopes_are_equal_exactly_when_everything_but_the_question_is(
    extra: dict[str, Any],
    other: dict[str, Any],
    question: str,
    partition: str,
    other_partition: str,
) -> None:
    def body(fields: dict[str, Any], text: str) -> dict[str, Any]:
        return {"model": "m", **fields, "messages": [{"role": "user", "content": text}]}

    first = cache_key(Endpoint.CHAT, body(extra, question), partition=partition)
    second = cache_key(Endpoint.CHAT, body(other, question + "?"), partition=other_partition)
    # Compared as JSON: `false` and `0` are different values to a provider, as they are here.
    as_json = [json.dumps({"model": "m", **fields}, sort_keys=True) for fields in (extra, other)]
    same_rest = as_json[0] == as_json[1] and partition == other_partition
    assert (first.scope == second.scope) == same_rest


# The Responses API: stateless calls are keyed on the last user input, the rest is scope.

RESPONSES: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "instructions": "Answer in one sentence.",
    "input": [
        {"role": "user", "content": "Who wrote Hamlet?"},
        {"role": "assistant", "content": "Shakespeare."},
        {"role": "user", "content": [{"type": "input_text", "text": "When was he born?"}]},
    ],
}


def responses_key(body: dict[str, Any]):
    return cache_key(Endpoint.RESPONSES, body, partition="acme")


def test_a_responses_call_is_keyed_on_its_last_user_input() -> None:
    found = responses_key(RESPONSES)
    assert found is not None and found.prompt == "When was he born?"
    plain = responses_key({"model": "gpt-4.1-mini", "input": "When was he born?"})
    assert plain is not None and plain.prompt == "When was he born?"
    assert plain.prompt_hash == found.prompt_hash and plain.scope != found.scope


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("instructions", "Answer at length."),
        ("model", "gpt-4.1"),
        ("temperature", 0.9),
        ("text", {"format": {"type": "json_object"}}),
        ("reasoning", {"effort": "high"}),
        ("tools", [{"type": "function", "name": "lookup", "parameters": {}}]),
        ("input", [{"role": "user", "content": "When was he born?"}]),  # no earlier turns
    ],
)
def test_whatever_can_change_a_response_is_its_scope(field: str, value: Any) -> None:
    other = {**RESPONSES, field: value}
    first, second = responses_key(RESPONSES), responses_key(other)
    assert first is not None and second is not None
    assert first.prompt == second.prompt and first.scope != second.scope


def test_store_false_and_absent_share_a_scope() -> None:
    absent, stateless = responses_key(RESPONSES), responses_key({**RESPONSES, "store": False})
    assert absent is not None and stateless is not None and absent.scope == stateless.scope


@pytest.mark.parametrize(
    "change",
    [
        {"store": True},
        {"previous_response_id": "resp_123"},
        {"conversation": "conv_123"},
        {"background": True},
        {"prompt": {"id": "pmpt_123"}},
        {"tools": [{"type": "web_search"}]},
        {"tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]},
        {"tools": [{"type": "mcp", "server_label": "x"}]},
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
        {"input": [{"type": "function_call_output", "call_id": "c", "output": "{}"}]},
        {"input": [{"role": "assistant", "content": "Hi."}]},
        {"input": None},
    ],
)
def test_a_stateful_acting_or_non_text_responses_call_is_not_cacheable(
    change: dict[str, Any],
) -> None:
    assert responses_key({**RESPONSES, **change}) is None


# -- lists, item by item ---------------------------------------------------------------------

prompt_lists = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6)
extra_fields = st.dictionaries(
    st.sampled_from(["temperature", "max_tokens", "n", "user", "stream", "suffix"]),
    st.one_of(st.integers(0, 3), st.text(max_size=3)),
    max_size=3,
)


@given(prompts=prompt_lists, extra=extra_fields, user_is_label=st.booleans())
def test_each_prompt_of_a_list_has_the_key_it_would_have_alone(
    prompts: list[str], extra: dict[str, Any], user_is_label: bool
) -> None:
    body = {"model": "m", "prompt": prompts, **extra}
    keys = item_keys(Endpoint.COMPLETIONS, body, partition="acme", user_is_label=user_is_label)
    assert keys is not None
    alone = [
        cache_key(
            Endpoint.COMPLETIONS,
            {**body, "prompt": prompt},
            partition="acme",
            user_is_label=user_is_label,
        )
        for prompt in prompts
    ]
    assert keys == alone


@given(texts=prompt_lists)
def test_an_embedding_is_keyed_on_its_text_and_every_field_but_the_end_user(
    texts: list[str],
) -> None:
    body = {"model": "e", "input": texts, "dimensions": 8, "encoding_format": "float"}
    keys = item_keys(Endpoint.EMBEDDINGS, body, partition="acme")
    assert keys is not None and [k.prompt for k in keys] == texts
    assert [k.prompt_hash for k in keys] == [
        k.prompt_hash
        for k in item_keys(Endpoint.EMBEDDINGS, {**body, "user": "u"}, partition="acme")
    ]
    assert {k.scope for k in keys} == {
        k.scope
        for k in item_keys(Endpoint.EMBEDDINGS, {**body, "user": "u"}, partition="acme",
                           user_is_label=False)
    }  # fmt: skip
    for other in ({"dimensions": 16}, {"encoding_format": "base64"}, {"model": "f"}, {"x": 1}):
        moved = item_keys(Endpoint.EMBEDDINGS, {**body, **other}, partition="acme")
        assert moved is not None and moved[0].scope != keys[0].scope
    elsewhere = item_keys(Endpoint.EMBEDDINGS, body, partition="globex")
    assert elsewhere is not None and elsewhere[0].scope != keys[0].scope
    single = item_keys(Endpoint.EMBEDDINGS, {**body, "input": texts[0]}, partition="acme")
    assert single == keys[:1]


def test_an_embedding_is_never_a_completions_answer() -> None:
    embedded = item_keys(Endpoint.EMBEDDINGS, {"model": "m", "input": ["x"]}, partition="a")
    prompted = item_keys(Endpoint.COMPLETIONS, {"model": "m", "prompt": ["x"]}, partition="a")
    assert embedded is not None and prompted is not None
    assert embedded[0].scope != prompted[0].scope


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": "a single prompt"}),
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": [1, 2, 3]}),
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": [[1, 2], [3]]}),
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": []}),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": [1, 2, 3]}),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": [[1, 2], [3]]}),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": ["a", 1]}),
        (Endpoint.CHAT, BASE),
    ],
)
def test_what_is_not_a_list_of_texts_has_no_item_keys(
    endpoint: Endpoint, body: dict[str, Any]
) -> None:
    assert item_keys(endpoint, body, partition="acme") is None
