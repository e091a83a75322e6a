"""Where frugal's Redis clients are made: one server by URL, or a primary found through Sentinel.

    target = redis_target(settings)     # frugal.config; or RedisTarget(url="redis://host:6379/0")
    clients = target.connect(protocol=3, socket_connect_timeout=2.0)
    await clients.writer.hset(...)                     # the primary, always
    await clients.reader.execute_command("FT.SEARCH", ...)   # a replica, if read_from_replicas
    await clients.aclose()

Two ways to reach Redis, chosen by the settings:

- **a URL** (``FRUGAL_REDIS_URL``, ``redis://`` or ``rediss://`` for TLS): one server; the reader
  is the writer.
- **Sentinel** (``FRUGAL_REDIS_SENTINELS``, ``FRUGAL_REDIS_SENTINEL_MASTER``): redis-py's
  `Sentinel` asks the Sentinels for the primary whenever it opens a connection. The URL, if
  given, gives only the password, the user, the db and the scheme (``rediss://``: TLS); its host
  is not used. With ``read_from_replicas`` the reader is a client of the replicas (round robin,
  the primary when none is up): a replica may lag the primary by a moment.

**Failover.** A connection that fails with a `ConnectionError` is dropped and the command
retried once, at once, on it: against a restarted server, one stale pooled connection is not
counted as Redis failing. Through Sentinel, every connection the pool hands out asks the
Sentinels for the primary when it (re)connects, so the call after a failover reaches the new
primary; the call that met it fails (redis-py's retry reconnects to the address it had,
redis-py#3874): a connection to a primary that died fails to connect, and one to a primary that
was demoted (an orderly failover) is answered ``READONLY`` on a write, which redis-py's
`SentinelManagedConnection` turns into a `ConnectionError` after dropping the connection. While
the Sentinels name no primary that is up (the seconds between a crash and a promotion) a call
fails at once with `MasterNotFoundError`, a `ConnectionError`. The stores turn each of these
into `CacheStoreError`: a miss, or a write skipped. No client is rebuilt and nothing is stuck.

**TLS.** On for ``rediss://`` URLs and, through Sentinel, for every connection (Sentinels,
primary, replicas) when the URL is ``rediss://`` or a TLS file is set. The servers' certificates
are checked against ``tls_ca_file`` (the system's CAs when unset), host names included;
``tls_cert_file`` and ``tls_key_file`` are a client certificate for servers that ask for one.
`tls_refusal` words a failed handshake as one start-up line.

The URL is a secret (it may hold the password): `RedisTarget` leaves it out of its repr and of
`describe`, and no message here carries it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# How long a Sentinel may take to answer "who is the primary": it is asked before each new
# connection, and a Sentinel that hangs must not hold every reconnection for long.
SENTINEL_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RedisClients:
    """The clients of one `RedisTarget`: ``writer`` on the primary; ``reader`` on the replicas
    when the target reads from them, else the writer itself."""

    writer: aioredis.Redis
    reader: aioredis.Redis
    sentinel: Sentinel | None = None

    @property
    def reads_from_replicas(self) -> bool:
        return self.reader is not self.writer

    async def aclose(self) -> None:
        if self.reads_from_replicas:
            await self.reader.aclose()
        await self.writer.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


@dataclass(frozen=True)
class RedisTarget:
    """Where frugal's Redis is and how to talk to it; see the module's docstring.

    ``url`` or ``sentinels`` (with ``sentinel_master``) is required; ValueError otherwise.
    """

    url: str | None = field(default=None, repr=False)  # a secret: it may hold the password
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    read_from_replicas: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.sentinels and not self.sentinel_master:
            raise ValueError("sentinels need the name of the primary they monitor")
        if not self.sentinels and self.url is None:
            raise ValueError("a Redis target needs a URL or sentinels")
        if self.read_from_replicas and not self.sentinels:
            raise ValueError("replicas are found through Sentinel: read_from_replicas needs it")

    @property
    def tls(self) -> bool:
        rediss = self.url is not None and self.url.lower().startswith("rediss://")
        files = (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        return rediss or (bool(self.sentinels) and any(f is not None for f in files))

    def describe(self) -> str:
        """Where this target points, for messages: never the password."""
        scheme = "rediss" if self.tls else "redis"
        if self.sentinels:
            listed = ",".join(_host_port(host, port) for host, port in self.sentinels)
            return f"Sentinel primary {self.sentinel_master!r} via {scheme}://{listed}"
        try:
            parts = urlsplit(self.url or "")
            where = _host_port(parts.hostname or "localhost", parts.port or 6379)
        except ValueError:
            return "the Redis in FRUGAL_REDIS_URL"
        return f"{scheme}://{where}"

    def connect(
        self,
        *,
        protocol: int = 2,
        socket_timeout: float | None = None,
        socket_connect_timeout: float | None = None,
    ) -> RedisClients:
        """Clients for this target (no connection is made until a command is sent).

        ``protocol`` 3 is RESP3 (what the store's ``FT.SEARCH`` replies are parsed as);
        ``socket_timeout`` bounds a command's reply, ``socket_connect_timeout`` a connection.
        """
        options: dict[str, Any] = {
            "protocol": protocol,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            # A pooled connection that died (a restarted server, a failover) is retried once,
            # at once, on a new one: one stale connection must not count as Redis failing.
            "retry": Retry(NoBackoff(), 1),
            "retry_on_error": [RedisConnectionError],
            **self._tls_options(),
        }
        if not self.sentinels:
            assert self.url is not None  # __post_init__
            client = aioredis.Redis.from_url(self.url, **options)
            return RedisClients(writer=client, reader=client)
        from_url = parse_url(self.url) if self.url is not None else {}
        for name in ("username", "password", "db"):
            if from_url.get(name) is not None:
                options[name] = from_url[name]
        make_sentinel: Callable[..., Sentinel] = Sentinel  # redis-py leaves it unannotated
        sentinel = make_sentinel(
            list(self.sentinels),
            sentinel_kwargs={
                "socket_timeout": SENTINEL_TIMEOUT_S,
                "socket_connect_timeout": SENTINEL_TIMEOUT_S,
                **self._tls_options(),
            },
            **options,
        )
        assert self.sentinel_master is not None  # __post_init__
        writer = sentinel.master_for(self.sentinel_master)
        if self.read_from_replicas:
            reader = sentinel.slave_for(self.sentinel_master)
        else:
            reader = writer
        return RedisClients(writer=writer, reader=reader, sentinel=sentinel)

    def _tls_options(self) -> dict[str, Any]:
        if not self.tls:
            return {}
        options: dict[str, Any] = {}
        if self.sentinels:
            options["ssl"] = True  # a rediss:// URL says so by itself; Sentinel's pools by this
        for name, path in (
            ("ssl_ca_certs", self.tls_ca_file),
            ("ssl_certfile", self.tls_cert_file),
            ("ssl_keyfile", self.tls_key_file),
        ):
            if path is not None:
                options[name] = str(path)
        return options


def tls_refusal(exc: BaseException, target: RedisTarget) -> str | None:
    """One line saying why the TLS handshake that ``exc`` (or an exception it came from)
    reports failed, naming the CA setting; ``None`` when ``exc`` is not a TLS failure."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    setting = "FRUGAL_REDIS_TLS_CA_FILE"
    where = target.describe()
    # redis-py's Sentinel reports the Sentinels it could not ask in its message, not as a cause.
    unverified = cause is None and "CERTIFICATE_VERIFY_FAILED" in str(exc)
    if cause is None and not unverified:
        return None
    if isinstance(cause, ssl.SSLCertVerificationError) or unverified:
        reason = "certificate verify failed"
        if isinstance(cause, ssl.SSLCertVerificationError):
            # Set by OpenSSL's handshake ("unable to get local issuer certificate").
            reason = getattr(cause, "verify_message", None) or cause.reason or reason
        if target.tls_ca_file is not None:
            trusted = f"the CA in {setting} ({target.tls_ca_file})"
        else:
            trusted = f"this system's CAs ({setting} is not set)"
        return (
            f"Redis TLS: the certificate of {where} is not trusted by {trusted}: {reason}; "
            f"set {setting} to the CA that signed it"
        )
    reason = getattr(cause, "reason", None) or type(cause).__name__
    return (
        f"Redis TLS: the handshake with {where} failed ({reason}): is it a TLS port, and does "
        f"{setting} hold the CA that signed its certificate?"
    )


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
