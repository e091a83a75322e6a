"""Savings and latency since start and over the last five minutes: `/admin/stats`, the
dashboard and the demo's report all read this.

Memory stays bounded whatever the traffic: the last five minutes are thirty 10-second buckets of
totals, and each totals keeps at most a fixed number of latencies per class (the latest).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from frugal.observability.record import RequestRecord
from frugal.outcome import Outcome
from frugal.percentiles import percentile

WINDOW_S = 300
BUCKET_S = 10
TOP_PROMPTS = 10
RECENT_MISSES = 20


def _latencies(limit: int) -> dict[str, deque[float]]:
    """One bounded list per latency class (`Outcome.header`: hits of both tiers together)."""
    return {name: deque(maxlen=limit) for name in {outcome.header for outcome in Outcome}}


@dataclass
class Totals:
    """Counts, savings and latencies of a set of requests."""

    latency_limit: int = 50_000
    requests: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    prompt_tokens_saved: int = 0
    completion_tokens_saved: int = 0
    usd_saved: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    latency_s: dict[str, deque[float]] = field(default_factory=dict)
    items_hit: int = 0  # items of lists answered item by item, from the cache
    items_missed: int = 0  # and upstream

    def __post_init__(self) -> None:
        self.latency_s = _latencies(self.latency_limit)

    def add(self, record: RequestRecord) -> None:
        self.requests += 1
        self.outcomes[record.outcome] += 1
        self.latency_s[record.outcome.header].append(record.latency_s)
        self.items_hit += record.items_hit
        self.items_missed += record.items_missed
        if record.saves_tokens:
            self.prompt_tokens_saved += record.prompt_tokens
            self.completion_tokens_saved += record.completion_tokens
            if record.cost_usd is None:
                self.unpriced.add(record.model)
            else:
                self.usd_saved += record.cost_usd

    def merge(self, other: Totals) -> None:
        self.requests += other.requests
        self.outcomes.update(other.outcomes)
        self.prompt_tokens_saved += other.prompt_tokens_saved
        self.completion_tokens_saved += other.completion_tokens_saved
        self.usd_saved += other.usd_saved
        self.unpriced |= other.unpriced
        self.items_hit += other.items_hit
        self.items_missed += other.items_missed
        for name, values in other.latency_s.items():
            self.latency_s[name].extend(values)

    @property
    def hit_rate(self) -> float:
        """Hits among the requests the cache was asked about (bypasses and errors aside); a
        partial list is asked about and not a hit (``items`` counts its items)."""
        hits = sum(n for outcome, n in self.outcomes.items() if outcome.is_hit)
        looked_up = sum(n for outcome, n in self.outcomes.items() if outcome.looked_up)
        return hits / looked_up if looked_up else 0.0

    @property
    def items_hit_rate(self) -> float:
        """Items from the cache among the items of lists answered item by item."""
        items = self.items_hit + self.items_missed
        return self.items_hit / items if items else 0.0

    @property
    def calls_saved(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome.saved)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "outcomes": {outcome.value: self.outcomes[outcome] for outcome in Outcome},
            "hit_rate": self.hit_rate,
            "calls_saved": self.calls_saved,
            "tokens_saved": {
                "prompt": self.prompt_tokens_saved,
                "completion": self.completion_tokens_saved,
                "total": self.prompt_tokens_saved + self.completion_tokens_saved,
            },
            "money_saved_usd": round(self.usd_saved, 6),
            "items": {
                "hits": self.items_hit,
                "misses": self.items_missed,
                "hit_rate": self.items_hit_rate,
            },
            "unpriced_models": sorted(self.unpriced),
            "latency_ms": {
                name: _percentiles(values) for name, values in self.latency_s.items() if values
            },
        }


def _percentiles(values: Iterable[float]) -> dict[str, float]:
    ms = [value * 1000 for value in values]
    return {
        "count": len(ms),
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms),
    }


class Summary:
    """Feed it every finished request; ask it for the report."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started_at = clock()
        self.since_start = Totals()
        self._buckets: deque[tuple[float, Totals]] = deque()
        self._hits_by_entry: Counter[str] = Counter()
        self._cached_prompts: dict[str, str] = {}
        self._misses: deque[dict[str, Any]] = deque(maxlen=RECENT_MISSES)

    def add(self, record: RequestRecord) -> None:
        now = self._clock()
        self.since_start.add(record)
        start = now - now % BUCKET_S
        if not self._buckets or self._buckets[-1][0] != start:
            self._buckets.append((start, Totals(latency_limit=2_000)))
            self._prune(now)
        self._buckets[-1][1].add(record)
        if record.entry_id is not None and record.outcome.is_hit:
            self._hits_by_entry[record.entry_id] += 1
            self._cached_prompts[record.entry_id] = record.cached_prompt or ""
            if len(self._hits_by_entry) > 10_000:  # keep the leaders, forget the long tail
                kept = dict(self._hits_by_entry.most_common(1_000))
                self._hits_by_entry = Counter(kept)
                self._cached_prompts = {key: self._cached_prompts[key] for key in kept}
        if record.outcome is Outcome.MISS:
            self._misses.appendleft(
                {
                    "at": now,
                    "endpoint": record.endpoint,
                    "model": record.model,
                    "tenant": record.tenant,
                    "prompt": record.prompt,
                    "latency_ms": record.latency_s * 1000,
                }
            )

    def report(self) -> dict[str, Any]:
        now = self._clock()
        self._prune(now)
        recent = Totals()
        for _, totals in self._buckets:
            recent.merge(totals)
        return {
            "uptime_s": now - self.started_at,
            "since_start": self.since_start.as_dict(),
            "last_5m": recent.as_dict(),
            "timeline": [
                {
                    "at": start,
                    "requests": totals.requests,
                    "hit_rate": totals.hit_rate,
                    "calls_saved": totals.calls_saved,
                }
                for start, totals in self._buckets
            ],
            "top_prompts": [
                {"entry_id": entry_id, "prompt": self._cached_prompts[entry_id], "hits": hits}
                for entry_id, hits in self._hits_by_entry.most_common(TOP_PROMPTS)
            ],
            "recent_misses": list(self._misses),
        }

    def _prune(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - WINDOW_S:
            self._buckets.popleft()
