"""The fleet in the admin routes: this replica's report, and ``/admin/stats?view=fleet``.

With the Redis store every replica writes its report into Redis (`frugal.fleet.reports`) every
``FRUGAL_FLEET_REPORT_S``; the fleet view, asked of any replica, sums the live ones. Without
the Redis store there is no fleet to see: the view is a 404 naming the setting, as every admin
route of a part that is off is (the cache's, shadow mode's).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from frugal.api.state import GatewayState
from frugal.errors import NotFoundError
from frugal.fleet import Fleet, fleet_view, read_reports

# Rates and latencies do not add up across replicas: the view works the rates out again.
_NOT_SUMMED = ("hit_rate", "latency_ms")


def fleet_section(fleet: Fleet) -> dict[str, Any]:
    """What `/admin/stats` says of this process in the fleet."""
    leases = fleet.leases
    return {
        "replica": fleet.replica,
        "coalescing": leases is not None,
        "coalesced": leases.counts.coalesced if leases is not None else 0,
        "leases": asdict(leases.counts) if leases is not None else {},
    }


async def replica_report(state: GatewayState, fleet: Fleet) -> dict[str, Any]:
    """This replica's report (`frugal.fleet.reports` describes its shape)."""
    summary = state.observer.summary.report()
    breaker = None
    counts: dict[str, Any] = {
        "since_start": _summable(summary["since_start"]),
        "last_5m": _summable(summary["last_5m"]),
        "upstream": {"calls": state.batching.calls, "retries": state.upstream.retries},
        "coalesced": state.coalescer.coalesced if state.coalescer is not None else 0,
        "fleet": {
            name: value
            for name, value in fleet_section(fleet).items()
            if name in ("coalesced", "leases")
        },
    }
    if state.cache is not None:
        held = await state.cache.stats()
        counts["cache"] = asdict(held.counters)
        breaker = held.breaker.state.value if held.breaker is not None else None
    latency = {
        name: {key: values[key] for key in ("count", "p50", "p95")}
        for name, values in summary["since_start"]["latency_ms"].items()
    }
    return {
        "replica": fleet.replica,
        "started_at": fleet.started_at,
        "reported_at": time.time(),
        "ready": state.ready,
        "cache": state.cache_health,
        "breaker": breaker,
        "latency_ms": latency,
        "counts": counts,
    }


async def fleet_stats(state: GatewayState) -> dict[str, Any]:
    """``/admin/stats?view=fleet``: the live replicas' reports summed, and each replica.

    Raises `NotFoundError` (404) without the Redis store, `CacheStoreError` (503) when Redis
    does not answer."""
    fleet = state.fleet
    if fleet is None:
        raise NotFoundError(
            "The fleet view needs the Redis store (FRUGAL_STORE=redis): the replicas of a "
            "fleet report there. This gateway runs alone; view=process shows it.",
            param="view",
        )
    reports = await read_reports(fleet.client, fleet.names)
    view = fleet_view(reports, interval_s=state.settings.fleet_report_s, now=time.time())
    return view | {"replica": fleet.replica}


def _summable(period: dict[str, Any]) -> dict[str, Any]:
    """A summary period without what does not add up."""
    kept = {name: value for name, value in period.items() if name not in _NOT_SUMMED}
    items = dict(kept.get("items") or {})
    items.pop("hit_rate", None)
    return kept | {"items": items}
