"""A fleet of real gateways on one Redis in front of one slow simulated provider (1 s a call):
one upstream call per question across the replicas, a leader that dies, Redis that stops, and
the fleet seen whole (``/admin/stats?view=fleet``, the dashboard, the metrics' replica label).

Real `frugal serve` processes, a real Redis 8, the `openai` SDK, Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from frugal.local.redis_server import RedisServer
from tests.conftest import ADMIN_KEY, Stack, StackFactory, redis_env

NAMES = ("a", "b", "c")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Fleet:
    redis: RedisServer
    replicas: dict[str, Stack]
    env: dict[str, str]

    @property
    def sim(self) -> Stack:
        return self.replicas["a"]


@pytest.fixture(scope="module")
def fleet(make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three replicas, ``a``, ``b`` and ``c``, on a Redis of their own (one test stops it)."""
    log = tmp_path_factory.mktemp("fleet-redis") / "redis.log"
    with RedisServer.start(log_path=log) as server:
        env = redis_env(
            server.url,
            FRUGAL_FLEET_REPORT_S="0.5",
            FRUGAL_FLEET_LEASE_TTL_S="2",
            # Longer than any test waits: a follower that waited it out would be counted.
            FRUGAL_FLEET_WAIT_S="60",
            # The fleet is what is tested: a busy machine must not make a save miss its bound.
            FRUGAL_STORE_TIMEOUT_MS="2000",
        )
        first = make_stack(
            sim_args=["--call-latency-ms", "1000"], env=env | {"FRUGAL_REPLICA_ID": "a"}
        )
        replicas = {"a": first}
        for name in NAMES[1:]:
            replicas[name] = make_stack(env=env | {"FRUGAL_REPLICA_ID": name}, sim=first.sim)
        yield Fleet(redis=server, replicas=replicas, env=env)


def sdk(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.base_url, api_key="k", max_retries=0, timeout=60)


