"""What ``GET /sim/stats`` reports: counts per route, rejections by kind, calls in flight, and
the lines answered in batches (apart from calls: a batch's lines are not calls)."""

from __future__ import annotations

from typing import Any

from frugal.sim.routes import BATCH_ENDPOINTS, ROUTES


class Stats:
    """The simulator's counters; `as_dict` is the body of ``GET /sim/stats``."""

    COUNTS = ("calls", "prompts", "tokens")
    BATCH_COUNTS = ("lines", "tokens")
    REJECTIONS = ("unauthorized", "rate_limited", "bad_request", "errors", "dropped", "not_found")

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.endpoints = {route: dict.fromkeys(self.COUNTS, 0) for route in ROUTES}
        self.rejected = dict.fromkeys(self.REJECTIONS, 0)
        self.max_in_flight = self.in_flight  # calls still running are still in flight
        self.batches = 0
        self.batch_endpoints = {
            endpoint: dict.fromkeys(self.BATCH_COUNTS, 0) for endpoint in BATCH_ENDPOINTS
        }

    def as_dict(self) -> dict[str, Any]:
        batch_counts = self.batch_endpoints.values()
        return {
            **{key: sum(counts[key] for counts in self.endpoints.values()) for key in self.COUNTS},
            "endpoints": {endpoint: dict(counts) for endpoint, counts in self.endpoints.items()},
            "rejected": dict(self.rejected),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "batches": self.batches,
            "batch_lines": sum(counts["lines"] for counts in batch_counts),
            "batch_tokens": sum(counts["tokens"] for counts in batch_counts),
            "batch_endpoints": {
                endpoint: dict(counts) for endpoint, counts in self.batch_endpoints.items()
            },
        }
