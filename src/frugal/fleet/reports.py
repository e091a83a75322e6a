"""The fleet seen whole: each replica reports its figures into Redis, any replica sums them.

A report is a JSON object (the gateway builds it: `frugal.api.fleet_view.replica_report`):

    {"replica": "host:1234", "started_at": 1.7e9, "reported_at": 1.7e9, "ready": true,
     "cache": "ok", "breaker": "closed", "latency_ms": {"hit": {"p50": ..}, ..},
     "counts": {"since_start": {"requests": 10, "outcomes": {"miss": 4, ..}, ..}, ..}}

``counts`` holds only figures that add up across replicas (numbers, nested; lists of names
are joined); `fleet_view` sums them and works the rates out again from the sums.

`FleetReporter` writes this replica's report every ``interval_s`` under a key that expires
after three intervals, and records the replica in a sorted set by time; `read_reports` lists
the reports still alive. A replica that stops cleanly removes its report at once; one that
dies drops off when its report expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from frugal.errors import CacheStoreError
from frugal.fleet.leases import REDIS_FAILURES
from frugal.fleet.names import FleetNames
from frugal.outcome import Outcome

__all__ = ["FleetReporter", "fleet_view", "read_reports", "report_ttl_s"]

logger = logging.getLogger(__name__)

Report = dict[str, Any]
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
_OP_TIMEOUT_S = 2.0  # a report is not on any request's path: it may wait longer than a lookup


def report_ttl_s(interval_s: float) -> float:
    """How long a report lives: three intervals, so one late report does not drop a replica."""
    return 3 * interval_s


class FleetReporter:
    """Writes ``report()`` every ``interval_s`` (the first at `start`). A failure to write is
    logged once per outage and tried again at the next interval; it never stops the loop."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        names: FleetNames,
        replica: str,
        interval_s: float,
        report: Callable[[], Awaitable[Report]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._names = names
        self._replica = replica
        self._interval_s = interval_s
        self._ttl_ms = max(1, round(report_ttl_s(interval_s) * 1000))
        self._report = report
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="frugal fleet reporter")

    async def aclose(self) -> None:
        """Stop reporting and take this replica's report away."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*REDIS_FAILURES):
            async with asyncio.timeout(_OP_TIMEOUT_S):
                await self._client.delete(self._names.report(self._replica))
                await self._client.zrem(self._names.replicas, self._replica)

    async def report_once(self) -> None:
        """Write the report now; raises what Redis raises."""
        report = await self._report()
        now = self._clock()
        async with asyncio.timeout(_OP_TIMEOUT_S):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._names.report(self._replica), json.dumps(report), px=self._ttl_ms)
                pipe.zadd(self._names.replicas, {self._replica: now})
                # Names not heard of for long are forgotten (their reports expired long since).
                pipe.zremrangebyscore(self._names.replicas, "-inf", now - 100 * self._interval_s)
                await pipe.execute()

    async def _run(self) -> None:
        while True:
            try:
                await self.report_once()
            except REDIS_FAILURES as exc:
                if not self._failing:
                    logger.warning("fleet: this replica's report was not written (%s)", exc)
                self._failing = True
            else:
                if self._failing:
                    logger.info("fleet: this replica reports again")
                self._failing = False
            await asyncio.sleep(self._interval_s)


async def read_reports(client: aioredis.Redis, names: FleetNames) -> list[Report]:
    """The live replicas' reports, by replica name; `CacheStoreError` when Redis fails."""
    try:
        async with asyncio.timeout(_OP_TIMEOUT_S):
            listed = await client.zrange(names.replicas, 0, -1)
            replicas = [name.decode() for name in listed if isinstance(name, bytes)]
            raw = await client.mget([names.report(name) for name in replicas]) if replicas else []
    except REDIS_FAILURES as exc:
        raise CacheStoreError(f"the fleet's reports could not be read from Redis: {exc}") from exc
    reports = []
    for value in raw:
        if value is None:
            continue  # expired: that replica stopped reporting
        with contextlib.suppress(ValueError):
            report = json.loads(value)
            if isinstance(report, dict):
                reports.append(report)
    return sorted(reports, key=lambda report: str(report.get("replica")))


def fleet_view(reports: list[Report], *, interval_s: float, now: float) -> dict[str, Any]:
    """The fleet: every replica's health and its own figures, and the figures summed."""
    totals: dict[str, Any] = {}
    for report in reports:
        totals = _add(totals, report.get("counts") or {})
    for period in ("since_start", "last_5m"):
        if isinstance(totals.get(period), dict):
            _rates(totals[period])
    return {
        "view": "fleet",
        "replicas": [_replica(report, now) for report in reports],
        "totals": totals,
        "report_interval_s": interval_s,
        "report_ttl_s": report_ttl_s(interval_s),
    }


def _replica(report: Report, now: float) -> dict[str, Any]:
    counts = report.get("counts") or {}
    since_start = dict(counts.get("since_start") or {})
    _rates(since_start)
    reported_at = float(report.get("reported_at") or 0.0)
    started_at = float(report.get("started_at") or 0.0)
    return {
        "replica": report.get("replica"),
        "ready": report.get("ready"),
        "cache": report.get("cache"),
        "breaker": report.get("breaker"),
        "started_at": started_at,
        "uptime_s": max(0.0, reported_at - started_at),
        "reported_at": reported_at,
        # Hosts' clocks differ a little: a report is never from the future.
        "age_s": max(0.0, now - reported_at),
        "requests": since_start.get("requests", 0),
        "hit_rate": since_start.get("hit_rate", 0.0),
        "calls_saved": since_start.get("calls_saved", 0),
        "upstream_calls": (counts.get("upstream") or {}).get("calls", 0),
        "fleet_coalesced": (counts.get("fleet") or {}).get("coalesced", 0),
        "latency_ms": report.get("latency_ms") or {},
    }


def _add(total: Any, value: Any) -> Any:
    """``total`` and ``value`` summed: numbers added, objects key by key, lists joined."""
    if isinstance(value, bool) or value is None:
        return total
    if isinstance(value, int | float):
        return (total if isinstance(total, int | float) else 0) + value
    if isinstance(value, dict):
        summed = dict(total) if isinstance(total, dict) else {}
        for key, item in value.items():
            summed[key] = _add(summed.get(key), item)
        return summed
    if isinstance(value, list):
        joined = set(total) if isinstance(total, list) else set()
        return sorted(joined | {str(item) for item in value})
    return total


def _rates(period: dict[str, Any]) -> None:
    """Work ``period``'s rates out from its counts (rates do not add up)."""
    outcomes = period.get("outcomes") or {}
    # A newer replica's outcome unknown here is left out of the rate, never a failure.
    known = [(_OUTCOMES[name], n) for name, n in outcomes.items() if name in _OUTCOMES]
    hits = sum(n for outcome, n in known if outcome.is_hit)
    looked_up = sum(n for outcome, n in known if outcome.looked_up)
    period["hit_rate"] = hits / looked_up if looked_up else 0.0
    items = period.get("items")
    if isinstance(items, dict):
        asked = items.get("hits", 0) + items.get("misses", 0)
        items["hit_rate"] = items.get("hits", 0) / asked if asked else 0.0
