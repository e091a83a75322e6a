"""``GET /v1/models`` through the real gateway in front of the real simulator, with the
official SDK: listed and retrieved as the provider has them, the provider's 404 kept, kept in
memory for ``FRUGAL_MODELS_CACHE_S`` by path; and the cache's own rules, on a clock of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from frugal.api.models_route import ModelsCache
from frugal.tenants import add_key
from tests.conftest import CANARY_KEY, Stack, StackFactory

SDK = Callable[..., openai.OpenAI]


def models_calls(stack: Stack) -> int:
    """Calls the simulator received on ``/v1/models`` and below."""
    return int(stack.sim_stats()["endpoints"].get("/v1/models", {}).get("calls", 0))


@pytest.fixture
def sdk() -> Iterator[SDK]:
    """``sdk(stack, key=...)``: an SDK client of the gateway, closed after the test."""
    opened: list[openai.OpenAI] = []

    def make(stack: Stack, key: str = "sk-client-own") -> openai.OpenAI:
        opened.append(openai.OpenAI(base_url=stack.base_url, api_key=key, max_retries=0))
        return opened[-1]

    yield make
    for client in opened:
        client.close()


def from_the_sim(stack: Stack, path: str) -> httpx.Response:
    """The simulator's own answer, asked directly with its key."""
    headers = {"Authorization": f"Bearer {CANARY_KEY}"}
    return httpx.get(stack.sim.url + "/v1" + path, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def uncached(make_stack: StackFactory) -> Stack:
    return make_stack(env={"FRUGAL_MODELS_CACHE_S": "0", "FRUGAL_CACHE_MODE": "off"})


def test_the_list_and_each_model_are_the_providers(sdk: SDK, uncached: Stack) -> None:
    client = sdk(uncached)
    listed = client.models.with_raw_response.list()
    expected = from_the_sim(uncached, "/models").json()
    assert listed.http_response.json() == expected
    assert [model.id for model in listed.parse().data] == [m["id"] for m in expected["data"]]
    assert expected["data"], "the simulator lists models"
    first = expected["data"][0]["id"]
    raw = client.models.with_raw_response.retrieve(first)
    assert raw.parse().id == first
    assert raw.http_response.json() == from_the_sim(uncached, f"/models/{first}").json()
    assert raw.headers["x-frugal-cache"] == "bypass"
    assert CANARY_KEY not in str(raw.headers) + raw.http_response.text


def test_an_unknown_model_is_the_providers_own_404(sdk: SDK, uncached: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(uncached).models.retrieve("no-such-model")
    direct = from_the_sim(uncached, "/models/no-such-model")
    assert direct.status_code == 404
    assert caught.value.response.json() == direct.json()


def test_without_caching_every_list_is_asked_of_the_provider(sdk: SDK, uncached: Stack) -> None:
    uncached.reset_sim()
    client = sdk(uncached)
    client.models.list()
    client.models.list()
    assert models_calls(uncached) == 2


def test_a_list_is_kept_for_the_ttl_and_each_path_apart(sdk: SDK, stack: Stack) -> None:
    stack.reset_sim()
    client = sdk(stack)
    first = client.models.with_raw_response.list()
    second = client.models.with_raw_response.list()
    assert models_calls(stack) == 1
    assert second.http_response.content == first.http_response.content
    assert "age" not in first.headers and int(second.headers["age"]) >= 0
    model = first.parse().data[0].id
    client.models.retrieve(model)
    assert models_calls(stack) == 2  # one model is not the list
    client.models.retrieve(model)
    assert models_calls(stack) == 2


def test_an_error_is_not_kept(sdk: SDK, stack: Stack) -> None:
    stack.reset_sim()
    client = sdk(stack)
    for _ in range(2):
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("still-no-such-model")
    assert models_calls(stack) == 2


def test_the_client_key_check_applies(sdk: SDK, make_stack: StackFactory, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    key = add_key(keys_file, "acme")
    stack = make_stack(env={"FRUGAL_API_KEYS_FILE": str(keys_file), "FRUGAL_CACHE_MODE": "off"})
    with pytest.raises(openai.AuthenticationError):
        sdk(stack, key="sk-wrong").models.list()
    assert models_calls(stack) == 0
    assert sdk(stack, key=key).models.list().data


# The cache's rules.


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_until_its_ttl_has_passed() -> None:
    clock = Clock()
    cache = ModelsCache(ttl_s=60, clock=clock)
    cache.put("/models", body=b"{}", content_type="application/json")
    clock.now += 59.5
    found = cache.get("/models")
    assert found is not None and found[0].body == b"{}" and found[1] == pytest.approx(59.5)
    clock.now += 0.5
    assert cache.get("/models") is None


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = ModelsCache(ttl_s=0, clock=Clock())
    cache.put("/models", body=b"{}", content_type="application/json")
    assert cache.get("/models") is None


def test_the_oldest_answers_go_beyond_the_bound() -> None:
    cache = ModelsCache(ttl_s=60, max_entries=2, clock=Clock())
    for key in ("/models/a", "/models/b", "/models/c"):
        cache.put(key, body=key.encode(), content_type="application/json")
    assert cache.get("/models/a") is None
    assert cache.get("/models/b") is not None and cache.get("/models/c") is not None
