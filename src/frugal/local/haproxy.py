"""HAProxy in front of gateway replicas: the local fleet's load balancer (Debian's ``haproxy``).

`haproxy_config` writes the configuration a team would adapt (the README shows it): a frontend,
and a backend of the gateways that HAProxy checks with ``GET /readyz``, so a gateway that is
starting, draining on SIGTERM or dead gets no new requests; a request whose connection to a
gateway fails is retried on another (connection failures only: a request a gateway has received
is never sent twice). Timeouts leave room for a streamed answer that pauses.

`HAProxy.start` runs ``haproxy -f CONFIG -db`` on a free port of 127.0.0.1, returns once every
gateway is UP, and `stop` ends it. Its log has one line per request, naming the gateway that
served it and the client's ``x-request-id`` (`requests`), and the stats socket says each
gateway's state (`servers`).

    with HAProxy.start({"gw1": "127.0.0.1:8081", "gw2": "127.0.0.1:8082"}, run_dir=run) as lb:
        httpx.get(lb.url + "/readyz")
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from frugal.local.processes import StopsOnExit, free_port, stop_process

HAPROXY = Path("/usr/sbin/haproxy")
BACKEND = "gateways"
# The request log line: its first word tells it from HAProxy's other lines (a server going up
# or down). The termination state says how a request ended ("--" normally, "SH" when the
# gateway closed before answering); retries start with "+" when redispatched to another.
_REQUEST_FORMAT = "request %s %ST %ts %rc %[capture.req.hdr(0)]"


class HAProxyUnavailable(RuntimeError):
    """The ``haproxy`` binary is not installed (Debian's package: ``apt-get install haproxy``)."""


@dataclass(frozen=True)
class LoggedRequest:
    """One request as HAProxy logged it when it ended."""

    server: str  # the gateway that answered, or tried to last; "<NOSRV>" when none was tried
    status: int  # as sent to the client: 502 when the gateway closed before answering
    termination: str  # two letters: "--" normal; first letter S: the server side ended it
    retries: str  # how many connection attempts were retried; "+N" when redispatched
    request_id: str  # the client's x-request-id, "" when it sent none


@dataclass(frozen=True)
class ServerState:
    """A gateway as HAProxy sees it: ``status`` UP, DOWN (failed its checks), ``MAINT``...,
    and ``sessions``, the requests it has in flight now."""

    status: str
    sessions: int


def haproxy_config(
    servers: Mapping[str, str],
    *,
    bind: str,
    stats_socket: Path | None = None,
    check_interval_ms: int = 500,
    server_timeout_s: int = 300,
) -> str:
    """A configuration that balances ``bind`` (``host:port``) over ``servers`` (name ->
    ``host:port`` of a gateway), see the module's docstring.

    ``check_interval_ms``: how often each gateway's ``/readyz`` is asked; two failures in a row
    take it out (so a gateway draining for ``FRUGAL_SHUTDOWN_DRAIN_S`` should drain for more
    than twice this), one success puts it back. ``server_timeout_s``: the longest HAProxy waits
    for a gateway's next bytes; keep it above ``FRUGAL_UPSTREAM_TIMEOUT_S`` and its retries.
    """
    lines = [
        "global",
        "    log stdout format raw local0 info",
        "    maxconn 4096",
    ]
    if stats_socket is not None:
        lines.append(f"    stats socket {stats_socket} mode 600 level operator")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    log global",
        f'    log-format "{_REQUEST_FORMAT}"',
        "    option redispatch 1       # a retry goes to another gateway",
        "    retries 2",
        "    retry-on conn-failure     # only failed connections: no request is sent twice",
        "    timeout connect 2s",
        "    timeout http-request 30s  # a client's request headers",
        "    timeout http-keep-alive 30s",
        "    timeout queue 30s",
        "    timeout client 300s",
        f"    timeout server {server_timeout_s}s".ljust(30) + "# a stream may pause between chunks",
        "    timeout check 2s",
        "",
        "frontend frugal",
        f"    bind {bind}",
        "    http-request capture req.hdr(x-request-id) len 64",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance leastconn         # LLM requests last seconds: the least busy gateway",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        f"    default-server check inter {check_interval_ms}ms fall 2 rise 1",
    ]
    lines += [f"    server {name} {address}" for name, address in servers.items()]
    return "\n".join(lines) + "\n"


