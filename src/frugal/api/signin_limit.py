"""A limit on failed sign-ins per client address: a sliding window over each address's failures.

An address with ``max_failures`` failures in the last ``window_s`` seconds is blocked: the sign-in
refuses every attempt from it, right key or wrong, until the oldest of those failures leaves the
window, and then lets exactly one more through. Refusing the right key too is the point: if a
blocked address could still sign in, a guesser would learn which guess was right, and the
limit would slow nothing. Refused attempts are not counted, so a client that keeps knocking is
not locked out for longer than its own failures say; and only failures are remembered, so one
address's failures never block another's sign-in.

Memory is bounded: at most ``max_addresses`` addresses are remembered, each with at most
``max_failures`` times; when a new address fails and there is no room, the address whose last
failure is the oldest is forgotten. Someone who controls more addresses than that can make the
limiter forget their own; against such a spread, limiting by address is not the defence.

    limiter = SigninLimiter()              # 10 failures a minute
    if (wait_s := limiter.retry_after_s(address)) is not None:
        ...                                # refuse: 429, Retry-After: ceil(wait_s)
    elif wrong:
        limiter.record_failure(address)

The check and the count belong together, with nothing awaited between them: otherwise a burst
of attempts passes the check before the first of them is counted.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SigninLimiter:
    """Failed sign-ins by address over the last ``window_s`` seconds of ``clock``.

    ``clock`` is monotonic seconds (`time.monotonic`; tests pass their own). Not thread-safe:
    it lives on one event loop and never awaits.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 60.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("max_failures", max_failures),
            ("window_s", window_s),
            ("max_addresses", max_addresses),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_addresses = max_addresses
        self._clock = clock
        # Least recent failure first, so the front is the address to forget.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many addresses are remembered (some may hold only expired failures)."""
        return len(self._failures)

    def retry_after_s(self, address: str) -> float | None:
        """Seconds until ``address`` may try again (> 0), or None when it may try now."""
        now = self._clock()
        recent = self._recent(address, now)
        if len(recent) < self.max_failures:
            return None
        return recent[0] + self.window_s - now

    def failures(self, address: str) -> int:
        """How many failures of ``address`` the window holds now."""
        return len(self._recent(address, self._clock()))

    def record_failure(self, address: str) -> int:
        """Count a failed sign-in from ``address``; its failures in the window, this one included.

        Called only for an attempt that `retry_after_s` let through, so the count is at most
        ``max_failures``.
        """
        now = self._clock()
        recent = self._failures.get(address)
        if recent is None:
            while len(self._failures) >= self._max_addresses:
                self._failures.popitem(last=False)
            recent = self._failures[address] = deque(maxlen=self.max_failures)
        else:
            self._failures.move_to_end(address)
        self._expire(recent, now)
        recent.append(now)
        return len(recent)

    def _recent(self, address: str, now: float) -> deque[float]:
        recent = self._failures.get(address)
        if recent is None:
            return deque()
        self._expire(recent, now)
        if not recent:
            del self._failures[address]
        return recent

    def _expire(self, recent: deque[float], now: float) -> None:
        # A failure at t counts while now < t + window_s: at t + window_s it is gone.
        while recent and recent[0] + self.window_s <= now:
            recent.popleft()
