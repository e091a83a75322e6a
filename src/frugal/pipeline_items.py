"""The path of a list request, answered item by item: embeddings (each text of ``input``) and
completions with a list of prompts.

    body ──▶ one key per item (`item_keys`; None: token arrays, not a list ──▶ the usual path)
               │
               ├─ each distinct item looked up (unless no-cache): exactly, for an embedding
               │    (nothing embedded: only the same text may share a vector), exactly then by
               │    meaning for a prompt (as a single prompt is)
               ├─ the misses, each distinct text once, upstream in ONE list call (batched with
               │    other requests' misses as any list is)
               ├─ each missed item's answer stored as its own entry (unless no-store), in the
               │    shape of a single-item answer, so a single-prompt request hits it too
               ▼
            the list answer, in the request's order; its usage is what was sent upstream

The outcome is ``hit`` (every item from the cache), ``miss`` (none) or ``partial``; with
no-cache the list goes upstream as it is (``bypass``) and its items are stored; in shadow mode
likewise, as ``shadow``. Unlike a single prompt, a list is not coalesced with requests in
flight, and its hits are not kept for a report of a wrong hit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from frugal.cache import CacheKey, Hit, Lookup, SemanticCache, item_keys, storable
from frugal.ids import random_hex
from frugal.item_answers import assemble_list_answer, entries_field, no_usage, split_list_answer
from frugal.outcome import Outcome
from frugal.provider import Endpoint, Upstream

if TYPE_CHECKING:  # the pipeline imports this module: its types only, for annotations
    from frugal.pipeline import CachePolicy, RequestContext

T = TypeVar("T")
R = TypeVar("R")

# Items looked up or stored at once: enough to fill the embedder's batches and to overlap a
# shared store's round trips, few enough not to open a connection per item of a long list.
CONCURRENT_ITEMS = 32


@dataclass(frozen=True)
class ItemCounts:
    """How a list's items were answered: ``hits`` from the cache, ``misses`` upstream (per
    position: a text given twice counts twice, though it is sent once), and the tokens the
    hits would have cost (the usage stored with their answers)."""

    hits: int
    misses: int
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0

    @property
    def header(self) -> str:
        """The ``x-frugal-cache-items`` value."""
        return f"hits={self.hits}, misses={self.misses}"


@dataclass(frozen=True)
class ListAnswer:
    """A list request's answer; ``items`` is ``None`` when the cache was not read."""

    body: dict[str, Any]
    outcome: Outcome
    similarity: float | None
    question: str
    items: ItemCounts | None


