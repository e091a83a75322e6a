"""What ``GET /sim/stats`` reports: counts per route, rejections by kind, calls in flight."""

from __future__ import annotations

from typing import Any

from frugal.sim.routes import ROUTES


class Stats:
    """The simulator's counters; `as_dict` is the body of ``GET /sim/stats``."""

    COUNTS = ("calls", "prompts", "tokens")
    REJECTIONS = ("unauthorized", "rate_limited", "bad_request", "errors", "dropped", "not_found")

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.endpoints = {route: dict.fromkeys(self.COUNTS, 0) for route in ROUTES}
        self.rejected = dict.fromkeys(self.REJECTIONS, 0)
        self.max_in_flight = self.in_flight  # calls still running are still in flight

    def as_dict(self) -> dict[str, Any]:
        return {
            **{key: sum(counts[key] for counts in self.endpoints.values()) for key in self.COUNTS},
            "endpoints": {endpoint: dict(counts) for endpoint, counts in self.endpoints.items()},
            "rejected": dict(self.rejected),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }
