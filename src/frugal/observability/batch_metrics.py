"""Prometheus metrics of the Batch API (`frugal.deferred`), on the gateway's registry.

Counted once per batch, when it ends: its lines by result (``hit``: answered from the cache,
``folded``: a repeat or paraphrase of another line, ``sent``: a unique miss sent upstream,
``failed``: in the error file), batches by final status, and what they cost against what every
line would have cost sent live.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class BatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lines = Counter(
            "frugal_batch_lines",
            "Batch API lines by result: hit, folded, sent (upstream), failed.",
            ["result"],
            registry=registry,
        )
        self.batches = Counter(
            "frugal_batches", "Batch API batches ended, by status.", ["status"], registry=registry
        )
        self.cost = Counter(
            "frugal_batch_cost_usd",
            "Dollars the ended batches cost upstream (batches with known prices).",
            registry=registry,
        )
        self.live_cost = Counter(
            "frugal_batch_live_cost_usd",
            "Dollars the same batches' lines would have cost sent live, one by one.",
            registry=registry,
        )

    def ended(
        self,
        status: str,
        lines: dict[str, int],
        *,
        cost_usd: float | None,
        live_cost_usd: float | None,
    ) -> None:
        self.batches.labels(status).inc()
        for result, count in lines.items():
            self.lines.labels(result).inc(count)
        if cost_usd is not None and live_cost_usd is not None:
            self.cost.inc(cost_usd)
            self.live_cost.inc(live_cost_usd)
