"""A list answered item by item: a list call's answer cut into single answers, and a list
answer put together from single answers.

    split_list_answer(endpoint, answer, texts, per_item=n)  ──▶ one single answer per text
    assemble_list_answer(endpoint, singles, head=..., usage=...) ──▶ one list answer

A *single answer* has the shape of the provider's answer to its item asked alone: an
embeddings response with one ``data`` entry, or a completion with its prompt's ``n`` choices
indexed from 0. That is what the cache stores, so a list and a single prompt share answers.
A list answer is indexed as OpenAI indexes it: ``data[i].index == i``, and choice ``k`` of the
prompt at position ``p`` has ``index == p * n + k``.
"""

from __future__ import annotations

from typing import Any

from frugal.batching import apportion_usage
from frugal.errors import UpstreamAnswerError
from frugal.provider import Endpoint

__all__ = ["assemble_list_answer", "entries_field", "no_usage", "split_list_answer"]


def entries_field(endpoint: Endpoint) -> str:
    """Where a list answer keeps its entries: ``data`` (embeddings) or ``choices``."""
    return "data" if endpoint is Endpoint.EMBEDDINGS else "choices"


def no_usage(endpoint: Endpoint) -> dict[str, int]:
    """The usage of an answer that sent nothing upstream."""
    if endpoint is Endpoint.EMBEDDINGS:
        return {"prompt_tokens": 0, "total_tokens": 0}
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def split_list_answer(
    endpoint: Endpoint, answer: dict[str, Any], texts: list[str], *, per_item: int
) -> list[dict[str, Any]]:
    """The single answer of each of ``texts``, the items of the list call ``answer`` answers
    (``per_item`` entries each: a completion's ``n``), in order. The call's ``usage`` is
    apportioned to them by the length of their texts and answers, adding up to the whole.

    Raises `UpstreamAnswerError` when the entries are not ``per_item`` per text, indexed from 0
    without a gap: whose answer is whose could not be told.
    """
    field = entries_field(endpoint)
    entries = answer.get(field)
    expected = len(texts) * per_item
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UpstreamAnswerError(f"The provider's answer has no list of {field}.")
    indexes = sorted(_index(entry) for entry in entries)
    if len(entries) != expected or indexes != list(range(expected)):
        raise UpstreamAnswerError(
            f"The provider answered {len(entries)} {field} for {len(texts)} items "
            f"({expected} expected, indexed from 0)."
        )
    ordered = sorted(entries, key=_index)
    owns = [ordered[j * per_item : (j + 1) * per_item] for j in range(len(texts))]
    usages = apportion_usage(
        answer.get("usage"),
        [
            (len(text), sum(_size(entry) for entry in own))
            for text, own in zip(texts, owns, strict=True)
        ],
    )
    singles = []
    for j, own in enumerate(owns):
        single = {**answer, field: [{**entry, "index": k} for k, entry in enumerate(own)]}
        if usages is not None:
            single["usage"] = usages[j]
        singles.append(single)
    return singles


def assemble_list_answer(
    endpoint: Endpoint,
    singles: list[dict[str, Any]],
    *,
    head: dict[str, Any],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    """The list answer made of ``singles`` (each item's single answer, in the request's
    order): ``head`` gives its other fields (id, object, created, model...), ``usage`` its
    usage (left out when ``None``). A completion's choices per prompt are those of its single
    answer (``n``), re-indexed ``p * n + k``."""
    field = entries_field(endpoint)
    entries: list[dict[str, Any]] = []
    for single in singles:
        own = sorted(single[field], key=_index)
        offset = len(entries)
        entries.extend({**entry, "index": offset + k} for k, entry in enumerate(own))
    answer = {k: v for k, v in head.items() if k not in (field, "usage")}
    answer[field] = entries
    if usage is not None:
        answer["usage"] = usage
    return answer


def _index(entry: dict[str, Any]) -> int:
    index = entry.get("index", 0)
    return index if isinstance(index, int) and not isinstance(index, bool) else -1


def _size(entry: dict[str, Any]) -> int:
    """An answer's length in characters, to apportion completion tokens by."""
    text = entry.get("text")
    return len(text) if isinstance(text, str) else 0
