"""The simulated provider's requests-per-minute limit: a sliding 60 s window of admitted calls."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

_WINDOW_S = 60.0


class RequestsPerMinute:
    """At most ``rpm`` admitted calls in any 60 s; refused calls do not enter the window."""

    def __init__(self, rpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rpm, self._clock = rpm, clock
        self._admitted: deque[float] = deque()

    def admit(self) -> int | None:
        """None when the call is admitted, else the whole seconds (>= 1) until a place frees."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - _WINDOW_S:
            self._admitted.popleft()
        if len(self._admitted) < self._rpm:
            self._admitted.append(now)
            return None
        return max(1, math.ceil(self._admitted[0] + _WINDOW_S - now))

    def reset(self) -> None:
        self._admitted.clear()
