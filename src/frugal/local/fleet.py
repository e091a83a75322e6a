"""A local fleet: gateway replicas on one Redis store, behind HAProxy (`frugal fleet`, the tests).

    with running_fleet(run_dir=Path(".frugal/fleet")) as fleet:
        fleet.url                      # HAProxy: where clients send their requests
        fleet.gateways["replica-2"]    # one gateway, to ask it directly or to stop it
        fleet.restart("replica-2")     # a stopped gateway back on its address
        fleet.redis.kill_primary()     # Sentinel promotes the replica

What runs, each on a free port of 127.0.0.1 and logging under ``run_dir``: Redis with the query
engine as a primary, a replica and three Sentinels (`frugal.local.redis_sentinel`), the
simulated provider (``frugal sim``, unless an upstream URL is given), ``replicas`` gateways
(``frugal serve`` with ``FRUGAL_STORE=redis`` found through the Sentinels, each with its own
``FRUGAL_REPLICA_ID`` and data dir, ``--workers`` when asked) and HAProxy checking their
``/readyz`` (`frugal.local.haproxy`). Leaving the block stops all of it, the gateways draining
together.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from frugal.local.haproxy import HAProxy
from frugal.local.processes import FrugalProcess, start_frugal
from frugal.local.redis_sentinel import SentinelSet

# Well above twice HAProxy's check interval (0.5 s; two failed checks take a gateway out) plus
# the half second `--workers`' supervisor may take to pass a SIGTERM on: a SIGTERM'd gateway is
# out of HAProxy's rotation before it stops accepting.
DRAIN_S = 3.0


@dataclass(frozen=True)
class GatewayPlan:
    """How the fleet runs a gateway: ``frugal serve SERVE_ARGS`` with ``env`` and a replica id,
    a data dir and logs of its own under ``run_dir``."""

    run_dir: Path
    serve_args: list[str]
    env: dict[str, str]

    def env_of(self, name: str) -> dict[str, str]:
        """The settings gateway ``name`` runs with (beyond the environment it inherits)."""
        data_dir = self.run_dir / name / "data"
        return {**self.env, "FRUGAL_REPLICA_ID": name, "FRUGAL_DATA_DIR": str(data_dir)}

    def start(
        self, name: str, *, run: int = 1, port: int | None = None, timeout_s: float = 120.0
    ) -> FrugalProcess:
        """Gateway ``name``, ready (``/readyz``); its log in ``NAME/run-RUN/``."""
        return start_frugal(
            ["serve", *self.serve_args],
            log_dir=self.run_dir / name / f"run-{run}",
            env=self.env_of(name),
            ready_path="/readyz",
            timeout_s=timeout_s,
            port=port,
        )


@dataclass
class Fleet:
    """The running fleet; see the module's docstring. ``upstream_url`` is the provider the
    gateways ask (the simulator's when ``sim`` is set)."""

    run_dir: Path
    redis: SentinelSet
    upstream_url: str
    sim: FrugalProcess | None
    proxy: HAProxy
    gateways: dict[str, FrugalProcess]
    plan: GatewayPlan
    _runs: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        """HAProxy's address: the fleet's one door."""
        return self.proxy.url

    def restart(self, name: str, *, timeout_s: float = 120.0) -> FrugalProcess:
        """Start gateway ``name`` again on its port (stopping it first if it still runs) and
        wait until HAProxy has it UP again; its new log is beside the old ones."""
        old = self.gateways[name]
        old.stop()
        self._runs[name] = run = self._runs.get(name, 1) + 1
        self.gateways[name] = self.plan.start(name, run=run, port=old.port, timeout_s=timeout_s)
        self.proxy.wait_for(lambda states: states[name].status == "UP", what=f"{name} UP")
        return self.gateways[name]

    def describe(self) -> list[str]:
        """What runs where, one line each."""
        lines = [f"clients:     {self.url}/v1  (HAProxy, in front of the gateways below)"]
        lines += [f"{name}:   {gateway.url}" for name, gateway in self.gateways.items()]
        provider = "simulator:  " if self.sim is not None else "upstream:   "
        sentinels = ",".join(self.redis.sentinels)
        lines += [
            f"{provider} {self.upstream_url}",
            f"Redis:       primary {self.redis.primary.url}, replica {self.redis.replica.url}",
            f"Sentinels:   {sentinels} (master name {self.redis.master_name})",
        ]
        lines.append(f"logs:        {self.run_dir}")
        return lines


def _stop_all(gateways: Mapping[str, FrugalProcess]) -> None:
    """Stop the gateways together: each drains for its FRUGAL_SHUTDOWN_DRAIN_S."""
    with ThreadPoolExecutor(max(1, len(gateways))) as pool:
        list(pool.map(lambda gateway: gateway.stop(), list(gateways.values())))


def _start_all(plan: GatewayPlan, names: list[str], timeout_s: float) -> dict[str, FrugalProcess]:
    """The gateways ``names``, started together (each spends its start-up loading the model).
    Raises the first failure, the others stopped."""
    with ThreadPoolExecutor(len(names)) as pool:
        starting = {name: pool.submit(plan.start, name, timeout_s=timeout_s) for name in names}
    started = {name: f.result() for name, f in starting.items() if f.exception() is None}
    failures = [error for f in starting.values() if (error := f.exception()) is not None]
    if failures:
        _stop_all(started)
        raise failures[0]
    return started


@contextmanager
def running_fleet(
    *,
    run_dir: Path,
    replicas: int = 3,
    workers: int = 1,
    upstream: str | None = None,
    sim_args: Sequence[str] = (),
    gateway_env: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout_s: float = 120.0,
) -> Iterator[Fleet]:
    """Start a fleet (see the module's docstring) and stop it on leaving.

    ``upstream``: the provider's base URL (``.../v1``); None starts ``frugal sim`` with
    ``sim_args``. ``gateway_env``: more ``FRUGAL_*`` settings for every gateway (the
    environment is inherited too). ``port``: HAProxy's, a free one when None. ``run_dir`` is
    emptied first. Raises RuntimeError, with the output of what did not start, when a part does
    not start within ``timeout_s``; what had started is stopped.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    with ExitStack() as stack:
        redis = stack.enter_context(SentinelSet.start(run_dir / "redis"))
        sim = None
        if upstream is None:
            sim = start_frugal(["sim", *sim_args], log_dir=run_dir / "sim")
            stack.callback(sim.stop)
            upstream = sim.url + "/v1"
        env = {
            "FRUGAL_STORE": "redis",
            **redis.env(),
            "FRUGAL_SHUTDOWN_DRAIN_S": str(DRAIN_S),
            **(gateway_env or {}),
        }
        plan = GatewayPlan(
            run_dir=run_dir,
            serve_args=["--upstream", upstream, "--workers", str(workers)],
            env=env,
        )
        names = [f"replica-{number}" for number in range(1, replicas + 1)]
        gateways = _start_all(plan, names, timeout_s)
        stack.callback(_stop_all, gateways)  # the dict: a restarted gateway is stopped too
        addresses = {name: f"127.0.0.1:{gateway.port}" for name, gateway in gateways.items()}
        proxy = stack.enter_context(
            HAProxy.start(addresses, run_dir=run_dir / "haproxy", port=port)
        )
        yield Fleet(
            run_dir=run_dir,
            redis=redis,
            upstream_url=upstream,
            sim=sim,
            proxy=proxy,
            gateways=gateways,
            plan=plan,
        )
