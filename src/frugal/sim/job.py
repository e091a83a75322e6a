"""One call as the simulator's steps see it, whatever its route.

A route's module turns a request into a `Job` (or raises `Rejected`); `Simulator.serve` takes it
through the steps of its docstring and sends what the job says, unchanged by the route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.responses import Response


async def _nothing() -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class Streamed:
    """An answer sent as server-sent events: ``head`` once the call's latency has passed, one
    group of ``steps`` per token time, then ``tail``. ``on_complete`` runs once the last step is
    sent (a stored response is kept then)."""

    head: Sequence[bytes]
    steps: Sequence[Sequence[bytes]]
    tail: Sequence[bytes]
    on_complete: Callable[[], None] | None = None


@dataclass(frozen=True, kw_only=True)
class Job:
    """What a valid call asks of the simulator.

    ``items`` are the prompts it counts (and pays ``item_latency_ms`` for); ``screened`` the
    texts ``reject_containing`` looks at, ``param`` the field a refusal names; ``output_tokens``
    its longest answer's tokens (latency), ``tokens`` its usage's ``total_tokens`` (stats).
    ``answer`` builds the response after the wait (an upload is stored, a deletion done, only
    then); ``release`` runs however the call ends, once its response is built (before a
    stream's first event): a spooled upload is closed.
    """

    items: int = 0
    screened: Sequence[str] = ()
    param: str | None = None
    output_tokens: int = 0
    tokens: int = 0
    answer: Callable[[], Awaitable[Response]] | Streamed
    release: Callable[[], Awaitable[None]] = field(default=_nothing)
