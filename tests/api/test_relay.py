"""The routes frugal does not serve itself are relayed: the official SDK against the real
gateway in front of the real simulator.

Files go up and come down byte for byte, streamed (the gateway's peak memory does not grow by
the file), an upload past ``FRUGAL_MAX_UPLOAD_BYTES`` is a 413 with nothing sent on, the
provider's own errors come back as it sent them, an unreachable provider is the gateway's 502,
the keys stay where they belong (the simulator demands `CANARY_KEY`, so every success proves
the gateway sent it in the client's key's place), and the metrics count each call as a
``bypass`` of its route.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from frugal.tenants import add_key
from tests.conftest import CANARY_KEY, Stack, StackFactory

CLIENT_KEY = "sk-client-key-7c1d9e"
MIB = 1 << 20
SDK = Callable[..., openai.OpenAI]


@pytest.fixture
def sdk() -> Iterator[Callable[..., openai.OpenAI]]:
    """``sdk(stack, key=..., **options)``: an SDK client of the gateway, closed after the test."""
    opened: list[openai.OpenAI] = []

    def make(stack: Stack, key: str = CLIENT_KEY, **options: Any) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=stack.base_url, api_key=key, max_retries=0, timeout=120, **options
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def file_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def held_by_the_sim(stack: Stack, file_id: str) -> dict:
    """``{"bytes", "sha256"}`` of a file as the simulator received it."""
    response = httpx.get(f"{stack.sim.url}/sim/files/{file_id}", timeout=30)
    response.raise_for_status()
    return dict(response.json())


def from_the_sim(stack: Stack, method: str, path: str) -> httpx.Response:
    """The simulator's own answer, asked directly with its key."""
    headers = {"Authorization": f"Bearer {CANARY_KEY}"}
    return httpx.request(method, stack.sim.url + "/v1" + path, headers=headers, timeout=30)


def calls(stack: Stack, family: str) -> int:
    return int(stack.sim_stats()["endpoints"].get(family, {}).get("calls", 0))


