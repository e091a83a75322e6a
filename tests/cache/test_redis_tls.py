"""The Redis store over TLS: a ``rediss://`` URL with the CA that signed the server's
certificate stores and finds; a wrong CA stops start-up (the store's open, and `frugal serve`)
with one line that names TLS and the CA setting, and never the password.

Real processes: the session's Redis behind Debian's stunnel, with a CA and a server certificate
made here by the ``openssl`` command.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from frugal.cache.redis_connection import RedisTarget
from frugal.cache.redis_store import RedisStore
from frugal.errors import RedisStoreConfigError
from frugal.local.redis_server import RedisServer
from tests.cache.entries import DIM, T0, make, unit
from tests.cache.tls import Certificates, Stunnel
from tests.test_startup import serve_fails

PASSWORD = "hunter2-tls-secret"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tunnel(
    tmp_path_factory: pytest.TempPathFactory,
    certificates: Certificates,
    redis_server: RedisServer,
) -> Iterator[Stunnel]:
    directory = tmp_path_factory.mktemp("stunnel")
    with Stunnel.start(directory, certificates, backend_port=redis_server.port) as started:
        yield started


def names() -> dict[str, str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    return {"prefix": f"{name}:", "index": name}


async def test_a_rediss_url_with_its_ca_stores_and_finds(
    tunnel: Stunnel, certificates: Certificates, redis_server: RedisServer
) -> None:
    target = RedisTarget(url=tunnel.url, tls_ca_file=certificates.ca)
    assert target.tls
    store = await RedisStore.open(target, max_entries=100, dimensions=DIM, **names())
    try:
        assert store.reachable
        vector = unit(np.random.default_rng(3))
        entry = make("What is the capital of Peru?", vector)
        await store.put(entry)
        found = await store.get_exact(scope=entry.scope, prompt_hash=entry.prompt_hash, now=T0)
        assert found is not None and found.id == entry.id
        (match,) = await store.search(
            scope=entry.scope, vector=vector, k=1, min_similarity=0.99, now=T0
        )
        assert match.entry.id == entry.id
        # Through the tunnel to the Redis behind it: the entry is there.
        with redis.Redis(port=redis_server.port) as plain:
            assert plain.exists(f"{store.prefix}entry:{entry.id}")
    finally:
        await store.flush()
        await store.drop_index()
        await store.aclose()


async def test_a_wrong_ca_stops_the_store_opening_in_one_line(
    tunnel: Stunnel, certificates: Certificates
) -> None:
    url = tunnel.url.replace("rediss://", f"rediss://:{PASSWORD}@")
    target = RedisTarget(url=url, tls_ca_file=certificates.other_ca)
    with pytest.raises(RedisStoreConfigError) as refused:
        await RedisStore.open(target, max_entries=100, dimensions=DIM, **names())
    message = str(refused.value)
    assert message.startswith("Redis TLS: ") and "\n" not in message
    assert "FRUGAL_REDIS_TLS_CA_FILE" in message and str(certificates.other_ca) in message
    assert f"127.0.0.1:{tunnel.port}" in message
    assert PASSWORD not in message and PASSWORD not in repr(target)


def test_frugal_serve_refuses_a_wrong_ca_in_one_line(
    tunnel: Stunnel, certificates: Certificates, tmp_path: Path
) -> None:
    env = {
        "FRUGAL_STORE": "redis",
        "FRUGAL_REDIS_URL": tunnel.url.replace("rediss://", f"rediss://:{PASSWORD}@"),
        "FRUGAL_REDIS_TLS_CA_FILE": str(certificates.other_ca),
        "FRUGAL_REDIS_PREFIX": names()["prefix"],
    }
    lines = serve_fails(tmp_path, env=env)
    # Refused once start-up reaches Redis: what was logged before it are JSON lines.
    assert all(line.startswith("{") for line in lines[:-1]), lines
    line = lines[-1]
    assert line.startswith("frugal: cannot start: Redis TLS: ")
    assert "FRUGAL_REDIS_TLS_CA_FILE" in line
    assert PASSWORD not in "\n".join(lines)
