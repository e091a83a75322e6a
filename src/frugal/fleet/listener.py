"""One pattern subscription per process that wakes whoever waits on a settled lease.

Every replica subscribes once (``PSUBSCRIBE {prefix}fleet:done:*``) rather than once per
question: a follower registers a `Watch` on its question's channel and is woken when the leader
publishes there. A message only wakes: what happened is read from the lease itself, so a
message lost while the subscription reconnects costs a poll interval, never an answer.

    async with DoneListener(client, names.done_pattern) as listener:
        with listener.watch(channel) as watch:
            await watch.wait(0.5)   # True when woken, False when the time ran out
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from types import TracebackType

import redis.asyncio as aioredis

__all__ = ["DoneListener", "Watch"]

logger = logging.getLogger(__name__)

_FIRST_RETRY_S = 0.2
_LAST_RETRY_S = 5.0


class Watch:
    """A waiter on one channel; ``wait`` returns as soon as a message came since the last."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """Whether a message came (now or since the last wait) within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class DoneListener:
    """Runs the subscription in a task of its own, reconnecting after a failure (with a
    growing pause, up to 5 s). ``aclose`` ends it."""

    def __init__(self, client: aioredis.Redis, pattern: str) -> None:
        self._client = client
        self._pattern = pattern
        self._watches: dict[bytes, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()  # set while the subscription is live

    async def __aenter__(self) -> DoneListener:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="frugal fleet listener")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def watch(self, channel: str) -> Iterator[Watch]:
        """A `Watch` woken by every message on ``channel`` while the block runs."""
        key = channel.encode()
        watch = Watch()
        self._watches.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches[key]
            watches.discard(watch)
            if not watches:
                del self._watches[key]

    async def _run(self) -> None:
        pause = _FIRST_RETRY_S
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.psubscribe(self._pattern)
                    self.subscribed.set()
                    pause = _FIRST_RETRY_S
                    logger.debug("fleet: subscribed to %s", self._pattern)
                    async for message in pubsub.listen():
                        if message.get("type") == "pmessage":
                            self._wake(message["channel"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or gone: followers poll until it is back
                logger.debug("fleet: the subscription failed (%s); again in %g s", exc, pause)
            finally:
                self.subscribed.clear()
            # The watches may have missed a message meanwhile: let each look at its lease now.
            for watches in self._watches.values():
                for watch in watches:
                    watch.wake()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_RETRY_S)

    def _wake(self, channel: bytes | str) -> None:
        key = channel.encode() if isinstance(channel, str) else channel
        for watch in self._watches.get(key, ()):
            watch.wake()
