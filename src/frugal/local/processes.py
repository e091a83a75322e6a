"""Run `frugal` servers as child processes on free loopback ports (demo, bench, tests).

Each child is a real `python -m frugal ...` process listening on a real socket. `FrugalProcess`
stops it with SIGTERM (SIGKILL if it lingers), so nothing is left running.

    with running_stack(log_dir=Path("logs")) as (sim, gateway):
        httpx.get(gateway.url + "/readyz")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import httpx


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(
    process: subprocess.Popen[Any], *, sig: int = signal.SIGTERM, timeout_s: float = 10.0
) -> int:
    """Send ``sig`` to ``process`` if it runs, kill it if it has not ended within
    ``timeout_s``; its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


class StopsOnExit:
    """``with Thing.start(...) as thing:`` stops the thing when the block ends; a subclass
    defines ``stop``."""

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class FrugalProcess:
    """A running `frugal` child process and where its output goes."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Stop the process (idempotent) and return its exit code."""
        code = stop_process(self.process, sig=sig, timeout_s=timeout_s)
        self.log_file.close()
        return code


def start_frugal(
    args: list[str],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    ready_path: str = "/healthz",
    timeout_s: float = 60.0,
    port: int | None = None,
) -> FrugalProcess:
    """Run ``python -m frugal ARGS --host 127.0.0.1 --port P`` and wait until it answers.
    ``P`` is ``port``, or a free port when None.

    Raises RuntimeError, with the child's output, when it exits early or is not ready (a 200
    from ``ready_path``) within ``timeout_s``; the child is stopped first.
    """
    port = free_port() if port is None else port
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{args[0]}-{port}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by FrugalProcess.stop
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "frugal", *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
    )
    child = FrugalProcess(process=process, port=port, log_path=log_path, log_file=log_file)
    try:
        _wait_ready(child, args[0], ready_path, timeout_s)
    except BaseException:  # also Ctrl-C while waiting: never leave the child behind
        child.stop()
        raise
    return child


def _wait_ready(child: FrugalProcess, name: str, ready_path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"frugal {name} exited early:\n{child.log()}")
        try:
            if httpx.get(child.url + ready_path, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"frugal {name} did not become ready in {timeout_s} s:\n{child.log()}")


@contextmanager
def running_stack(
    *, log_dir: Path, sim_args: Sequence[str] = (), gateway_env: dict[str, str] | None = None
) -> Iterator[tuple[FrugalProcess, FrugalProcess]]:
    """A `frugal sim` and a `frugal serve` in front of it, both stopped on leaving.

    The gateway is waited for until ready (``/readyz``), so its cache is loaded.
    """
    sim = start_frugal(["sim", *sim_args], log_dir=log_dir)
    try:
        gateway = start_frugal(
            ["serve", "--upstream", sim.url + "/v1"],
            log_dir=log_dir,
            env=gateway_env,
            ready_path="/readyz",
        )
        try:
            yield sim, gateway
        finally:
            gateway.stop()
    finally:
        sim.stop()
