"""The generic batcher: windows, sizes, bounds, deadlines, cancellation, isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frugal.api.errors import status_of
from frugal.batching.batcher import Batcher
from frugal.errors import OverloadedError, QueueTimeoutError, ShuttingDownError


class Recorder:
    """A handler that echoes each item and records the batches it saw."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay_s = delay_s

    async def __call__(self, items: list[str]) -> Sequence[str | BaseException]:
        self.batches.append(list(items))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return [f"answer:{item}" for item in items]


def make(handler, **kwargs) -> Batcher[str, str]:
    options = {"window_s": 0.05, "max_size": 5, "max_queue": 100, **kwargs}
    return Batcher(handler, **options)


async def test_five_concurrent_items_leave_as_one_batch() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=10.0)  # only the size can send them
    results = await asyncio.gather(*(batcher.submit(f"p{n}") for n in range(5)))
    assert results == [f"answer:p{n}" for n in range(5)]
    assert handler.batches == [["p0", "p1", "p2", "p3", "p4"]]


async def test_twelve_items_make_three_batches() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=0.02)
    results = await asyncio.gather(*(batcher.submit(f"p{n}") for n in range(12)))
    assert results == [f"answer:p{n}" for n in range(12)]
    assert [len(b) for b in handler.batches] == [5, 5, 2]


async def test_a_lone_item_leaves_when_its_window_ends() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=0.05)
    task = asyncio.ensure_future(batcher.submit("alone"))
    await asyncio.sleep(0.01)
    assert handler.batches == [] and not task.done()
    assert await task == "answer:alone"
    assert handler.batches == [["alone"]]
    assert batcher.stats.batch_sizes == {1: 1}
    assert len(batcher.stats.queue_wait_s) == 1 and batcher.stats.queue_wait_s[0] >= 0.04


async def test_window_zero_sends_each_item_alone() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=0.0)
    await asyncio.gather(*(batcher.submit(f"p{n}") for n in range(3)))
    assert handler.batches == [["p0"], ["p1"], ["p2"]]


async def test_units_fill_a_batch_and_an_item_is_never_split() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=10.0, max_size=5)
    three = asyncio.ensure_future(batcher.submit("three", units=3))
    two = asyncio.ensure_future(batcher.submit("two", units=2))
    assert await asyncio.gather(three, two) == ["answer:three", "answer:two"]
    big = await batcher.submit("seven", units=7)  # larger than a batch: goes alone
    assert big == "answer:seven"
    assert handler.batches == [["three", "two"], ["seven"]]


