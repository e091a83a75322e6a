"""An `Upstream` that sends cache misses together, in as few calls as the provider's API allows.

| endpoint              | a batch is sent as                                                    |
|-----------------------|-----------------------------------------------------------------------|
| ``/completions``      | ONE call with ``prompt`` as a list; choices matched back by ``index`` |
| ``/embeddings``       | ONE call with ``input`` as a list (at most 2,048 inputs); by ``index``|
| ``/chat/completions`` | concurrent calls, identical requests sent once and the answer shared  |

Requests share a queue only when they may share a call: same endpoint and every parameter but
the prompts. Every upstream call, streams included, holds a slot of one per-upstream
concurrency cap. When the provider rejects a whole list call (a 4xx), its requests are retried
alone, so a poisoned prompt fails only its own request. A provider reports one ``usage`` for a
list call; it is apportioned to the requests by the length of their prompts and answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from frugal.batching.batcher import Batcher, BatchStats
from frugal.errors import UpstreamStatusError
from frugal.provider import Endpoint, OpenStream, Upstream

EMBEDDING_INPUTS_PER_CALL = 2048

Result = dict[str, Any] | BaseException  # a request's own answer, or its own failure


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    window_s: float = 0.05
    max_size: int = 5
    max_queue: int = 1000
    timeout_s: float | None = 30.0
    max_concurrency: int = 64


@dataclass(frozen=True)
class _Request:
    body: dict[str, Any]
    items: list[Any]  # the prompts (completions) or inputs (embeddings) of this request
    request_id: str


class UpstreamWatcher(Protocol):
    """Told of every upstream call and every batch, for metrics."""

    def upstream_call(self, endpoint: Endpoint, items: int) -> None: ...

    def batch_sent(self, endpoint: Endpoint, units: int, waits_s: list[float]) -> None: ...


class BatchingUpstream:
    """Wraps an `Upstream`; ``post`` batches, ``stream`` passes through under the cap."""

    def __init__(
        self, upstream: Upstream, settings: BatchSettings, watcher: UpstreamWatcher | None = None
    ) -> None:
        self._upstream = upstream
        self._settings = settings
        self._watcher = watcher
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        # One batcher per queue while it has work: a chat's queue is its conversation, so
        # keeping every queue ever seen would grow with the traffic. Their stats add up here.
        self._batchers: dict[str, Batcher[_Request, dict[str, Any]]] = {}
        self.stats = BatchStats()
        self.calls = 0  # upstream calls made, list calls counting once

    @property
    def batchers(self) -> dict[str, Batcher[_Request, dict[str, Any]]]:
        return self._batchers

    async def post(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        items = _items(endpoint, body)
        if items is None:  # nothing to pack (token prompts, say): one call of its own
            return await self._call(endpoint, body, request_id)
        queue_key = json.dumps(
            {
                "endpoint": endpoint,
                "params": {k: v for k, v in body.items() if k not in ("prompt", "input")},
            },
            sort_keys=True,
        )
        batcher = self._batchers.get(queue_key)
        if batcher is None:
            batcher = self._batchers[queue_key] = self._new_batcher(endpoint, queue_key)
        units = 1 if endpoint == Endpoint.CHAT else len(items)
        try:
            return await batcher.submit(_Request(body, items, request_id), units=units)
        finally:
            self._retire_if_idle(queue_key)  # e.g. refused: no batch task left to do it

    def _retire_if_idle(self, queue_key: str) -> None:
        batcher = self._batchers.get(queue_key)
        if batcher is not None and batcher.idle:
            del self._batchers[queue_key]

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> OpenStream:
        await self._slots.acquire()
        try:
            self._count_call(endpoint, body)
            opened = await self._upstream.stream(endpoint, body, request_id=request_id)
        except BaseException:
            self._slots.release()
            raise
        return _SlotStream(opened, self._slots)

    async def aclose(self) -> None:
        """Send what is queued and wait for batches in flight."""
        await asyncio.gather(*(batcher.aclose() for batcher in self._batchers.values()))

    def _new_batcher(self, endpoint: Endpoint, queue_key: str) -> Batcher[_Request, dict[str, Any]]:
        settings = self._settings
        max_size = settings.max_size
        if endpoint == Endpoint.EMBEDDINGS:
            max_size = min(max_size, EMBEDDING_INPUTS_PER_CALL)
        handler = self._chat_batch if endpoint == Endpoint.CHAT else self._list_batch(endpoint)
        return Batcher(
            handler,
            window_s=settings.window_s,
            max_size=max_size,
            max_queue=settings.max_queue,
            timeout_s=settings.timeout_s,
            max_in_flight=settings.max_concurrency,
            name=f"batcher {endpoint}",
            on_batch=(
                partial(self._watcher.batch_sent, endpoint) if self._watcher is not None else None
            ),
            stats=self.stats,
            on_idle=partial(self._retire_if_idle, queue_key),
        )

    async def _call(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> dict[str, Any]:
        async with self._slots:
            self._count_call(endpoint, body)
            return await self._upstream.post(endpoint, body, request_id=request_id)

    def _count_call(self, endpoint: Endpoint, body: dict[str, Any]) -> None:
        self.calls += 1
        if self._watcher is not None:
            items = _items(endpoint, body)
            self._watcher.upstream_call(endpoint, len(items) if items is not None else 1)

    async def _chat_batch(self, batch: list[_Request]) -> list[Result]:
        """One call per distinct request, concurrently; equal requests share the answer."""
        distinct: dict[str, _Request] = {}
        for request in batch:
            distinct.setdefault(_canonical(request.body), request)
        answers = await asyncio.gather(
            *(self._call(Endpoint.CHAT, r.body, r.request_id) for r in distinct.values()),
            return_exceptions=True,
        )
        by_body = dict(zip(distinct, answers, strict=True))
        return [by_body[_canonical(request.body)] for request in batch]

    def _list_batch(
        self, endpoint: Endpoint
    ) -> Callable[[list[_Request]], Awaitable[list[Result]]]:
        field = "prompt" if endpoint == Endpoint.COMPLETIONS else "input"

        async def send(batch: list[_Request]) -> list[Result]:
            if len(batch) == 1:
                return [await self._call(endpoint, batch[0].body, batch[0].request_id)]
            merged = {**batch[0].body, field: [item for r in batch for item in r.items]}
            request_ids = ",".join(r.request_id for r in batch)
            try:
                answer = await self._call(endpoint, merged, request_ids)
            except UpstreamStatusError as exc:
                if exc.upstream_status >= 500 or exc.upstream_status == 429:
                    raise
                # The provider rejected the whole list: find out whose item it was.
                alone = [self._call(endpoint, r.body, r.request_id) for r in batch]
                return list(await asyncio.gather(*alone, return_exceptions=True))
            return split_answer(endpoint, answer, batch)

        return send


def split_answer(
    endpoint: Endpoint, answer: dict[str, Any], batch: Sequence[_Request]
) -> list[Result]:
    """Give each request of a list call its own part of the answer, re-indexed from 0."""
    entries_key = "choices" if endpoint == Endpoint.COMPLETIONS else "data"
    entries = answer.get(entries_key) or []
    total_items = sum(len(r.items) for r in batch)
    per_item = len(entries) // total_items if total_items else 0  # `n` choices per prompt
    if per_item == 0 or len(entries) != per_item * total_items:
        error = RuntimeError(
            f"upstream answered {len(entries)} {entries_key} for {total_items} items"
        )
        return [error for _ in batch]
    by_index = sorted(entries, key=lambda entry: int(entry.get("index", 0)))
    owns, offset = [], 0
    for request in batch:
        size = len(request.items) * per_item
        owns.append(by_index[offset : offset + size])
        offset += size
    usages = _apportion(
        answer.get("usage"),
        [_weight(request, own) for request, own in zip(batch, owns, strict=True)],
    )
    parts: list[Result] = []
    for number, own in enumerate(owns):
        part = {**answer, entries_key: [{**entry, "index": i} for i, entry in enumerate(own)]}
        if "id" in answer:
            part["id"] = f"{answer['id']}-{number}"
        if usages is not None:
            part["usage"] = usages[number]
        parts.append(part)
    return parts


def _weight(request: _Request, own: list[dict[str, Any]]) -> tuple[int, int]:
    """(prompt size, answer size) of a request in characters, to apportion usage by."""
    prompt = sum(len(str(item)) for item in request.items)
    answer = sum(len(str(entry.get("text") or "")) for entry in own)
    return prompt, answer


def _apportion(usage: Any, weights: list[tuple[int, int]]) -> list[dict[str, Any]] | None:
    """Split a list call's usage by weight; the parts add up to the whole exactly."""
    if not isinstance(usage, dict):
        return None
    prompt_total = int(usage.get("prompt_tokens") or 0)
    completion_total = int(usage.get("completion_tokens") or 0)
    prompts = _split(prompt_total, [w[0] for w in weights])
    completions = _split(completion_total, [w[1] for w in weights])
    return [
        {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if "completion_tokens" in usage
        else {"prompt_tokens": p, "total_tokens": p}
        for p, c in zip(prompts, completions, strict=True)
    ]


def _split(total: int, weights: list[int]) -> list[int]:
    """Largest-remainder split of ``total`` in proportion to ``weights``."""
    whole = sum(weights)
    if whole == 0:
        weights, whole = [1] * len(weights), len(weights)
    shares = [total * w / whole for w in weights]
    parts = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: shares[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _items(endpoint: Endpoint, body: dict[str, Any]) -> list[Any] | None:
    """What a request contributes to a list call, or ``None`` when it cannot share one."""
    if endpoint == Endpoint.CHAT:
        return [body]
    if endpoint == Endpoint.RESPONSES:  # no list form: a response is one call
        return None
    value = body.get("prompt" if endpoint == Endpoint.COMPLETIONS else "input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class _SlotStream:
    """An upstream stream that gives its concurrency slot back when closed."""

    def __init__(self, stream: OpenStream, slots: asyncio.Semaphore) -> None:
        self._stream = stream
        self._slots = slots
        self._released = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return aiter(self._stream)

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if not self._released:
                self._released = True
                self._slots.release()
