"""Tenants through the real gateway: client keys, a hard cache partition per tenant, shared
namespaces by configuration only, and no timing side channel across tenants."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
from scipy.stats import ks_2samp

from frugal.tenants import add_key
from tests.conftest import CANARY_KEY, Stack, StackFactory, redis_env

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"


@pytest.fixture(scope="module")
def keyed(
    make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Stack, dict[str, str]]:
    """A gateway with keys for acme, globex and initech; acme and initech share "faq"."""
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys = {tenant: add_key(path, tenant) for tenant in ("acme", "globex", "initech")}
    path.write_text(
        path.read_text() + "tenants:\n  acme: {namespace: faq}\n  initech: {namespace: faq}\n"
    )
    # Batching off: a miss then costs its work, not a window's wait (the timing test sends many).
    env = {"FRUGAL_API_KEYS_FILE": str(path), "FRUGAL_BATCH_WINDOW_MS": "0"}
    return make_stack(env=env), keys


def ask(stack: Stack, key: str | None, text: str, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return httpx.post(stack.base_url + "/chat/completions", json=body, headers=headers, timeout=30)


def test_a_request_without_a_valid_key_is_refused(keyed: tuple[Stack, dict[str, str]]) -> None:
    stack, keys = keyed
    for key in [None, "sk-not-ours", keys["acme"] + "x", CANARY_KEY]:
        refused = ask(stack, key, FRANCE)
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert stack.sim_stats()["calls"] == 0


def test_each_tenant_is_its_own_partition_unless_configured_to_share(
    keyed: tuple[Stack, dict[str, str]],
) -> None:
    stack, keys = keyed
    stack.reset_sim()
    assert ask(stack, keys["acme"], FRANCE).headers["x-frugal-cache"] == "miss"
    assert ask(stack, keys["globex"], FRANCE).headers["x-frugal-cache"] == "miss"
    assert ask(stack, keys["acme"], FRANCE_PARAPHRASE).headers["x-frugal-cache"] == "hit"
    assert ask(stack, keys["initech"], FRANCE).headers["x-frugal-cache"] == "hit"  # shares faq
    # No header or body field can move a request into another partition.
    sneaky = ask(stack, keys["globex"], FRANCE_PARAPHRASE, **{"x-frugal-tenant": "acme"})
    assert sneaky.headers["x-frugal-cache"] == "hit"  # globex's own entry, from its own miss
    assert stack.sim_stats()["calls"] == 2
    found = httpx.get(stack.gateway.url + "/metrics").text
    assert 'tenant="globex"' in found and 'tenant="acme"' in found
    log = stack.gateway.log()
    assert all(key not in log for key in keys.values()) and CANARY_KEY not in log


def test_an_open_gateway_warns_at_start_up(stack: Stack) -> None:
    assert "runs open, as one tenant" in stack.gateway.log()


def prompts(count: int, seed: int) -> list[str]:
    """Distinct prompts far apart in meaning: random words, so none answers another."""
    words = (
        "river copper violin glacier tax orchid protocol saddle lantern vaccine meteor "
        "pottery sonnet bitcoin tundra falcon ledger quartz mango turbine parliament "
        "canyon yoga cathedral enzyme harbor chess volcano jazz algae pension comet"
    ).split()
    rng = random.Random(seed)
    return [f"{i}: " + " ".join(rng.sample(words, 5)) + "?" for i in range(count)]


def timed(stack: Stack, key: str, text: str, **headers: str) -> float:
    started = time.perf_counter()
    response = ask(stack, key, text, **headers)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def test_no_timing_side_channel_across_tenants(keyed: tuple[Stack, dict[str, str]]) -> None:
    """In the style of the published audit: whether another tenant cached a prompt must not
    show in response times, while the same tenant's cache plainly does."""
    stack, keys = keyed
    # One pool split at random, so that the two groups differ in nothing but who cached them
    # (even a few more tokens to embed would show in the times).
    # 150 a group: the control below still tells a hit from a miss far past p < 0.01.
    pool = prompts(450, 1)
    random.Random(2).shuffle(pool)
    theirs, fresh, fresh_again = pool[:150], pool[150:300], pool[300:]
    for text in theirs:  # acme caches these
        ask(stack, keys["acme"], text).raise_for_status()
    # globex asks acme's prompts and fresh ones, interleaved at random; no-store keeps globex's
    # own answers out of its partition, so every one of its requests is a true miss.
    order = [("theirs", t) for t in theirs] + [("fresh", t) for t in fresh]
    random.Random(4).shuffle(order)
    times: dict[str, list[float]] = {"theirs": [], "fresh": []}
    for group, text in order:
        times[group].append(
            timed(stack, keys["globex"], text, **{"x-frugal-cache-control": "no-store"})
        )
    assert ks_2samp(times["theirs"], times["fresh"]).pvalue >= 0.01
    # The control: acme's own cached prompts against fresh ones; the test can see a cache.
    control = [("cached", t) for t in theirs] + [("fresh", t) for t in fresh_again]
    random.Random(5).shuffle(control)
    own: dict[str, list[float]] = {"cached": [], "fresh": []}
    for group, text in control:
        own[group].append(
            timed(stack, keys["acme"], text, **{"x-frugal-cache-control": "no-store"})
        )
    assert ks_2samp(own["cached"], own["fresh"]).pvalue < 0.01


@pytest.mark.parametrize("store", ["embedded", "redis"])
def test_invalidating_a_tenant_in_a_shared_namespace_names_the_namespace(
    store: str,
    make_stack: StackFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """acme's answers live in "faq", which initech shares: removing "acme's answers" would
    remove initech's, so the request is refused with the namespace's name, and the namespace
    is the selector that removes them. A tenant of its own is invalidated by its name."""
    path = tmp_path / "keys.yaml"
    keys = {tenant: add_key(path, tenant) for tenant in ("acme", "globex", "initech")}
    path.write_text(
        path.read_text() + "tenants:\n  acme: {namespace: faq}\n  initech: {namespace: faq}\n"
    )
    env = {"FRUGAL_API_KEYS_FILE": str(path)}
    if store == "redis":
        env |= redis_env(request.getfixturevalue("redis_server").url)
    stack = make_stack(env=env)
    assert ask(stack, keys["acme"], FRANCE).headers["x-frugal-cache"] == "miss"
    assert ask(stack, keys["globex"], FRANCE).headers["x-frugal-cache"] == "miss"
    with stack.admin() as admin:
        listed = admin.get("/admin/cache/entries", params={"tenant": "acme"}).json()["data"]
        assert [(e["prompt"], e["partition"]) for e in listed] == [(FRANCE, "faq")]
        refused = admin.post("/admin/cache/invalidate", json={"tenant": "acme"})
        assert refused.status_code == 400
        assert "faq" in refused.json()["error"]["message"]
        assert refused.json()["error"]["param"] == "tenant"
        own = admin.post("/admin/cache/invalidate", json={"tenant": "globex"})
        assert own.json() == {"invalidated": 1}
        shared = admin.post("/admin/cache/invalidate", json={"namespace": "faq"})
        assert shared.json() == {"invalidated": 1}
        assert admin.get("/admin/cache/entries").json()["data"] == []
    assert ask(stack, keys["initech"], FRANCE).headers["x-frugal-cache"] == "miss"
