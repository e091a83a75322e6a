"""The fleet's Prometheus counters, read from `LeaseCounts` when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from frugal.fleet.leases import LeaseCounts

__all__ = ["FleetCollector"]


class FleetCollector(Collector):
    """``frugal_fleet_coalesced_total``: process-local leaders answered by another replica's
    upstream call (their own local followers are counted as coalesced requests as ever);
    ``frugal_fleet_leases_total{outcome}``: what became of the fleet turns (`LeaseCounts`)."""

    def __init__(self, counts: LeaseCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "frugal_fleet_coalesced",
            "Misses answered by another replica's upstream call (one per process-local leader).",
            self._counts.coalesced,
        )
        leases = CounterMetricFamily(
            "frugal_fleet_leases",
            "Fleet leases by outcome: led, coalesced, leader_failed, answer_missing, "
            "wait_ended, redis_error, leader_gone, lost.",
            labels=["outcome"],
        )
        for field in fields(LeaseCounts):
            leases.add_metric([field.name], getattr(self._counts, field.name))
        yield leases
