"""An `Upstream` that sends cache misses together, in as few calls as the provider's API allows.

| endpoint                           | a miss is sent                                             |
|------------------------------------|------------------------------------------------------------|
| ``/completions`` (string prompts)  | in ONE call with ``prompt`` as a list; matched by ``index`` |
| ``/embeddings``                    | in ONE call with ``input`` as a list (at most 2,048 inputs) |
| ``/chat/completions``, ``/responses`` and token prompts | at once, in a call of its own |

Only an API that takes a list gains from waiting: a chat or a Responses API call carries one
conversation, so the window would only delay it. Such a miss goes at once, under the same
per-upstream concurrency cap (waiting for a free connection at most ``timeout_s``, with at most
``max_queue`` waiting). Equal and near-equal misses in flight are the pipeline's coalescer's to
fold; identical requests that reach this layer each get their own call, as they would from the
provider (two identical requests at a temperature above 0 expect two samples).

Requests share a list queue only when they may share a call: same endpoint and every parameter
but the prompts. Every upstream call, streams included, holds a slot of the cap. When the
provider rejects a whole list call (a 4xx), its requests are retried alone, so a poisoned prompt
fails only its own request. A provider reports one ``usage`` for a list call; it is apportioned
to the requests by the length of their prompts and answers (`apportion_usage`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from frugal.batching.batcher import Batcher, BatchStats
from frugal.batching.usage import apportion_usage
from frugal.errors import OverloadedError, QueueTimeoutError, UpstreamStatusError
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
    """Wraps an `Upstream`; ``post`` batches what a list can carry and sends the rest at once,
    ``stream`` passes through; all of it under the concurrency cap."""

    def __init__(
        self, upstream: Upstream, settings: BatchSettings, watcher: UpstreamWatcher | None = None
    ) -> None:
        self._upstream = upstream
        self._settings = settings
        self._watcher = watcher
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._waiting = 0  # calls sent at once that wait for a free slot
        # One batcher per queue while it has work: a queue is every parameter but the prompts,
        # so keeping every queue ever seen would grow with the traffic. Their stats add up here.
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
        if items is None:  # one conversation (chat, responses) or token prompts: at once
            return await self._at_once(endpoint, body, request_id)
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
        try:
            return await batcher.submit(_Request(body, items, request_id), units=len(items))
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
        return Batcher(
            self._list_batch(endpoint),
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

    async def _at_once(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> dict[str, Any]:
        """A call of its own, as soon as a slot is free. While every slot is busy, at most
        ``max_queue`` calls wait (beyond: `OverloadedError`, 429), each at most ``timeout_s``
        (beyond: `QueueTimeoutError`, 504, never sent): the bounds a batch queue keeps."""
        settings = self._settings
        if self._slots.locked() and self._waiting >= settings.max_queue:
            self.stats.rejected_full += 1
            raise OverloadedError(
                f"Too many requests are waiting upstream ({self._waiting} waiting).",
                retry_after_s=1.0,
            )
        self._waiting += 1
        try:
            async with asyncio.timeout(settings.timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            self.stats.expired += 1
            raise QueueTimeoutError("The request waited too long to be sent upstream.") from None
        finally:
            self._waiting -= 1
        try:
            self._count_call(endpoint, body)
            return await self._upstream.post(endpoint, body, request_id=request_id)
        finally:
            self._slots.release()

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
    usages = apportion_usage(
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


def _items(endpoint: Endpoint, body: dict[str, Any]) -> list[Any] | None:
    """What a request contributes to a list call, or ``None`` when it cannot share one."""
    if endpoint in (Endpoint.CHAT, Endpoint.RESPONSES):  # no list form: one conversation a call
        return None
    value = body.get("prompt" if endpoint == Endpoint.COMPLETIONS else "input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


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
