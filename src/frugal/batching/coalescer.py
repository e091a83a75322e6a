"""Single flight: while a miss is on its way upstream, equal or near-equal misses wait for it.

A *flight* is one miss in progress, registered under its scope (an opaque string: requests of
different scopes never share an answer) with its question's hash and vector. A later miss of
the same scope joins it when the question is the same (after normalisation) or its cosine
similarity to the flight's is at or above the threshold; it then gets the leader's answer, or
the leader's error, without a call of its own. When the leader's caller goes away, its
followers are told so (`LeaderGone`) and go upstream themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frugal.errors import LeaderGone
from frugal.futures import settle_error, settle_result

__all__ = ["Coalescer", "Flight", "Joined", "LeaderGone"]


@dataclass(eq=False)
class Flight:
    scope: str
    prompt_hash: str
    vector: np.ndarray | None
    future: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    followers: int = 0

    def succeed(self, answer: dict[str, Any]) -> None:
        settle_result(self.future, answer)

    def fail(self, error: BaseException) -> None:
        if settle_error(self.future, error):
            if not self.followers:
                self.future.exception()  # nobody will read it: keep asyncio from warning


@dataclass(frozen=True)
class Joined:
    flight: Flight
    similarity: float


class Coalescer:
    def __init__(self) -> None:
        self._flights: dict[str, list[Flight]] = {}
        self.coalesced = 0  # requests answered by another request's call

    def find(
        self, scope: str, prompt_hash: str, vector: np.ndarray | None, *, threshold: float
    ) -> Joined | None:
        """The in-flight miss this one may wait for, if any: exact first, then the nearest."""
        best: Joined | None = None
        for flight in self._flights.get(scope, ()):
            if flight.prompt_hash == prompt_hash:
                return Joined(flight, 1.0)
            if vector is None or flight.vector is None:
                continue
            similarity = float(np.dot(vector, flight.vector))
            if similarity >= threshold and (best is None or similarity > best.similarity):
                best = Joined(flight, similarity)
        return best

    async def follow(self, joined: Joined) -> dict[str, Any]:
        """Wait for the leader's answer (or its error); raises `LeaderGone` if it was cancelled."""
        joined.flight.followers += 1
        answer = await asyncio.shield(joined.flight.future)
        self.coalesced += 1
        return answer

    @contextmanager
    def lead(self, scope: str, prompt_hash: str, vector: np.ndarray | None) -> Iterator[Flight]:
        """Register a flight for the duration of the leader's upstream call."""
        flight = Flight(scope, prompt_hash, vector)
        flights = self._flights.setdefault(scope, [])
        flights.append(flight)
        try:
            yield flight
        except BaseException as exc:
            gone = isinstance(exc, asyncio.CancelledError)
            flight.fail(
                LeaderGone("the request this one waited for was cancelled") if gone else exc
            )
            raise
        finally:
            flights.remove(flight)
            if not flights:
                del self._flights[scope]
            flight.fail(LeaderGone("the request this one waited for ended without an answer"))