def all_up(states: Mapping[str, ServerState]) -> bool:
    return all(state.status == "UP" for state in states.values())


@dataclass
class HAProxy(StopsOnExit):
    """A running ``haproxy`` in front of gateways; build it with `start`."""

    port: int
    run_dir: Path
    process: subprocess.Popen[bytes]
    _log_file: IO[bytes] = field(repr=False)

    @classmethod
    def start(
        cls,
        servers: Mapping[str, str],
        *,
        run_dir: Path,
        port: int | None = None,
        check_interval_ms: int = 500,
        binary: Path = HAPROXY,
        timeout_s: float = 30.0,
    ) -> HAProxy:
        """HAProxy on ``port`` (a free one when None) of 127.0.0.1 in front of ``servers``
        (name -> ``host:port``), its config, socket and log in ``run_dir``; returns once every
        server is UP.

        Raises `HAProxyUnavailable` without the binary, RuntimeError (with HAProxy's output)
        when it exits or a server is not UP within ``timeout_s``; HAProxy is stopped first.
        """
        if not binary.is_file():
            raise HAProxyUnavailable(f"{binary} is missing: install Debian's haproxy package")
        run_dir.mkdir(parents=True, exist_ok=True)
        port = free_port() if port is None else port
        config = run_dir / "haproxy.cfg"
        config.write_text(
            haproxy_config(
                servers,
                bind=f"127.0.0.1:{port}",
                stats_socket=run_dir / "haproxy.sock",
                check_interval_ms=check_interval_ms,
            )
        )
        log_file = open(run_dir / "haproxy.log", "wb")  # noqa: SIM115 - closed by stop
        process = subprocess.Popen(
            [str(binary), "-f", str(config), "-db"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        proxy = cls(port=port, run_dir=run_dir, process=process, _log_file=log_file)
        try:
            proxy.wait_for(all_up, timeout_s=timeout_s, what="every gateway UP")
        except BaseException:
            proxy.stop()
            raise
        return proxy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "haproxy.log"

    def log(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def requests(self) -> list[LoggedRequest]:
        """Every request HAProxy has finished, in the order it finished them."""
        found = []
        for line in self.log().splitlines():
            words = line.split(" ")
            if len(words) == 6 and words[0] == "request" and words[2].lstrip("-").isdigit():
                _, server, status, termination, retries, request_id = words
                found.append(LoggedRequest(server, int(status), termination, retries, request_id))
        return found

    def servers(self) -> dict[str, ServerState]:
        """Each gateway's state now, from the stats socket (``show stat``)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.run_dir / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        text = b"".join(chunks).decode().removeprefix("# ")
        return {
            row["svname"]: ServerState(status=row["status"], sessions=int(row["scur"] or 0))
            for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for(
        self,
        ready: Callable[[dict[str, ServerState]], bool],
        *,
        timeout_s: float = 30.0,
        what: str = "the gateways' states",
    ) -> dict[str, ServerState]:
        """Poll `servers` until ``ready`` holds; the states then. Raises RuntimeError, with
        HAProxy's output, when HAProxy exits or ``timeout_s`` passes first."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log()}")
            try:
                states = self.servers()
            except OSError:  # the socket is not there yet
                states = None
            if states is not None and ready(states):
                return states
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy: no {what} in {timeout_s} s ({states}):\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """Stop HAProxy (idempotent; connections open are closed) and return its exit code."""
        stop_process(self.process)
        self._log_file.close()
        return int(self.process.returncode)
