"""A local Redis Sentinel set: a primary, one replica and three Sentinels, for tests and demos.

    with SentinelSet.start(Path("run")) as redis_set:     # answers, and failover-ready
        env = redis_set.env()          # FRUGAL_REDIS_SENTINELS and FRUGAL_REDIS_SENTINEL_MASTER
        redis_set.sentinels            # ["127.0.0.1:P1", "127.0.0.1:P2", "127.0.0.1:P3"]
        redis_set.master_name          # "mymaster"
        redis_set.primary_address()    # ("127.0.0.1", PORT): the primary the Sentinels name now
        killed = redis_set.kill_primary()            # SIGKILL, as a crash would
        redis_set.wait_for_primary(other_than=killed.port)   # the promoted replica's address

Every process listens on a free port of 127.0.0.1 and runs the ``redis-server`` that
`frugal.local.redis_server` runs (Sentinels with ``--sentinel``), so the primary and the replica
have the query engine. The Sentinels agree with a quorum of 2, call a primary down after
``down_after_ms`` (1 s) without an answer and let a failover take up to ``failover_timeout_ms``
(5 s), so a killed primary is replaced within a few seconds. `start` returns once both data
servers answer, the replica has its copy, and each Sentinel sees the replica and the two other
Sentinels: a failover can happen from then on. Each process writes its log, and each Sentinel
its config file (Sentinels rewrite it), under the directory given. `stop` stops them all.

``.primary`` and ``.replica`` are the two `RedisServer` s as started; after a failover the
replica is the primary (`primary_address` says which is which).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from frugal.local.processes import StopsOnExit, free_port
from frugal.local.redis_server import RedisServer, server_binary

HOST = "127.0.0.1"
QUORUM = 2


@dataclass
class SentinelSet(StopsOnExit):
    """See the module's docstring; build it with `start`."""

    primary: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]
    master_name: str
    _sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        master_name: str = "mymaster",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        timeout_s: float = 60.0,
    ) -> SentinelSet:
        """Start the five processes, logging under ``directory``, and wait until a failover
        could happen. Raises RuntimeError (everything started is stopped first) when that
        takes longer than ``timeout_s``; `RedisServerUnavailable` without the server package."""
        directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        primary = RedisServer.start(
            log_path=directory / "primary.log", data_dir=directory / "primary"
        )
        started = cls(primary=primary, replica=primary, sentinel_ports=[], master_name=master_name)
        try:
            started.replica = RedisServer.start(
                log_path=directory / "replica.log",
                replica_of=primary.port,
                data_dir=directory / "replica",
            )
            # In sync first, so that each Sentinel's first look at the primary finds the replica
            # (it looks again only every 10 s).
            started._wait_until(deadline, lambda: _replica_in_sync(started.replica.port))
            for number in range(3):
                port = free_port()
                config = directory / f"sentinel-{number}.conf"
                config.write_text(
                    f"port {port}\nbind {HOST}\ndir {directory.resolve()}\n"
                    f"sentinel monitor {master_name} {HOST} {primary.port} {QUORUM}\n"
                    f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
                    f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {master_name} 1\n"
                )
                started._sentinels.append(
                    _run_sentinel(config, directory / f"sentinel-{number}.log")
                )
                started.sentinel_ports.append(port)
            started._wait_until(
                deadline,
                lambda: all(started._sentinel_ready(port) for port in started.sentinel_ports),
            )
        except BaseException:
            started.stop()
            raise
        return started

    @property
    def sentinels(self) -> list[str]:
        """The Sentinels as ``host:port``, as `FRUGAL_REDIS_SENTINELS` lists them."""
        return [f"{HOST}:{port}" for port in self.sentinel_ports]

    def env(self) -> dict[str, str]:
        """The settings that point a gateway at this set (through its Sentinels)."""
        return {
            "FRUGAL_REDIS_SENTINELS": ",".join(self.sentinels),
            "FRUGAL_REDIS_SENTINEL_MASTER": self.master_name,
        }

    def primary_address(self) -> tuple[str, int] | None:
        """The primary's address as the first Sentinel that answers names it; ``None`` when
        none answers."""
        for port in self.sentinel_ports:
            if (address := self._named_by(port)) is not None:
                return address
        return None

    def kill_primary(self) -> RedisServer:
        """SIGKILL the data server the Sentinels name as primary now, and return it."""
        address = self.primary_address()
        if address is None:
            raise RuntimeError("no Sentinel names a primary")
        server = self.replica if address[1] == self.replica.port else self.primary
        server.kill()
        return server

    def wait_for_primary(self, *, other_than: int, timeout_s: float = 30.0) -> tuple[str, int]:
        """Wait until every Sentinel names a primary on a port other than ``other_than`` (a
        failover done) and the new primary accepts writes; return its address. RuntimeError
        after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            addresses = {self._named_by(port) for port in self.sentinel_ports}
            if len(addresses) == 1 and (address := addresses.pop()) is not None:
                if address[1] != other_than and _is_writable_primary(address[1]):
                    return address
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinels did not promote a new primary in {timeout_s} s")

    def stop(self) -> None:
        """Stop the Sentinels, then the data servers (idempotent)."""
        for process in self._sentinels:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._sentinels:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._sentinels.clear()
        self.replica.stop()
        self.primary.stop()

    # ---- internals ----------------------------------------------------------------------

    def _named_by(self, sentinel_port: int) -> tuple[str, int] | None:
        try:
            with redis.Redis(host=HOST, port=sentinel_port, socket_timeout=1.0) as sentinel:
                address = sentinel.sentinel_get_master_addr_by_name(self.master_name)
        except redis.RedisError:
            return None
        if not address:
            return None
        host, port = address
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def _wait_until(self, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            for process in self._sentinels:
                if process.poll() is not None:
                    raise RuntimeError(f"a Sentinel exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Sentinel set was not ready in time")
            time.sleep(0.05)

    def _sentinel_ready(self, port: int) -> bool:
        try:
            with redis.Redis(host=HOST, port=port, socket_timeout=1.0) as sentinel:
                state = sentinel.sentinel_master(self.master_name)
        except redis.RedisError:
            return False
        return bool(
            int(state.get("num-other-sentinels", 0)) >= 2 and int(state.get("num-slaves", 0)) >= 1
        )


def _run_sentinel(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(
            [str(server_binary()), str(config), "--sentinel"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _replica_in_sync(port: int) -> bool:
    try:
        with redis.Redis(host=HOST, port=port, socket_timeout=1.0) as replica:
            info = replica.info("replication")
    except redis.RedisError:
        return False
    return bool(info.get("master_link_status") == "up")


def _is_writable_primary(port: int) -> bool:
    try:
        with redis.Redis(host=HOST, port=port, socket_timeout=1.0) as server:
            return bool(server.info("replication").get("role") == "master")
    except redis.RedisError:
        return False
