"""A list call's answer, split back to the requests that shared it."""

from __future__ import annotations

from frugal.batching.upstream import _Request, split_answer


def request(*items: str) -> _Request:
    return _Request(body={}, items=list(items), request_id="r")


def test_choices_are_split_by_index_and_reindexed() -> None:
    answer = {
        "id": "cmpl-1",
        "choices": [{"index": i, "text": f"answer {i}"} for i in (2, 0, 1)],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
    }
    first, second = split_answer("/completions", answer, [request("a"), request("b", "c")])
    assert [c["text"] for c in first["choices"]] == ["answer 0"]
    assert [(c["index"], c["text"]) for c in second["choices"]] == [
        (0, "answer 1"),
        (1, "answer 2"),
    ]
    assert first["id"] != second["id"]
    total = {k: first["usage"][k] + second["usage"][k] for k in first["usage"]}
    assert total == answer["usage"]


def test_n_choices_per_prompt_stay_with_their_prompt() -> None:
    answer = {"choices": [{"index": i, "text": f"p{i // 2} v{i % 2}"} for i in range(4)]}
    first, second = split_answer("/completions", answer, [request("x"), request("y")])
    assert [c["text"] for c in first["choices"]] == ["p0 v0", "p0 v1"]
    assert [c["text"] for c in second["choices"]] == ["p1 v0", "p1 v1"]


def test_embeddings_split_by_data_index() -> None:
    answer = {
        "data": [{"index": i, "embedding": [float(i)]} for i in range(3)],
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }
    first, second = split_answer("/embeddings", answer, [request("aa", "b"), request("cccccc")])
    assert [d["embedding"] for d in first["data"]] == [[0.0], [1.0]]
    assert [d["embedding"] for d in second["data"]] == [[2.0]]
    assert first["usage"]["prompt_tokens"] + second["usage"]["prompt_tokens"] == 9
    assert second["usage"]["prompt_tokens"] == 6  # the longer input carries its share


def test_a_short_answer_fails_every_request_of_the_batch() -> None:
    answer = {"choices": [{"index": 0, "text": "only one"}]}
    results = split_answer("/completions", answer, [request("a"), request("b")])
    assert all(isinstance(r, RuntimeError) for r in results)