def requests_by_route(stack: Stack) -> dict[tuple[str, str], float]:
    """``frugal_requests_total`` by (endpoint, outcome), summed over the other labels."""
    text = httpx.get(stack.gateway.url + "/metrics").text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "frugal_requests_total":
                key = (sample.labels["endpoint"], sample.labels["outcome"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


class PeakMemory:
    """The peak resident memory of a process (``VmHWM``), from a reset point."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def reset(self) -> int:
        """Make the peak the current resident size (``clear_refs`` 5); that size, in bytes."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self.peak()

    def peak(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/PID/status")


@pytest.fixture(scope="module")
def limited(make_stack: StackFactory) -> Stack:
    """A gateway that takes uploads of at most 1 MiB."""
    return make_stack(env={"FRUGAL_MAX_UPLOAD_BYTES": str(MIB), "FRUGAL_CACHE_MODE": "off"})


def test_an_upload_arrives_byte_identical_and_downloads_the_same(sdk: SDK, stack: Stack) -> None:
    data = file_bytes(5 * 1000 * 1000)
    client = sdk(stack)
    raw = client.files.with_raw_response.create(file=("data.jsonl", data), purpose="fine-tune")
    uploaded = raw.parse()
    assert raw.headers["x-frugal-cache"] == "bypass"
    assert uploaded.bytes == len(data)
    held = held_by_the_sim(stack, uploaded.id)
    assert held == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert client.files.content(uploaded.id).read() == data


def test_the_gateway_holds_neither_an_upload_nor_a_download_whole(sdk: SDK, stack: Stack) -> None:
    size = 32 * MIB
    data = file_bytes(size, seed=11)
    client = sdk(stack)
    # The first large transfer of each kind sizes the allocator's pools (a few MB, once).
    warm = client.files.create(file=("warm.bin", file_bytes(size, seed=3)), purpose="fine-tune")
    with client.files.with_streaming_response.content(warm.id) as streamed:
        for _ in streamed.iter_bytes():
            pass
    memory = PeakMemory(stack.gateway.process.pid)

    before = memory.reset()
    uploaded = client.files.create(file=("big.bin", data), purpose="fine-tune")
    upload_growth = memory.peak() - before
    assert held_by_the_sim(stack, uploaded.id)["sha256"] == hashlib.sha256(data).hexdigest()

    before = memory.reset()
    with client.files.with_streaming_response.content(uploaded.id) as streamed:
        digest = hashlib.sha256()
        for chunk in streamed.iter_bytes():
            digest.update(chunk)
    download_growth = memory.peak() - before
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

    # Held whole, either would add the file's size at least; streamed, a few buffers.
    assert upload_growth < size // 4, f"the upload grew the peak by {upload_growth} bytes"
    assert download_growth < size // 4, f"the download grew the peak by {download_growth} bytes"


def test_files_are_listed_by_the_query_and_deleted(sdk: SDK, stack: Stack) -> None:
    client = sdk(stack)
    kept = client.files.create(file=("a.jsonl", b'{"a": 1}\n'), purpose="user_data")
    listed = client.files.list(purpose="user_data")
    assert [f.id for f in listed.data] == [kept.id]  # the query string reached the provider
    assert client.files.delete(kept.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(kept.id)


def test_an_upload_past_the_limit_is_a_413_and_nothing_is_sent_on(sdk: SDK, limited: Stack) -> None:
    limited.reset_sim()
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(limited).files.create(file=("big.bin", file_bytes(2 * MIB)), purpose="fine-tune")
    assert caught.value.status_code == 413
    assert caught.value.response.json()["error"]["code"] == "payload_too_large"
    assert calls(limited, "/v1/files") == 0


def test_an_upload_of_unknown_length_is_cut_off_at_the_limit(limited: Stack) -> None:
    limited.reset_sim()

    def chunks() -> Iterator[bytes]:  # no content-length: the gateway counts as it relays
        for _ in range(32):
            yield b"x" * (64 * 1024)

    response = httpx.post(
        limited.base_url + "/files",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=b", "authorization": "Bearer k"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert from_the_sim(limited, "GET", "/files").json()["data"] == []  # nothing was kept


def test_moderations_are_relayed(sdk: SDK, stack: Stack) -> None:
    stack.reset_sim()
    raw = sdk(stack).moderations.with_raw_response.create(input="I want to hug a kitten.")
    moderation = raw.parse()
    assert raw.headers["x-frugal-cache"] == "bypass"
    assert len(moderation.results) == 1
    assert calls(stack, "/v1/moderations") == 1


def test_a_providers_error_comes_back_as_it_sent_it(sdk: SDK, stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(stack).files.retrieve("file-not-held")
    direct = from_the_sim(stack, "GET", "/files/file-not-held")
    assert caught.value.response.json() == direct.json()

    relayed = httpx.get(
        stack.base_url + "/no-such-route/x", headers={"authorization": "Bearer k"}, timeout=30
    )
    direct = from_the_sim(stack, "GET", "/no-such-route/x")
    assert (relayed.status_code, relayed.json()) == (direct.status_code, direct.json())
    assert relayed.headers["x-frugal-cache"] == "bypass"


def test_the_keys_stay_where_they_belong(sdk: SDK, stack: Stack) -> None:
    """Every answer is the simulator's success, which it gives only to `CANARY_KEY`: the
    gateway sent its key where the client's had been (the client's came in every header a
    key can travel in); and no answer carries the upstream key."""
    headers = {"api-key": CLIENT_KEY, "x-api-key": CLIENT_KEY}
    client = sdk(stack, default_headers=headers)
    answers = [
        client.files.with_raw_response.create(file=("k.jsonl", b"{}\n"), purpose="fine-tune"),
        client.files.with_raw_response.list(),
        client.moderations.with_raw_response.create(input="hello"),
        client.models.with_raw_response.list(),
    ]
    for raw in answers:
        assert raw.status_code == 200
        assert CANARY_KEY not in str(raw.headers) + raw.http_response.text
        assert CLIENT_KEY not in str(raw.headers) + raw.http_response.text


def test_the_client_key_check_applies(sdk: SDK, make_stack: StackFactory, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    key = add_key(keys_file, "acme")
    stack = make_stack(env={"FRUGAL_API_KEYS_FILE": str(keys_file), "FRUGAL_CACHE_MODE": "off"})
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(stack, key="sk-wrong").moderations.create(input="hi")
    assert caught.value.response.json()["error"]["code"] == "invalid_api_key"
    assert calls(stack, "/v1/moderations") == 0
    assert sdk(stack, key=key).moderations.create(input="hi").results
    found = requests_by_route(stack)
    assert found[("/moderations", "bypass")] == 1 and found[("/moderations", "error")] == 1


def test_metrics_count_relayed_calls_as_bypass_by_route(sdk: SDK, stack: Stack) -> None:
    before = requests_by_route(stack)
    client = sdk(stack)
    uploaded = client.files.create(file=("m.jsonl", b"{}\n"), purpose="fine-tune")
    client.files.retrieve(uploaded.id)
    client.files.content(uploaded.id).read()
    client.moderations.create(input="hello")
    httpx.get(stack.base_url + "/made-up/route", timeout=30)
    after = requests_by_route(stack)

    def added(route: str) -> float:
        return after.get((route, "bypass"), 0) - before.get((route, "bypass"), 0)

    assert (added("/files"), added("/moderations"), added("/other")) == (3, 1, 1)
    assert not [route for route, _ in after if uploaded.id in route or "made-up" in route]


def test_an_unreachable_provider_is_the_gateways_502(sdk: SDK, make_stack: StackFactory) -> None:
    stack = make_stack(env={"FRUGAL_CACHE_MODE": "off"})
    stack.sim.stop()
    client = sdk(stack)
    with pytest.raises(openai.InternalServerError) as listed:
        client.files.list()
    with pytest.raises(openai.InternalServerError) as moderated:
        client.moderations.create(input="hello")
    for caught in (listed, moderated):
        assert caught.value.status_code == 502
        assert caught.value.response.json()["error"]["code"] == "upstream_unreachable"


def test_only_paths_no_route_serves_are_relayed(stack: Stack) -> None:
    stack.reset_sim()
    with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
        # A path the gateway serves, asked with another method: its own 405, as documented.
        wrong_method = http.put("/v1/chat/completions", json={})
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        assert "x-frugal-cache" not in wrong_method.headers
        # Outside /v1 nothing is relayed.
        outside = http.get("/v2/files")
        assert outside.status_code == 404 and outside.json()["error"]["message"] == "Unknown route."
    assert stack.sim_stats()["calls"] == 0


def test_a_download_the_provider_cuts_off_is_cut_off_for_the_client(
    sdk: SDK, make_stack: StackFactory
) -> None:
    stack = make_stack(env={"FRUGAL_CACHE_MODE": "off"})
    client = sdk(stack)
    data = file_bytes(MIB)
    uploaded = client.files.create(file=("cut.bin", data), purpose="fine-tune")
    httpx.post(stack.sim.url + "/sim/faults", json={"drop_rate": 1.0}).raise_for_status()
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):  # never a short body that looks whole
        with httpx.stream("GET", f"{stack.base_url}/files/{uploaded.id}/content") as streamed:
            assert streamed.status_code == 200
            for chunk in streamed.iter_raw():
                received.extend(chunk)
    assert 0 < len(received) < len(data)
    httpx.post(stack.sim.url + "/sim/faults", json={"drop_rate": 0.0}).raise_for_status()
    assert client.files.content(uploaded.id).read() == data  # and the gateway serves on
    assert requests_by_route(stack)[("/files", "error")] == 1
