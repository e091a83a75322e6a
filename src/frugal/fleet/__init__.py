"""The fleet: frugal processes on one Redis store that ask upstream once per question and
can be seen whole.

`open_fleet` makes this process a member (`Fleet`: its replica id, its Redis connection and,
with coalescing, its `FleetLeases`); `FleetLeases.turn` is the pipeline's hook for exact
coalescing across processes; `FleetReporter` and `read_reports` carry the replicas' reports,
which `fleet_view` sums; `FleetCollector` is its part of ``/metrics``.
"""

from frugal.fleet.leases import AnswerReader, FleetLeases, LeaseCounts, LeaseTurn
from frugal.fleet.listener import DoneListener
from frugal.fleet.member import Fleet, cached_answer, open_fleet, replica_id
from frugal.fleet.metrics import FleetCollector
from frugal.fleet.names import FleetNames
from frugal.fleet.reports import FleetReporter, fleet_view, read_reports, report_ttl_s

__all__ = [
    "AnswerReader",
    "DoneListener",
    "Fleet",
    "FleetCollector",
    "FleetLeases",
    "FleetNames",
    "FleetReporter",
    "LeaseCounts",
    "LeaseTurn",
    "cached_answer",
    "fleet_view",
    "open_fleet",
    "read_reports",
    "replica_id",
    "report_ttl_s",
]