class ItemPath:
    """Answers list requests item by item from ``cache``, the rest from ``upstream``."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        cache: SemanticCache,
        policy: CachePolicy,
        shadowing: bool = False,
    ) -> None:
        self._upstream = upstream
        self._cache = cache
        self._policy = policy
        self._shadowing = shadowing

    async def answer(
        self, endpoint: Endpoint, body: dict[str, Any], ctx: RequestContext
    ) -> ListAnswer | None:
        """The answer of a list request; ``None`` for a request this path does not take."""
        keys = item_keys(
            endpoint, body, partition=ctx.partition, user_is_label=self._policy.user_is_label
        )
        per_item = _choices_per_prompt(endpoint, body)
        if keys is None or per_item is None:
            return None
        control = ctx.control
        reading = not control.no_cache and not self._shadowing
        distinct = list({key.prompt_hash: key for key in keys}.values())
        found = await self._look_up(endpoint, distinct, control.threshold) if reading else {}
        field = entries_field(endpoint)
        hits = {h: hit for h, got in found.items() if (hit := _usable(got, field, per_item))}
        missed = [key for key in distinct if key.prompt_hash not in hits]
        singles: dict[str, dict[str, Any]] = {h: hit.response for h, hit in hits.items()}
        called: dict[str, Any] | None = None
        if missed:
            ctx.on_upstream()
            whole = len(missed) == len(keys)  # nothing cached, nothing twice: the body as sent
            asked = "input" if endpoint is Endpoint.EMBEDDINGS else "prompt"
            sent = body if whole else {**body, asked: [key.prompt for key in missed]}
            called = await self._upstream.post(endpoint, sent, request_id=ctx.request_id)
            texts = [key.prompt for key in missed]
            answers = split_list_answer(endpoint, called, texts, per_item=per_item)
            singles.update(zip((key.prompt_hash for key in missed), answers, strict=True))
            down = any(lookup.store_unavailable for lookup in found.values())
            if not control.no_store and not down:
                await self._store(endpoint, missed, answers, found, ctx)
            if whole:
                return self._answered(called, keys, hits, ctx)
        ordered = [singles[key.prompt_hash] for key in keys]
        if called is not None:
            head, usage = called, called.get("usage")
        else:
            head, usage = _fresh_head(endpoint, ordered[0]), no_usage(endpoint)
        body_out = assemble_list_answer(endpoint, ordered, head=head, usage=usage)
        return self._answered(body_out, keys, hits, ctx)

    def _answered(
        self,
        body: dict[str, Any],
        keys: list[CacheKey],
        hits: dict[str, Hit],
        ctx: RequestContext,
    ) -> ListAnswer:
        question = _question(keys)
        if ctx.control.no_cache:
            return ListAnswer(body, Outcome.BYPASS, None, question, None)
        if self._shadowing:
            return ListAnswer(body, Outcome.SHADOW, None, question, None)
        served = [hits[key.prompt_hash] for key in keys if key.prompt_hash in hits]
        if len(served) == len(keys):
            exact = all(hit.exact for hit in served)
            outcome = Outcome.HIT_EXACT if exact else Outcome.HIT_SEMANTIC
        else:
            outcome = Outcome.PARTIAL if served else Outcome.MISS
        saved_prompt = saved_completion = 0
        for hit in served:
            usage = hit.response.get("usage")
            if isinstance(usage, dict):
                saved_prompt += _tokens(usage.get("prompt_tokens"))
                saved_completion += _tokens(usage.get("completion_tokens"))
        counts = ItemCounts(
            hits=len(served),
            misses=len(keys) - len(served),
            saved_prompt_tokens=saved_prompt,
            saved_completion_tokens=saved_completion,
        )
        similarity = min((hit.similarity for hit in served), default=None)
        return ListAnswer(body, outcome, similarity, question, counts)

    async def _look_up(
        self, endpoint: Endpoint, keys: list[CacheKey], threshold: float | None
    ) -> dict[str, Lookup]:
        cache = self._cache

        def one(key: CacheKey) -> Awaitable[Lookup]:
            if endpoint is Endpoint.EMBEDDINGS:
                return cache.lookup_exact(key)
            return cache.lookup(key, threshold=threshold)

        lookups = await _in_slices(one, keys)
        return {key.prompt_hash: lookup for key, lookup in zip(keys, lookups, strict=True)}

    async def _store(
        self,
        endpoint: Endpoint,
        keys: list[CacheKey],
        answers: list[dict[str, Any]],
        found: dict[str, Lookup],
        ctx: RequestContext,
    ) -> None:
        cache, policy, ttl_s = self._cache, self._policy, ctx.control.ttl_s

        def one(pair: tuple[CacheKey, dict[str, Any]]) -> Awaitable[bool]:
            key, answer = pair
            if endpoint is Endpoint.EMBEDDINGS:
                return cache.save_exact(key, answer, ttl_s=ttl_s)
            lookup = found.get(key.prompt_hash)
            vector = lookup.vector if lookup is not None else None
            return cache.save(key, answer, vector=vector, ttl_s=ttl_s)

        admitted = [
            (key, answer)
            for key, answer in zip(keys, answers, strict=True)
            if endpoint is Endpoint.EMBEDDINGS
            or storable(
                answer, admit_length=policy.admit_length, admit_tool_calls=policy.admit_tool_calls
            )
        ]
        await _in_slices(one, admitted)


def _choices_per_prompt(endpoint: Endpoint, body: dict[str, Any]) -> int | None:
    """A completion's ``n`` (1 when absent); ``None`` when it is not a positive integer, which
    is the provider's to refuse."""
    if endpoint is not Endpoint.COMPLETIONS:
        return 1
    n = body.get("n")
    if n is None:
        return 1
    if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
        return n
    return None


def _usable(lookup: Lookup, field: str, per_item: int) -> Hit | None:
    """The lookup's hit, if its stored answer has the shape an item's answer must have (one
    embedding; a prompt's ``n`` choices): anything else is taken as a miss."""
    hit = lookup.hit
    if hit is None:
        return None
    entries = hit.response.get(field)
    if not isinstance(entries, list) or len(entries) != per_item:
        return None
    return hit if all(isinstance(entry, dict) for entry in entries) else None


def _fresh_head(endpoint: Endpoint, first: dict[str, Any]) -> dict[str, Any]:
    """The fields of a list answered wholly from the cache: a new id and time for a
    completion, as for a single hit; the model of the first item's answer."""
    if endpoint is Endpoint.EMBEDDINGS:
        return {"object": "list", "model": first.get("model")}
    prefix = str(first.get("id") or "cmpl-").split("-", 1)[0]
    head = {k: v for k, v in first.items() if k not in (entries_field(endpoint), "usage")}
    return {**head, "id": f"{prefix}-{random_hex()}", "created": int(time.time())}


def _question(keys: list[CacheKey]) -> str:
    """The list's text for logs and the dashboard: its first item, and how many follow."""
    first = keys[0].prompt
    return first if len(keys) == 1 else f"{first} (+{len(keys) - 1} more)"


def _tokens(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def _in_slices(work: Callable[[T], Awaitable[R]], values: list[T]) -> list[R]:
    """``work`` on every value, `CONCURRENT_ITEMS` at a time; the results in order."""
    results: list[R] = []
    for start in range(0, len(values), CONCURRENT_ITEMS):
        chunk = values[start : start + CONCURRENT_ITEMS]
        results.extend(await asyncio.gather(*(work(value) for value in chunk)))
    return results