async def test_a_full_queue_rejects_at_once_with_retry_after() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=10.0, max_size=50, max_queue=3)
    waiting = [asyncio.ensure_future(batcher.submit(f"p{n}")) for n in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(OverloadedError) as caught:
        await batcher.submit("one too many")
    assert caught.value.retry_after_s >= 1
    await batcher.aclose()
    assert [await w for w in waiting] == ["answer:p0", "answer:p1", "answer:p2"]


async def test_an_item_past_its_deadline_is_never_sent() -> None:
    handler = Recorder()
    clock = [0.0]
    batcher = make(handler, window_s=0.01, timeout_s=1.0, clock=lambda: clock[0])
    task = asyncio.ensure_future(batcher.submit("late"))
    await asyncio.sleep(0)
    clock[0] = 5.0  # the deadline passes before the window ends
    with pytest.raises(QueueTimeoutError) as caught:
        await task
    assert status_of(caught.value) == 504  # a gateway timeout to the client
    assert handler.batches == []


async def test_a_cancelled_caller_is_dropped_before_sending() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=0.02)
    gone = asyncio.ensure_future(batcher.submit("gone"))
    stays = asyncio.ensure_future(batcher.submit("stays"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await stays == "answer:stays"
    assert handler.batches == [["stays"]]
    assert batcher.stats.dropped_cancelled == 1


async def test_a_failed_item_fails_only_itself() -> None:
    async def handler(items: list[str]) -> list[str | BaseException]:
        return [ValueError(item) if item == "bad" else item for item in items]

    batcher = make(handler, window_s=0.01)
    results = await asyncio.gather(
        batcher.submit("good"),
        batcher.submit("bad"),
        batcher.submit("fine"),
        return_exceptions=True,
    )
    assert results[0] == "good" and results[2] == "fine"
    assert isinstance(results[1], ValueError)


async def test_a_failing_handler_fails_its_batch_and_the_batcher_lives_on() -> None:
    calls = 0

    async def handler(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("provider down")
        return items

    batcher = make(handler, window_s=0.01)
    first = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in first)
    assert await batcher.submit("c") == "c"


async def test_a_wrong_number_of_results_fails_the_batch_loudly() -> None:
    async def handler(items: list[str]) -> list[str]:
        return items[:-1]

    batcher = make(handler, window_s=0.01)
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "results" in str(r) for r in results)


async def test_close_sends_what_is_queued_then_refuses() -> None:
    handler = Recorder()
    batcher = make(handler, window_s=10.0)
    waiting = [asyncio.ensure_future(batcher.submit(f"p{n}")) for n in range(2)]
    await asyncio.sleep(0)
    await batcher.aclose()
    assert [w.result() for w in waiting] == ["answer:p0", "answer:p1"]
    with pytest.raises(ShuttingDownError):
        await batcher.submit("after")


async def test_close_without_drain_fails_what_is_queued() -> None:
    batcher = make(Recorder(), window_s=10.0)
    waiting = asyncio.ensure_future(batcher.submit("p"))
    await asyncio.sleep(0)
    await batcher.aclose(drain=False)
    with pytest.raises(ShuttingDownError):
        await waiting


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(
        st.tuples(st.integers(1, 4), st.booleans(), st.integers(0, 3)), min_size=1, max_size=40
    ),
    max_size=st.integers(1, 8),
    window_ms=st.sampled_from([0, 1, 3]),
)
def test_every_caller_gets_exactly_its_own_answer(
    plan: list[tuple[int, bool, int]], max_size: int, window_ms: int
) -> None:
    """Random sizes, cancellations and arrival gaps: each survivor gets its own result, once."""

    async def scenario() -> None:
        sent: list[list[str]] = []

        async def handler(items: list[str]) -> list[str]:
            sent.append(items)
            await asyncio.sleep(0)
            return [f"r:{item}" for item in items]

        batcher: Batcher[str, str] = Batcher(
            handler, window_s=window_ms / 1000, max_size=max_size, max_queue=10_000
        )
        tasks = []
        for number, (units, cancel, gap) in enumerate(plan):
            task = asyncio.ensure_future(batcher.submit(f"i{number}", units=units))
            tasks.append((f"i{number}", task, cancel))
            for _ in range(gap):
                await asyncio.sleep(0)
        await asyncio.sleep(0)  # every submit has run: none arrives after the close below
        for _, task, cancel in tasks:
            if cancel:
                task.cancel()
        await batcher.aclose()
        outcomes = await asyncio.gather(*(t for _, t, _ in tasks), return_exceptions=True)
        sent_items = [item for batch in sent for item in batch]
        assert len(sent_items) == len(set(sent_items)), "no item is sent twice"
        for (name, task, _), outcome in zip(tasks, outcomes, strict=True):
            if task.cancelled():
                continue
            assert outcome == f"r:{name}"
            assert name in sent_items
        for batch in sent:
            units = sum(plan[int(item[1:])][0] for item in batch)
            assert units <= max_size or len(batch) == 1

    asyncio.run(scenario())


async def test_items_wait_for_a_free_slot_so_batches_grow_with_load() -> None:
    release = asyncio.Event()
    batches: list[list[str]] = []

    async def handler(items: list[str]) -> list[str]:
        batches.append(items)
        await release.wait()
        return items

    batcher = make(handler, window_s=0.001, max_size=10, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit("first"))
    await asyncio.sleep(0.01)  # the first batch is out and holds the only slot
    rest = [asyncio.ensure_future(batcher.submit(f"p{n}")) for n in range(6)]
    await asyncio.sleep(0.01)  # their window is over, but there is no slot
    assert batches == [["first"]]
    release.set()
    assert await first == "first"
    assert [await r for r in rest] == [f"p{n}" for n in range(6)]
    assert batches == [["first"], [f"p{n}" for n in range(6)]]