async def ask(client: openai.AsyncOpenAI, text: str) -> tuple[str, str]:
    """The answer's text and the cache outcome header."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-frugal-cache"]


def stats(stack: Stack, view: str = "process") -> dict[str, Any]:
    with stack.admin() as admin:
        response = admin.get("/admin/stats", params={"view": view})
    response.raise_for_status()
    return dict(response.json())


def leases(stack: Stack) -> dict[str, int]:
    return dict(stats(stack)["fleet"]["leases"])


def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Whether ``check`` came true within ``timeout_s`` (asked every 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def listed(stack: Stack) -> list[str]:
    return [replica["replica"] for replica in stats(stack, "fleet")["replicas"]]


async def test_thirty_identical_questions_over_three_replicas_make_one_upstream_call(
    fleet: Fleet,
) -> None:
    fleet.sim.reset_sim()
    question = "What is the tallest mountain in Africa?"
    clients = [sdk(fleet.replicas[name]) for name in NAMES]
    try:
        results = await asyncio.gather(*(ask(clients[n % 3], question) for n in range(30)))
    finally:
        for client in clients:
            await client.close()
    answers = {answer for answer, _ in results}
    assert len(answers) == 1 and question in answers.pop()
    assert fleet.sim.sim_stats()["calls"] == 1
    outcomes = Counter(outcome for _, outcome in results)
    assert outcomes["miss"] == 1 and set(outcomes) <= {"miss", "coalesced", "hit"}, outcomes
    counts = [leases(fleet.replicas[name]) for name in NAMES]
    assert sum(count["led"] for count in counts) == 1
    # The other replicas had the answer from the leader's call, through the fleet.
    assert sum(count["coalesced"] for count in counts) >= 1
    assert sum(count["wait_ended"] + count["redis_error"] for count in counts) == 0


async def test_the_fleet_view_sums_the_replicas_and_lists_them(fleet: Fleet) -> None:
    for number, name in enumerate(NAMES):
        async with sdk(fleet.replicas[name]) as client:
            for turn in range(number + 1):  # 1, 2 and 3 requests: each replica its own count
                await ask(client, f"Name a river of continent number {number}, turn {turn}.")
    own = {name: stats(fleet.replicas[name]) for name in NAMES}
    requests = sum(own[name]["summary"]["since_start"]["requests"] for name in NAMES)
    calls = sum(own[name]["upstream"]["calls"] for name in NAMES)

    def caught_up() -> bool:
        view = stats(fleet.replicas["b"], "fleet")
        return view["totals"]["since_start"]["requests"] == requests and len(view["replicas"]) == 3

    assert eventually(caught_up)
    view = stats(fleet.replicas["b"], "fleet")
    assert view["view"] == "fleet" and view["replica"] == "b"
    assert view["totals"]["upstream"]["calls"] == calls
    assert [replica["replica"] for replica in view["replicas"]] == list(NAMES)
    for replica in view["replicas"]:
        mine = own[replica["replica"]]
        assert replica["requests"] == mine["summary"]["since_start"]["requests"]
        assert replica["upstream_calls"] == mine["upstream"]["calls"]
        assert (replica["ready"], replica["cache"], replica["breaker"]) == (True, "ok", "closed")
        assert replica["age_s"] <= view["report_ttl_s"]
    outcomes = view["totals"]["since_start"]["outcomes"]
    assert sum(outcomes.values()) == requests


def test_every_metric_names_its_replica(fleet: Fleet) -> None:
    text = httpx.get(fleet.replicas["c"].gateway.url + "/metrics").text
    samples = [
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    ]
    assert {sample.labels.get("replica") for sample in samples} == {"c"}
    names = {sample.name for sample in samples}
    assert {"frugal_replica_info", "frugal_requests_total", "frugal_fleet_coalesced_total"} <= names
    led = [
        s for s in samples if s.name == "frugal_fleet_leases_total" and s.labels["outcome"] == "led"
    ]
    assert [sample.value for sample in led] == [leases(fleet.replicas["c"])["led"]]


def test_the_dashboard_shows_the_fleet(fleet: Fleet) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    url = fleet.replicas["a"].gateway.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/dashboard")
        page.fill("input[name=key]", ADMIN_KEY)
        page.click("button[type=submit]")
        page.wait_for_function("Number(document.body.dataset.rendered || 0) >= 1", timeout=20_000)
        assert page.is_visible("#views") and not page.is_visible("#replicas")
        page.click("#view-fleet")
        page.wait_for_function(
            "document.querySelectorAll('#replicas tbody tr').length == 3", timeout=20_000
        )
        rows = page.locator("#replicas tbody tr")
        assert [rows.nth(i).get_attribute("data-replica") for i in range(3)] == list(NAMES)
        view = stats(fleet.replicas["a"], "fleet")
        shown = int((page.text_content("#requests") or "").replace(",", ""))
        # The fleet's requests, summed (one more request may have been reported meanwhile).
        assert shown <= view["totals"]["since_start"]["requests"]
        assert shown > stats(fleet.replicas["a"])["summary"]["since_start"]["requests"]
        assert not page.is_visible("#timeline")  # this process's charts are the other view's
        page.click("#view-process")
        page.wait_for_selector("#timeline", state="visible")
        assert errors == []
        browser.close()


async def test_a_leader_killed_mid_call_leaves_no_follower_without_an_answer(
    fleet: Fleet, make_stack: StackFactory
) -> None:
    doomed = make_stack(env=fleet.env | {"FRUGAL_REPLICA_ID": "doomed"}, sim=fleet.sim.sim)
    assert eventually(lambda: "doomed" in listed(fleet.replicas["a"]))
    fleet.sim.reset_sim()
    before = {name: leases(fleet.replicas[name]) for name in ("a", "b")}
    question = "How many moons does Neptune have?"
    async with (
        sdk(doomed) as on_doomed,
        sdk(fleet.replicas["a"]) as on_a,
        sdk(fleet.replicas["b"]) as on_b,
    ):
        leader = asyncio.create_task(ask(on_doomed, question))
        # The leader's call is at the provider (1 s): its lease is taken.
        assert await asyncio.to_thread(eventually, lambda: fleet.sim.sim_stats()["in_flight"] == 1)
        followers = [asyncio.create_task(ask(client, question)) for client in (on_a, on_b) * 3]
        await asyncio.sleep(0.3)  # they reach the lease and wait on it
        doomed.gateway.stop(signal.SIGKILL)
        with pytest.raises(openai.APIConnectionError):
            await leader
        answers = await asyncio.gather(*followers)
    assert all(question in answer for answer, _ in answers)
    # The dead leader's call, and one more by whichever follower took its expired lease.
    assert fleet.sim.sim_stats()["calls"] == 2
    after = {name: leases(fleet.replicas[name]) for name in ("a", "b")}
    grew = {key: sum(after[n][key] - before[n][key] for n in after) for key in after["a"]}
    assert grew["led"] == 1 and grew["leader_gone"] >= 1 and grew["wait_ended"] == 0
    # The dead replica drops off the fleet view once its report expires.
    assert eventually(lambda: "doomed" not in listed(fleet.replicas["a"]))
    assert listed(fleet.replicas["a"]) == list(NAMES)


async def test_with_redis_stopped_every_request_is_answered_without_a_fleet_wait(
    fleet: Fleet,
) -> None:
    before = {name: leases(fleet.replicas[name]) for name in ("a", "b")}
    question = "What is the speed of sound in water?"
    fleet.redis.stop()
    try:
        async with sdk(fleet.replicas["a"]) as on_a, sdk(fleet.replicas["b"]) as on_b:
            answers = await asyncio.gather(*(ask(client, question) for client in (on_a, on_b) * 5))
        assert all(question in answer for answer, _ in answers)
        after = {name: leases(fleet.replicas[name]) for name in ("a", "b")}
        grew = {key: sum(after[n][key] - before[n][key] for n in after) for key in after["a"]}
        assert grew["wait_ended"] == 0 and grew["coalesced"] == 0 and grew["led"] == 0
        assert grew["redis_error"] >= 1  # each replica's first miss found Redis gone and went alone
        with fleet.replicas["a"].admin() as admin:
            refused = admin.get("/admin/stats", params={"view": "fleet"})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_error"
    finally:
        fleet.redis.restart()


def test_without_the_redis_store_the_fleet_view_is_refused(stack: Stack) -> None:
    with stack.admin() as admin:
        refused = admin.get("/admin/stats", params={"view": "fleet"})
        unknown = admin.get("/admin/stats", params={"view": "galaxy"})
        alone = admin.get("/admin/stats").json()
    assert refused.status_code == 404
    error = refused.json()["error"]
    assert error["param"] == "view" and "FRUGAL_STORE=redis" in error["message"]
    assert unknown.status_code == 400
    assert "fleet" not in alone
    assert "replica=" not in httpx.get(stack.gateway.url + "/metrics").text
