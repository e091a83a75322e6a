"""Wrong hits reported through the real gateway, on both stores: the entry goes at once, the
pair is recorded as a negative, a tenant reports only its own hits, and the labels export is
what the tuning commands read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from frugal.local.redis_server import RedisServer
from frugal.tenants import add_key
from tests.conftest import ADMIN_KEY, Stack, StackFactory, redis_env, run_frugal

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"


def ask(stack: Stack, text: str, key: str | None = None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(
        stack.base_url + "/chat/completions", json=body, headers=headers, timeout=30
    )
    response.raise_for_status()
    return response


def report(stack: Stack, request_id: str, key: str | None = None) -> httpx.Response:
    """As a client (``key``: its client key) or, without a key, as the admin."""
    if key is None:
        with stack.admin() as admin:
            return admin.post("/admin/cache/feedback", json={"request_id": request_id})
    return httpx.post(
        stack.base_url + "/feedback",
        json={"request_id": request_id},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def exported(stack: Stack) -> list[dict[str, Any]]:
    with stack.admin() as admin:
        response = admin.get("/admin/cache/labels")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


class Deployment:
    """A stack on one store, and the place its labels are kept."""

    def __init__(self, stack: Stack, *, labels_file: Path | None, redis_key: str | None) -> None:
        self.stack = stack
        self.labels_file = labels_file
        self.redis_key = redis_key

    def kept(self, redis_url: str) -> list[dict[str, Any]]:
        """The pairs as the store holds them, read around the gateway."""
        if self.labels_file is not None:
            return [json.loads(line) for line in self.labels_file.read_text().splitlines()]
        assert self.redis_key is not None
        with redis.Redis.from_url(redis_url) as client:
            return [json.loads(raw) for raw in client.lrange(self.redis_key, 0, -1)]


@pytest.fixture(scope="module", params=["embedded", "redis"])
def deployment(
    request: pytest.FixtureRequest,
    make_stack: StackFactory,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Deployment:
    if request.param == "embedded":
        data_dir = tmp_path_factory.mktemp("data")
        stack = make_stack(data_dir=data_dir)
        return Deployment(stack, labels_file=data_dir / "labels.jsonl", redis_key=None)
    env = redis_env(redis_server.url)
    stack = make_stack(env=env)
    return Deployment(stack, labels_file=None, redis_key=env["FRUGAL_REDIS_PREFIX"] + "labels")


def test_a_reported_hit_is_invalidated_at_once_and_recorded_as_a_negative(
    deployment: Deployment, redis_server: RedisServer
) -> None:
    stack = deployment.stack
    assert ask(stack, FRANCE).headers["x-frugal-cache"] == "miss"
    hit = ask(stack, FRANCE_PARAPHRASE)
    assert hit.headers["x-frugal-cache"] == "hit"
    request_id = hit.headers["x-request-id"]
    similarity = float(hit.headers["x-frugal-similarity"])

    reported = report(stack, request_id)
    assert reported.status_code == 200, reported.text
    assert reported.json() == {"request_id": request_id, "invalidated": 1}
    # The entry that answered is gone: the same question goes upstream again.
    assert ask(stack, FRANCE_PARAPHRASE).headers["x-frugal-cache"] == "miss"
    # A hit is reported once.
    again = report(stack, request_id)
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"

    (row,) = deployment.kept(redis_server.url)
    assert row["a"] == FRANCE and row["b"] == FRANCE_PARAPHRASE and row["label"] == 0
    assert row["similarity"] == pytest.approx(similarity, abs=1e-4)
    assert (row["model"], row["partition"], row["source"]) == (
        "all-MiniLM-L6-v2",
        "default",
        "feedback",
    )
    assert row["request_id"] == request_id and row["created_at"] > 1.7e9
    assert exported(stack) == [row]


def test_a_request_that_was_no_hit_cannot_be_reported(deployment: Deployment) -> None:
    miss = ask(deployment.stack, "Who painted the Mona Lisa?")
    assert miss.headers["x-frugal-cache"] == "miss"
    refused = report(deployment.stack, miss.headers["x-request-id"])
    assert refused.status_code == 404


@pytest.fixture(scope="module")
def keyed(
    make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Stack, dict[str, str]]:
    """A gateway with keys for acme and globex."""
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys = {tenant: add_key(path, tenant) for tenant in ("acme", "globex")}
    return make_stack(env={"FRUGAL_API_KEYS_FILE": str(path)}), keys


def test_a_tenant_reports_only_its_own_hits_and_learns_nothing_of_others(
    keyed: tuple[Stack, dict[str, str]],
) -> None:
    stack, keys = keyed
    ask(stack, FRANCE, keys["acme"])
    hit = ask(stack, FRANCE_PARAPHRASE, keys["acme"])
    assert hit.headers["x-frugal-cache"] == "hit"
    request_id = hit.headers["x-request-id"]
    # globex gets a hit of its own under the very same (client-chosen) request id.
    ask(stack, FRANCE, keys["globex"])
    ask(stack, FRANCE_PARAPHRASE, keys["globex"], **{"x-request-id": request_id})

    unknown = report(stack, "req_0000000000000000", keys["globex"])
    assert unknown.status_code == 404
    refused = report(stack, request_id, keys["acme"] + "x")
    assert refused.status_code == 401
    # globex's own hit under that id is reported, not acme's ...
    assert report(stack, request_id, keys["globex"]).json()["invalidated"] == 1
    # ... so a second try finds nothing of globex's, and says exactly what an unknown id gets.
    not_theirs = report(stack, request_id, keys["globex"])
    assert (not_theirs.status_code, not_theirs.json()) == (404, unknown.json())
    # acme's hit was untouched by all that.
    assert ask(stack, FRANCE_PARAPHRASE, keys["acme"]).headers["x-frugal-cache"] == "hit"
    mine = report(stack, request_id, keys["acme"])
    assert mine.status_code == 200 and mine.json()["invalidated"] == 1
    partitions = [row["partition"] for row in exported(stack)]
    assert partitions == ["globex", "acme"]


def test_the_export_is_what_frugal_tune_reads(
    keyed: tuple[Stack, dict[str, str]], tmp_path: Path
) -> None:
    stack, _ = keyed
    out = tmp_path / "labels.jsonl"
    env = {"FRUGAL_ADMIN_KEY": ADMIN_KEY}
    result = run_frugal("cache", "labels", "export", "--url", stack.gateway.url, "--out", str(out))
    assert result.returncode != 0  # the admin key is required
    result = run_frugal(
        "cache", "labels", "export", "--url", stack.gateway.url, "--out", str(out), env=env
    )
    assert result.returncode == 0, result.stderr
    assert "labelled pairs" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == exported(stack) and rows
    tuned = run_frugal("tune", "--pairs", str(out), "--out", str(tmp_path / "tune"))
    assert tuned.returncode == 0, tuned.stderr
    assert f"{len(rows)} pairs from labels.jsonl" in tuned.stdout
