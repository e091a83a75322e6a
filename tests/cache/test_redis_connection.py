"""Where frugal's Redis is: the settings that say so, checked together and named when wrong,
and the clients `RedisTarget` builds from them (no server needed: nothing connects here)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from frugal.cache.redis_connection import RedisTarget, tls_refusal
from frugal.config import load_settings, parse_host_ports, redis_target
from frugal.errors import SettingsError

SENTINELS = "10.0.0.1:26379, sentinel-b.internal:26380,[::1]:26381"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FRUGAL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # only its existence is checked here
    return path


def test_sentinels_make_the_url_optional_and_are_parsed() -> None:
    settings = load_settings(
        store="redis", redis_sentinels=SENTINELS, redis_sentinel_master="mymaster"
    )
    target = redis_target(settings)
    assert target.sentinels == (
        ("10.0.0.1", 26379),
        ("sentinel-b.internal", 26380),
        ("::1", 26381),
    )
    assert target.sentinel_master == "mymaster" and target.url is None
    assert not target.read_from_replicas and not target.tls
    assert target.describe() == (
        "Sentinel primary 'mymaster' via "
        "redis://10.0.0.1:26379,sentinel-b.internal:26380,[::1]:26381"
    )


@pytest.mark.parametrize("entry", ["10.0.0.1", "host:port", "host:0", "host:70000", ":26379"])
def test_a_bad_sentinel_is_named_with_its_setting(entry: str) -> None:
    with pytest.raises(SettingsError) as bad:
        load_settings(redis_sentinels=f"10.0.0.9:26379,{entry}", redis_sentinel_master="m")
    assert "FRUGAL_REDIS_SENTINELS" in str(bad.value) and repr(entry) in str(bad.value)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"redis_sentinels": SENTINELS}, "FRUGAL_REDIS_SENTINEL_MASTER is required"),
        ({"redis_sentinel_master": "mymaster"}, "without FRUGAL_REDIS_SENTINELS"),
        ({"redis_read_from_replicas": True}, "FRUGAL_REDIS_READ_FROM_REPLICAS needs"),
        ({"store": "redis"}, "FRUGAL_REDIS_URL (or FRUGAL_REDIS_SENTINELS) is required"),
    ],
)
def test_settings_that_only_make_sense_together_are_named(
    given: dict[str, Any], named: str
) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings(**given)


def test_tls_files_must_exist_and_need_tls(ca_file: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(SettingsError, match="FRUGAL_REDIS_TLS_CA_FILE"):
        load_settings(redis_url="rediss://h:6380/0", redis_tls_ca_file=missing)
    with pytest.raises(SettingsError, match="not a rediss:// URL"):
        load_settings(redis_url="redis://h:6379/0", redis_tls_ca_file=ca_file)
    with pytest.raises(SettingsError, match="FRUGAL_REDIS_TLS_KEY_FILE is set without"):
        load_settings(redis_url="rediss://h:6380/0", redis_tls_key_file=ca_file)
    settings = load_settings(redis_url="rediss://h:6380/0", redis_tls_ca_file=ca_file)
    assert redis_target(settings).tls


async def test_the_url_gives_sentinel_set_ups_their_password_db_and_tls(ca_file: Path) -> None:
    settings = load_settings(
        store="redis",
        redis_url="redis://:s3cret-pw@ignored-host:1/3",
        redis_sentinels=SENTINELS,
        redis_sentinel_master="mymaster",
        redis_read_from_replicas=True,
        redis_tls_ca_file=ca_file,
    )
    target = redis_target(settings)
    assert target.tls  # a CA file turns it on with Sentinel
    assert "s3cret-pw" not in repr(target) and "s3cret-pw" not in target.describe()
    clients = target.connect(protocol=3)
    try:
        assert clients.reads_from_replicas and clients.sentinel is not None
        for pool in (clients.writer.connection_pool, clients.reader.connection_pool):
            kwargs = pool.connection_kwargs
            assert kwargs["password"] == "s3cret-pw" and kwargs["db"] == 3
            assert kwargs["ssl_ca_certs"] == str(ca_file) and kwargs["protocol"] == 3
        assert clients.writer.connection_pool.is_master  # type: ignore[attr-defined]
        assert not clients.reader.connection_pool.is_master  # type: ignore[attr-defined]
        for sentinel in clients.sentinel.sentinels:
            kwargs = sentinel.connection_pool.connection_kwargs
            assert kwargs["ssl_ca_certs"] == str(ca_file) and kwargs["password"] is None
    finally:
        await clients.aclose()


async def test_a_url_alone_reads_where_it_writes() -> None:
    clients = RedisTarget(url="redis://127.0.0.1:6379/0").connect()
    try:
        assert clients.reader is clients.writer and clients.sentinel is None
    finally:
        await clients.aclose()


def test_a_target_needs_somewhere_to_go() -> None:
    with pytest.raises(ValueError, match="URL or sentinels"):
        RedisTarget()
    with pytest.raises(ValueError, match="name of the primary"):
        RedisTarget(sentinels=(("h", 26379),))


def test_a_tls_failure_is_worded_with_the_ca_setting(ca_file: Path) -> None:
    target = RedisTarget(url="rediss://:s3cret-pw@10.0.0.5:6380/0", tls_ca_file=ca_file)
    try:
        unverified = ssl.SSLCertVerificationError(1, "certificate verify failed")
        unverified.verify_message = "unable to get local issuer certificate"
        try:
            raise unverified
        except ssl.SSLError:
            raise RedisConnectionError("Error connecting to 10.0.0.5:6380.")  # noqa: B904
    except RedisConnectionError as exc:
        refusal = tls_refusal(exc, target)
    assert refusal is not None and refusal.startswith("Redis TLS: ")
    assert "FRUGAL_REDIS_TLS_CA_FILE" in refusal and str(ca_file) in refusal
    assert "unable to get local issuer certificate" in refusal
    assert "rediss://10.0.0.5:6380" in refusal and "s3cret-pw" not in refusal
    assert tls_refusal(RedisConnectionError("Connection refused"), target) is None


def test_host_port_lists() -> None:
    assert parse_host_ports("a:1,b:2") == [("a", 1), ("b", 2)]
    with pytest.raises(ValueError, match="'b' is not host:port"):
        parse_host_ports("a:1,b")
