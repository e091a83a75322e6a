"""What must be equal before two prompts may share an answer.

Only the text that carries the question is embedded: the last user message of a chat, the
prompt of a completion, the last user input of a Responses API call. Everything else in the
request that can change the answer forms the *scope* and is compared exactly (as a hash): the
partition, the endpoint, the model, the system prompt or instructions, every earlier turn,
tools, sampling parameters, response format, and any field frugal does not know (an unknown
field might change the answer, so it counts). Only fields that cannot change the answer are
left out: ``stream``, ``stream_options`` and, when configured as a label,
``user``, and for the Responses API ``store`` (false or absent: a stateless call either way).

A request frugal cannot reduce to one question (images in the question, a list of prompts,
embeddings, a conversation that does not end with the user) is not cacheable as a whole:
`cache_key` returns ``None``. So is a Responses API call that keeps
or reads state at the provider (``store: true``, ``previous_response_id``, ``conversation``,
``background``, a stored ``prompt`` template) or that brings a tool acting in the world (any
tool but a ``function`` or ``custom`` one the client runs itself: web search, file search,
computer use, code interpreter, MCP, ...): its answer depends on more than the request says.

A list is cached item by item instead (`item_keys`): each prompt of a completion's list has the
key it would have alone (the scope is the body without ``prompt``), so a list and a single
prompt share answers; each text of an embedding's ``input`` is keyed on the body without
``input`` and ``user`` (model, ``dimensions``, ``encoding_format`` and any other field) and its
normalised text. Token arrays are not cacheable.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from frugal.provider import Endpoint

# Fields that change how an answer is delivered, never what it says.
DELIVERY_FIELDS = frozenset({"stream", "stream_options"})
# A Responses API call with any of these set reads or keeps state at the provider.
STATEFUL_FIELDS = ("previous_response_id", "conversation", "background", "prompt")
# Tools the client runs itself; every other kind acts at the provider (search, code, MCP, ...).
CLIENT_TOOLS = frozenset({"function", "custom"})
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class CacheKey:
    """Where a request's answer may be looked up and stored.

    ``partition`` is whose answers it may share: the tenant's own name, or the namespace it
    shares with others.
    """

    partition: str
    scope: str  # sha256 hex of everything but the question
    prompt: str  # the question text, as embedded
    prompt_hash: str  # sha256 hex of the normalised question: the exact tier's key
    labels: dict[str, str] = field(default_factory=dict, compare=False)


def normalise(text: str) -> str:
    """The form two prompts must share to be exact duplicates: NFKC, spaces collapsed.

    Case is kept: "US" and "us" are different questions, and the semantic tier judges the rest.
    """
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def cache_key(
    endpoint: Endpoint, body: dict[str, Any], *, partition: str, user_is_label: bool = True
) -> CacheKey | None:
    """The cache key of a validated request body, or ``None`` when it is not cacheable."""
    split = _split_question(endpoint, body)
    if split is None:
        return None
    question, rest = split
    ignored = DELIVERY_FIELDS | ({"user"} if user_is_label else set())
    if endpoint is Endpoint.RESPONSES:
        ignored |= {"store"}
    return _keys(endpoint, rest, [question], partition=partition, ignored=ignored)[0]


def item_keys(
    endpoint: Endpoint, body: dict[str, Any], *, partition: str, user_is_label: bool = True
) -> list[CacheKey] | None:
    """One key per item of a list request, in order: the prompts of a completion whose
    ``prompt`` is a list of strings (each key equal to its prompt's `cache_key` alone), or the
    texts of an embedding's ``input`` (a string or a list of strings). ``None`` for anything
    else: a single prompt (`cache_key`'s), token arrays, other endpoints."""
    if endpoint is Endpoint.COMPLETIONS:
        texts = body.get("prompt")
        if not isinstance(texts, list) or not _all_strings(texts):
            return None
        rest = {name: value for name, value in body.items() if name != "prompt"}
        ignored = DELIVERY_FIELDS | ({"user"} if user_is_label else set())
        return _keys(endpoint, rest, texts, partition=partition, ignored=ignored)
    if endpoint is Endpoint.EMBEDDINGS:
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not _all_strings(texts):
            return None
        # An embedding is the text's alone: ``user`` never changes it, whatever the setting.
        rest = {name: value for name, value in body.items() if name != "input"}
        return _keys(endpoint, rest, texts, partition=partition, ignored=frozenset({"user"}))
    return None


def _all_strings(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(value, str) for value in values)


def _keys(
    endpoint: Endpoint,
    rest: dict[str, Any],
    questions: list[str],
    *,
    partition: str,
    ignored: frozenset[str] | set[str],
) -> list[CacheKey]:
    """The keys of ``questions`` asked with ``rest`` (the body without them), one scope."""
    scope_fields = {name: value for name, value in rest.items() if name not in ignored}
    # The hashed form keeps the key "tenant": renaming it would change every scope hash and
    # strand every entry stored before.
    scope = _digest({"tenant": partition, "endpoint": endpoint.value, "request": scope_fields})
    labels = {
        "partition": partition,
        "endpoint": endpoint.value,
        "model": str(rest.get("model", "")),
    }
    return [
        CacheKey(
            partition=partition,
            scope=scope,
            prompt=question,
            prompt_hash=_digest(normalise(question)),
            labels=labels,
        )
        for question in questions
    ]


def _split_question(endpoint: Endpoint, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The question text and the body with the question taken out, or ``None``."""
    if endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        text = _text_of(last.get("content"))
        if text is None:
            return None
        without_text = {name: value for name, value in last.items() if name != "content"}
        return text, {**body, "messages": [*messages[:-1], without_text]}
    if endpoint is Endpoint.COMPLETIONS:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return None
        return prompt, {name: value for name, value in body.items() if name != "prompt"}
    if endpoint is Endpoint.RESPONSES:
        return _responses_question(body)
    return None


def _responses_question(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A stateless Responses API call's last user input, and the body without its text."""
    if body.get("store") is True or any(body.get(name) for name in STATEFUL_FIELDS):
        return None
    tools = body.get("tools") or []
    if not isinstance(tools, list) or any(
        not isinstance(tool, dict) or tool.get("type") not in CLIENT_TOOLS for tool in tools
    ):
        return None
    given = body.get("input")
    if isinstance(given, str):
        return given, {name: value for name, value in body.items() if name != "input"}
    if not isinstance(given, list) or not given:
        return None
    last = given[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    if last.get("type", "message") != "message":
        return None
    text = _text_of(last.get("content"), part_type="input_text")
    if text is None:
        return None
    without_text = {name: value for name, value in last.items() if name != "content"}
    return text, {**body, "input": [*given[:-1], without_text]}


def _text_of(content: object, *, part_type: str = "text") -> str | None:
    """A message's text; ``None`` when it holds anything but text parts (of ``part_type``:
    ``input_text`` in the Responses API): an image or a file is not embedded."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != part_type:
                return None
            if not isinstance(part.get("text"), str):
                return None
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def _digest(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
