"""`frugal serve --workers N`: N gateway processes sharing one listening socket.

uvicorn's supervisor (`uvicorn.supervisors.Multiprocess`) spawns the workers: each is a fresh
interpreter that builds its own gateway from the settings (its own ONNX Runtime session, its own
connections to the shared Redis store and to the provider) and serves the socket the parent
bound, with the drain of `frugal.api.server`. The supervisor pings every worker and replaces one
that died after it started; a worker whose start-up fails stops them all, and `serve_workers`
raises its one-line message.

Signals go to the parent. SIGTERM is passed on to every worker, and each drains as a single
gateway does (``/readyz`` 503 while it serves on for ``drain_s``, then the graceful shutdown
finishes what is in flight); the parent returns once all have exited. SIGINT (Ctrl-C) stops them
without the drain. The supervisor's other signals (SIGHUP's rolling restart, SIGTTIN and SIGTTOU
to add or remove a worker) are not offered: they are ignored with a warning.

Each worker's embedder gets an equal share of the cores the process may run on for its
intra-op threads (`share_of_cores`), so N workers do not each start one thread per core.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import socket
import sys
import threading
from dataclasses import dataclass
from multiprocessing.queues import SimpleQueue
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from frugal.api.server import DrainingServer, describe, gateway_server, listen_socket
from frugal.config import Settings
from frugal.errors import ConfigurationError

logger = logging.getLogger(__name__)


def share_of_cores(workers: int) -> int:
    """Intra-op threads for each of ``workers`` embedders: the cores this process may run on
    (its CPU affinity, as a container's limit sets it), divided evenly, at least one."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


@dataclass(frozen=True)
class GatewaySpec:
    """What a worker builds its gateway from; picklable, as spawned workers need.

    ``fields`` are the `Settings`' values (the object itself may be of a class made for its
    YAML file, which does not pickle); ``threads`` the embedder's intra-op threads; ``worker``
    the worker's number (1..N), which a ``replica_id`` that is set gets as a suffix
    (``gw-a/worker-2``): each worker reports to the fleet view and labels its metrics as its own.
    """

    fields: dict[str, Any]
    threads: int
    worker: int | None = None

    @classmethod
    def of(cls, settings: Settings, *, workers: int) -> GatewaySpec:
        fields = {name: getattr(settings, name) for name in Settings.model_fields}
        return cls(fields=fields, threads=share_of_cores(workers))

    def for_worker(self, number: int) -> GatewaySpec:
        return dataclasses.replace(self, worker=number)

    @property
    def settings(self) -> Settings:
        fields = self.fields
        if self.worker is not None and fields.get("replica_id") is not None:
            fields = {**fields, "replica_id": f"{fields['replica_id']}/worker-{self.worker}"}
        return Settings.model_construct(**fields)  # validated once, by the parent

    def __call__(self) -> FastAPI:
        """The gateway's app, built in the worker (in the parent it would be pickled)."""
        from frugal.api.app import create_app
        from frugal.cache import set_process_threads
        from frugal.observability.logs import configure_logging

        settings = self.settings
        configure_logging(settings.log_level)
        set_process_threads(self.threads)
        return create_app(settings)


class _Worker(Process):
    """One of uvicorn's worker processes, serving the gateway with frugal's drain.

    In the child, `target` answers the supervisor's pings from the start (an app still being
    built is alive, only not yet started) and reports a start-up failure on ``failures``
    before it exits with uvicorn's start-up failure code, which stops the supervisor.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[socket.socket],
        *,
        spec: GatewaySpec,
        failures: SimpleQueue[str],
    ) -> None:
        self._spec = spec
        self._failures = failures
        self._gateway: DrainingServer | None = None
        super().__init__(config, sockets)

    def pong(self) -> None:
        self.child_conn.recv()
        self.child_conn.send(self._gateway is not None and self._gateway.started)

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # in the child
        threading.Thread(target=self.always_pong, daemon=True).start()
        settings = self._spec.settings
        try:
            app = self._spec()
        except Exception as exc:
            self._fail(exc)
        server, guard = gateway_server(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            drain_s=settings.shutdown_drain_s,
        )
        self._gateway = server
        try:
            server.run(sockets=sockets)
        except SystemExit:
            if guard.failure is None:
                raise
        if guard.failure is not None:
            self._fail(guard.failure)

    def _fail(self, exc: BaseException) -> None:
        self._failures.put(describe(exc))
        sys.exit(STARTUP_FAILURE)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, with frugal's workers."""

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[socket.socket],
        *,
        spec: GatewaySpec,
        failures: SimpleQueue[str],
    ) -> None:
        super().__init__(config, sockets)
        self._spec = spec
        self._failures = failures

    def _new_worker(self, index: int) -> _Worker:
        spec = self._spec.for_worker(index + 1)
        worker = _Worker(self.config, self.sockets, spec=spec, failures=self._failures)
        worker.start()
        return worker

    def init_processes(self) -> None:
        self.processes = [self._new_worker(index) for index in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        """As uvicorn's: a worker that does not answer is killed; one that failed its start-up
        stops them all (every other would fail the same way); one that died later is replaced."""
        if self.should_exit.is_set():
            return
        for index, worker in enumerate(self.processes):
            if worker.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            worker.kill()
            worker.join()
            if worker.exitcode == STARTUP_FAILURE:
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.warning(
                "gateway worker %s died (exit %s): starting another", worker.pid, worker.exitcode
            )
            self.processes[index] = self._new_worker(index)

    def _not_offered(self) -> None:
        logger.warning("signal ignored: frugal serve --workers runs a fixed number of workers")

    handle_hup = handle_ttin = handle_ttou = _not_offered


def serve_workers(settings: Settings) -> None:
    """Serve the gateway of ``settings`` on ``settings.host:port`` in ``settings.workers``
    processes until a signal stops them (see the module's docstring).

    Raises `ConfigurationError`, with a one-line message, when the address cannot be bound or
    a worker's start-up fails; the other workers are stopped first.
    """
    sock = listen_socket(settings.host, settings.port)
    spec = GatewaySpec.of(settings, workers=settings.workers)
    # The supervisor's uvicorn settings: how many workers, how long a ping may take, and the
    # factory each worker builds its app with (in `_Worker.target`, which serves it with its own).
    config = uvicorn.Config(
        spec, factory=True, workers=settings.workers, log_level=settings.log_level, log_config=None
    )
    # uvicorn spawns its workers: a queue for them must come from the same context.
    failures: SimpleQueue[str] = multiprocessing.get_context("spawn").SimpleQueue()
    logger.info(
        "frugal gateway: %d workers, %d embedder threads each", settings.workers, spec.threads
    )
    try:
        _Supervisor(config, [sock], spec=spec, failures=failures).run()
    finally:
        sock.close()
    if not failures.empty():
        raise ConfigurationError(f"cannot start: {failures.get()}")
