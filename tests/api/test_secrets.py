"""Secrets stay secret: the upstream key and client keys appear nowhere a person or another
tenant could read them.

A gateway on each store is driven through successes, cached hits, streams, refusals and provider
errors, with prompt logging on (the most it ever writes). Then everything it produced is searched
for the upstream key (`CANARY_KEY`, which the simulator demands, so every success proves it was
sent) and for a client key's secret: every response body and header, the log, /metrics, the admin
and dashboard data, the cache's entries, and the store itself — the SQLite files, or every Redis
key and value under the deployment's prefix.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import openai
import pytest
import redis

from frugal.local.redis_server import RedisServer
from frugal.tenants import add_key
from tests.conftest import ADMIN_KEY, CANARY_KEY, Stack, StackFactory, redis_env

SEEN_BY_PROVIDER_ONLY = "POISON"


def drive(stack: Stack, client_key: str) -> Iterator[bytes]:
    """Traffic of every kind; yields each response's headers and body."""
    client = openai.OpenAI(base_url=stack.base_url, api_key=client_key, max_retries=0)
    for text in ("What is the capital of France?", "What's the capital of France?"):
        raw = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=[{"role": "user", "content": text}]
        )
        yield str(raw.headers).encode() + raw.http_response.content
    with client.chat.completions.with_streaming_response.create(
        model="sim-small", messages=[{"role": "user", "content": "Stream this"}], stream=True
    ) as streamed:
        yield b"".join(streamed.iter_bytes())
    with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
        asks = [
            # the provider refuses it (400, its own body passed through)
            ("/v1/completions", client_key, {"model": "m", "prompt": SEEN_BY_PROVIDER_ONLY}),
            # the upstream key used as a client key: refused, not echoed
            ("/v1/completions", CANARY_KEY, {"model": "m", "prompt": "hi"}),
            ("/v1/completions", client_key, {"model": "m", "prompt": ["a"] * 3000}),
            ("/v1/completions", client_key, {"model": "", "prompt": "x"}),
        ]
        for path, key, body in asks:
            response = http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code in (400, 401)
            yield str(response.headers).encode() + response.content
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for path in ("/metrics", "/admin/stats", "/admin/cache/entries", "/dashboard/data"):
            response = http.get(path, headers=admin)
            assert response.status_code == 200
            yield response.content


def redis_contents(server: RedisServer, prefix: str) -> Iterator[bytes]:
    connection = redis.Redis.from_url(server.url)
    keys = list(connection.scan_iter(match=f"{prefix}*"))
    assert keys, "the cache wrote to Redis"
    for key in keys:
        yield key
        dumped = connection.dump(key)
        assert dumped is not None
        yield dumped
    connection.close()


def sqlite_answers(path: Path) -> Iterator[bytes]:
    """Every stored answer of an embedded store's file, decompressed."""
    with closing(sqlite3.connect(path)) as connection:
        for (answer,) in connection.execute("SELECT answer FROM entries WHERE answer IS NOT NULL"):
            yield zlib.decompress(answer)


@pytest.mark.parametrize("store", ["embedded", "redis"])
def test_no_secret_is_written_anywhere(
    make_stack: StackFactory,
    tmp_path: Path,
    store: str,
    request: pytest.FixtureRequest,
) -> None:
    keys_file = tmp_path / "keys.yaml"
    client_key = add_key(keys_file, "acme")
    client_secret = client_key.split("_", 2)[2]
    env = {"FRUGAL_API_KEYS_FILE": str(keys_file), "FRUGAL_LOG_PROMPTS": "true"}
    redis_server: RedisServer | None = None
    if store == "redis":
        redis_server = request.getfixturevalue("redis_server")
        env |= redis_env(redis_server.url)
    data_dir = tmp_path / "data"
    stack = make_stack(
        sim_args=["--reject-containing", SEEN_BY_PROVIDER_ONLY], env=env, data_dir=data_dir
    )

    produced = list(drive(stack, client_key))
    log = stack.gateway.log().encode()
    if redis_server is not None:
        stored = list(redis_contents(redis_server, env["FRUGAL_REDIS_PREFIX"]))
    else:
        stack.gateway.stop()  # the embedded store writes behind; stopping flushes it
        files = [path for path in data_dir.rglob("cache.sqlite3*") if path.is_file()]
        stored = [path.read_bytes() for path in files]
        # Answers are stored zlib-compressed: read them as the store would, to search them too.
        stored += list(sqlite_answers(data_dir / "cache.sqlite3"))
    # The search can see what it looks for: the prompts themselves were logged and cached.
    assert b"capital of France" in log
    assert any(b"capital of France" in chunk for chunk in stored)
    if redis_server is None:  # and the answers, decompressed
        assert any(b"Answer to: What is the capital of France" in chunk for chunk in stored)

    for secret in (CANARY_KEY, client_secret):
        leaks = [chunk[:200] for chunk in [*produced, log, *stored] if secret.encode() in chunk]
        assert not leaks, f"a secret was written: {leaks}"
