"""One finished request, as every observer sees it."""

from __future__ import annotations

from dataclasses import dataclass

from frugal.outcome import Outcome


@dataclass(frozen=True, kw_only=True)
class RequestRecord:
    """``prompt`` is the question's text (for opt-in logs and the dashboard's recent misses);
    ``cached_prompt`` and ``entry_id`` name the entry a hit was served from; tokens are the
    answer's ``usage`` (for a list answered item by item: its cached items' usage, what it
    saved); ``cost_usd`` is what they cost (``None``: price unknown). ``items_hit`` and
    ``items_missed`` count a list's items answered from the cache and upstream (both 0: not a
    list, or the cache was not read)."""

    request_id: str
    tenant: str
    endpoint: str
    model: str
    outcome: Outcome
    status: int
    latency_s: float
    similarity: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    upstream_calls: int = 0
    prompt: str | None = None
    cached_prompt: str | None = None
    entry_id: str | None = None
    streamed: bool = False
    items_hit: int = 0
    items_missed: int = 0

    @property
    def saved(self) -> bool:
        return self.outcome.saved

    @property
    def saves_tokens(self) -> bool:
        """Whether its tokens count as saved: see `Outcome.saves_tokens`."""
        return self.outcome.saves_tokens
