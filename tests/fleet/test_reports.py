"""Replicas' reports in a real Redis, and the fleet view that sums them."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from frugal.errors import CacheStoreError
from frugal.fleet import FleetNames, FleetReporter, fleet_view, read_reports
from frugal.local.processes import free_port
from frugal.local.redis_server import RedisServer


def report(replica: str, *, requests: int, outcomes: dict[str, int], calls: int) -> dict[str, Any]:
    return {
        "replica": replica,
        "started_at": 1000.0,
        "reported_at": 1060.0,
        "ready": True,
        "cache": "ok",
        "breaker": "closed",
        "latency_ms": {"miss": {"count": 1, "p50": 900.0, "p95": 900.0}},
        "counts": {
            "since_start": {
                "requests": requests,
                "outcomes": outcomes,
                "calls_saved": requests - calls,
                "tokens_saved": {"prompt": 10, "completion": 20, "total": 30},
                "money_saved_usd": 0.25,
                "items": {"hits": 1, "misses": 3},
                "unpriced_models": [f"model-{replica}"],
            },
            "upstream": {"calls": calls, "retries": 0},
            "fleet": {"coalesced": 1, "leases": {"led": 2, "coalesced": 1}},
        },
    }


def test_the_view_sums_the_counts_and_works_the_rates_out_again() -> None:
    a = report("a", requests=4, outcomes={"miss": 2, "hit_exact": 2}, calls=2)
    b = report("b", requests=6, outcomes={"miss": 1, "coalesced": 1, "bypass": 4}, calls=5)
    b["counts"]["since_start"]["outcomes"]["from_a_newer_replica"] = 7
    view = fleet_view([a, b], interval_s=5.0, now=1062.5)
    totals = view["totals"]["since_start"]
    assert totals["requests"] == 10
    assert totals["outcomes"] == {
        "miss": 3, "hit_exact": 2, "coalesced": 1, "bypass": 4, "from_a_newer_replica": 7
    }  # fmt: skip
    # Hits among the requests the cache was asked about: 2 of miss 3, hit 2 and coalesced 1.
    assert totals["hit_rate"] == pytest.approx(2 / 6)
    assert totals["items"] == {"hits": 2, "misses": 6, "hit_rate": 0.25}
    assert totals["money_saved_usd"] == pytest.approx(0.5)
    assert totals["tokens_saved"] == {"prompt": 20, "completion": 40, "total": 60}
    assert totals["unpriced_models"] == ["model-a", "model-b"]
    assert view["totals"]["upstream"] == {"calls": 7, "retries": 0}
    assert view["totals"]["fleet"] == {"coalesced": 2, "leases": {"led": 4, "coalesced": 2}}
    listed = {replica["replica"]: replica for replica in view["replicas"]}
    assert listed["a"]["age_s"] == pytest.approx(2.5) and listed["a"]["uptime_s"] == 60.0
    assert (listed["a"]["requests"], listed["b"]["upstream_calls"]) == (4, 5)
    assert listed["a"]["hit_rate"] == 0.5
    assert (view["report_interval_s"], view["report_ttl_s"]) == (5.0, 15.0)


def test_no_replica_is_an_empty_fleet() -> None:
    view = fleet_view([], interval_s=5.0, now=0.0)
    assert view["replicas"] == [] and view["totals"] == {}


async def test_replicas_report_and_drop_off(redis_server: RedisServer) -> None:
    names = FleetNames(f"test-{uuid.uuid4().hex[:8]}:")
    async with aioredis.Redis.from_url(redis_server.url) as client:
        reporters = []
        for name in ("a", "b"):

            async def made(name: str = name) -> dict[str, Any]:
                return report(name, requests=1, outcomes={"miss": 1}, calls=1)

            reporter = FleetReporter(client, names=names, replica=name, interval_s=0.1, report=made)
            await reporter.report_once()
            reporters.append(reporter)
        assert [r["replica"] for r in await read_reports(client, names)] == ["a", "b"]
        # A replica that stops cleanly takes its report away at once.
        await reporters[0].aclose()
        assert [r["replica"] for r in await read_reports(client, names)] == ["b"]
        # One that dies (reports no more) drops off when its report expires: 3 intervals.
        deadline = time.monotonic() + 30
        while await read_reports(client, names) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await read_reports(client, names) == []
        # Running, it reports by itself.
        reporters[1].start()
        while not await read_reports(client, names) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [r["replica"] for r in await read_reports(client, names)] == ["b"]
        await reporters[1].aclose()


async def test_without_redis_the_view_says_the_store_failed() -> None:
    names = FleetNames("p:")
    async with aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0") as client:
        with pytest.raises(CacheStoreError):
            await read_reports(client, names)
