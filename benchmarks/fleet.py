"""The fleet measured: hit throughput with workers and HAProxy, upstream calls across replicas.

    python benchmarks/fleet.py [--clients 32] [--seconds 8] [--rounds 3] [--burst 30]

In one run on one machine:
1. semantic hits a second (the Redis store) from one `frugal serve` asked directly, the same
   process behind HAProxy, and `frugal serve --workers 2` behind HAProxy, in alternated rounds;
   with the CPU each part spent per hit (gateway processes, HAProxy, Redis, the load generator);
2. upstream calls for a burst of N identical questions and of N paraphrases of one question,
   sent at once through HAProxy to three replicas (`frugal.local.fleet`), with fleet coalescing
   and without (``FRUGAL_FLEET_COALESCING=false``);
3. from those costs, what a 16-core host and a fleet of them would serve, and where Redis
   becomes the limit (with the memory per entry of `redis_store.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_report  # noqa: E402
from cache_hit_path import SEEDS, body, cpu_seconds, hit_throughput  # noqa: E402

from frugal.config import load_settings  # noqa: E402
from frugal.local.fleet import Fleet, running_fleet  # noqa: E402
from frugal.local.haproxy import HAProxy  # noqa: E402
from frugal.local.processes import FrugalProcess, start_frugal  # noqa: E402
from frugal.local.redis_server import RedisServer  # noqa: E402

MODEL_DIR = load_settings().models_path
RESULTS = Path(__file__).parent / "results"
# Redis memory per entry at 100,000 entries, 384 dimensions (redis_store.md, measured there).
REDIS_BYTES_PER_ENTRY = 6161
# Fifteen wordings of one question, each at least 0.91 similar to the first (all-MiniLM-L6-v2).
WORDINGS = [
    "What is the capital of France?",
    "What's the capital of France?",
    "What is France's capital?",
    "Which city is the capital of France?",
    "What city is the capital of France?",
    "Tell me the capital of France.",
    "What is the capital city of France?",
    "Name the capital of France.",
    "Which city is France's capital?",
    "What's France's capital city?",
    "Capital of France?",
    "What is the French capital?",
    "What is the capital of France, please?",
    "Could you tell me the capital of France?",
    "What's the capital city of France?",
]


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by ``root`` and every live process below it (Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    total = 0.0
    for pid in tree:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def redis_cpu_seconds(url: str) -> float:
    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass(frozen=True)
class Setup:
    name: str
    url: str  # where the clients send
    gateway: FrugalProcess
    proxy: HAProxy | None


@dataclass(frozen=True)
class Round:
    rps: float
    gateway_ms: float  # CPU a hit, the gateway's processes
    proxy_ms: float  # CPU a hit, HAProxy
    redis_ms: float  # CPU a hit, Redis
    client_ms: float  # CPU a hit, the load generator


def measure(setup: Setup, redis_url: str, clients: int, seconds: float) -> Round:
    gateway_before = tree_cpu_seconds(setup.gateway.process.pid)
    proxy_before = cpu_seconds(setup.proxy.process.pid) if setup.proxy else 0.0
    redis_before = redis_cpu_seconds(redis_url)
    client_before = resource.getrusage(resource.RUSAGE_SELF)
    rps = asyncio.run(hit_throughput(setup.url, clients, seconds))
    client_after = resource.getrusage(resource.RUSAGE_SELF)
    hits = rps * seconds
    client_s = (client_after.ru_utime - client_before.ru_utime) + (
        client_after.ru_stime - client_before.ru_stime
    )
    proxy_s = cpu_seconds(setup.proxy.process.pid) - proxy_before if setup.proxy else 0.0
    return Round(
        rps=rps,
        gateway_ms=(tree_cpu_seconds(setup.gateway.process.pid) - gateway_before) / hits * 1000,
        proxy_ms=proxy_s / hits * 1000,
        redis_ms=(redis_cpu_seconds(redis_url) - redis_before) / hits * 1000,
        client_ms=client_s / hits * 1000,
    )


@dataclass(frozen=True)
class RedisCommand:
    name: str
    calls_per_hit: float
    usec_per_call: float


def redis_commands(url: str, hits: float) -> list[RedisCommand]:
    """What Redis ran per hit since its last CONFIG RESETSTAT, by the time spent (its own
    accounting: the command's execution, not the network around it)."""
    stats = redis.Redis.from_url(url).info("commandstats")
    commands = [
        RedisCommand(name.removeprefix("cmdstat_"), v["calls"] / hits, v["usec_per_call"])
        for name, v in stats.items()
        if v["calls"] / hits >= 0.5
    ]
    return sorted(commands, key=lambda c: -c.calls_per_hit * c.usec_per_call)


def hit_rounds(
    args: argparse.Namespace, tmp: Path
) -> tuple[dict[str, list[Round]], list[RedisCommand]]:
    """Part 1: the three setups, their rounds alternated; and Redis's commands per hit."""
    env = {
        "FRUGAL_LOG_LEVEL": "warning",
        "FRUGAL_MODEL_DIR": str(MODEL_DIR.resolve()),
        "FRUGAL_STORE": "redis",
        "FRUGAL_STORE_TIMEOUT_MS": "1000",  # a busy round must not turn hits into misses
    }
    rounds: dict[str, list[Round]] = {}
    with RedisServer.start(log_path=tmp / "redis.log") as server:
        env["FRUGAL_REDIS_URL"] = server.url
        sim_args = ["sim", "--call-latency-ms", "0", "--item-latency-ms", "0"]
        sim = start_frugal(sim_args, log_dir=tmp)
        started: list[FrugalProcess] = [sim]
        try:
            for workers in (1, 2):
                started.append(
                    start_frugal(
                        ["serve", "--upstream", sim.url + "/v1", "--workers", str(workers)],
                        log_dir=tmp / f"workers-{workers}",
                        env={**env, "FRUGAL_DATA_DIR": str(tmp / f"data-{workers}")},
                        ready_path="/readyz",
                    )
                )
            one, two = started[1], started[2]
            for seed in SEEDS:
                httpx.post(one.url + "/v1/chat/completions", json=body(seed), timeout=30)
            with (
                HAProxy.start({"gw": f"127.0.0.1:{one.port}"}, run_dir=tmp / "lb-1") as lb1,
                HAProxy.start({"gw": f"127.0.0.1:{two.port}"}, run_dir=tmp / "lb-2") as lb2,
            ):
                setups = [
                    Setup("one process, asked directly", one.url, one, None),
                    Setup("the same process behind HAProxy", lb1.url, one, lb1),
                    Setup("`--workers 2` behind HAProxy", lb2.url, two, lb2),
                ]
                for setup in setups:  # warm-up: connections, code paths, both workers
                    asyncio.run(hit_throughput(setup.url, args.clients, 2.0))
                redis.Redis.from_url(server.url).config_resetstat()
                for _ in range(args.rounds):
                    for setup in setups:
                        measured = measure(setup, server.url, args.clients, args.seconds)
                        rounds.setdefault(setup.name, []).append(measured)
                hits = sum(r.rps * args.seconds for runs in rounds.values() for r in runs)
                commands = redis_commands(server.url, hits)
        finally:
            for process in reversed(started):
                process.stop()
    return rounds, commands


@dataclass(frozen=True)
class Burst:
    calls: int
    outcomes: Counter[str]
    spread: Counter[str]  # requests per replica, as HAProxy sent them


async def burst(fleet: Fleet, questions: list[str]) -> Burst:
    """Every question at once through HAProxy, a connection each; what the provider saw."""
    assert fleet.sim is not None
    before = httpx.get(fleet.sim.url + "/sim/stats").json()["calls"]
    ids = [f"burst-{number}-{time.monotonic_ns()}" for number in range(len(questions))]

    async def one(question: str, request_id: str) -> str:
        async with httpx.AsyncClient(base_url=fleet.url, timeout=120) as http:
            response = await http.post(
                "/v1/chat/completions", json=body(question), headers={"x-request-id": request_id}
            )
        response.raise_for_status()
        return response.headers["x-frugal-cache"]

    outcomes = await asyncio.gather(*(one(q, rid) for q, rid in zip(questions, ids, strict=True)))
    calls = httpx.get(fleet.sim.url + "/sim/stats").json()["calls"] - before
    served_by = {logged.request_id: logged.server for logged in fleet.proxy.requests()}
    return Burst(
        calls=calls,
        outcomes=Counter(outcomes),
        spread=Counter(served_by[rid] for rid in ids),
    )


def bursts(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Burst]]:
    """Part 2: a burst of identical questions and one of paraphrases, with fleet coalescing on
    and off, each on a fleet of its own."""
    n = args.burst
    identical = ["How tall is Mount Everest?"] * n
    # Each wording about as often; a wording's copies land on different replicas.
    paraphrased = [WORDINGS[(k + k // len(WORDINGS)) % len(WORDINGS)] for k in range(n)]
    results: dict[str, dict[str, Burst]] = {}
    for coalescing in ("true", "false"):
        with running_fleet(
            run_dir=tmp / f"fleet-{coalescing}",
            sim_args=["--call-latency-ms", "1000", "--item-latency-ms", "0"],
            gateway_env={
                "FRUGAL_LOG_LEVEL": "warning",
                "FRUGAL_MODEL_DIR": str(MODEL_DIR.resolve()),
                "FRUGAL_FLEET_COALESCING": coalescing,
                "FRUGAL_STORE_TIMEOUT_MS": "1000",
            },
        ) as fleet:
            results[coalescing] = {
                "identical": asyncio.run(burst(fleet, identical)),
                "paraphrased": asyncio.run(burst(fleet, paraphrased)),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "fleet.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rounds, commands = hit_rounds(args, Path(tmp))
        burst_results = bursts(args, Path(tmp))
    write_report(
        args.out,
        title="A fleet: workers, HAProxy, replicas on one Redis",
        command=(
            f"python benchmarks/fleet.py --clients {args.clients} --seconds {args.seconds:g} "
            f"--rounds {args.rounds} --burst {args.burst}"
        ),
        lines=report(args, rounds, commands, burst_results),
    )


def report(
    args: argparse.Namespace,
    rounds: dict[str, list[Round]],
    commands: list[RedisCommand],
    bursts: dict[str, dict[str, Burst]],
) -> list[str]:
    def median(name: str, field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rounds[name]))

    names = list(rounds)
    # Every setup makes Redis run the same commands a hit: all rounds tell its cost.
    redis_all = sorted(r.redis_ms for runs in rounds.values() for r in runs)
    redis_ms = float(statistics.median(redis_all))
    direct = names[0]
    lines = [
        "## Semantic hits: one process, HAProxy, `--workers 2`",
        "",
        f"Semantic hits (paraphrases of cached questions: embedded, then searched in Redis) from "
        f"{args.clients} keep-alive clients of `benchmarks/_lean_http.py`, {args.seconds:g} s a "
        f"round, the three setups in turn, {args.rounds} rounds; Redis 8 with the query engine, "
        "the gateways with `FRUGAL_STORE=redis`. CPU a hit is each part's CPU time over the hits "
        "of its rounds (a gateway with workers: the parent and its workers).",
        "",
        "| setup | hits/s (median) | rounds | × one process | gateway CPU a hit (ms) "
        "| HAProxy CPU a hit (ms) | Redis CPU a hit (ms) | load generator CPU a hit (ms) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rps = [r.rps for r in rounds[name]]
        lines.append(
            f"| {name} | {statistics.median(rps):.0f} | {', '.join(f'{x:.0f}' for x in rps)} "
            f"| {median(name, 'rps') / median(direct, 'rps'):.2f} "
            f"| {median(name, 'gateway_ms'):.2f} | {median(name, 'proxy_ms'):.2f} "
            f"| {median(name, 'redis_ms'):.2f} | {median(name, 'client_ms'):.2f} |"
        )
    cores = os.cpu_count() or 1
    lines += [
        "",
        f"This machine has {cores} cores for everything at once: the load generator, HAProxy, "
        "Redis, the simulator and the gateway's processes share them, so what `--workers 2` "
        "adds here is bounded by the cores the others leave; the CPU a hit is what carries over "
        "to a larger host.",
        "",
        "Redis ran the same commands a hit in every setup; its CPU a hit varied from round to "
        f"round, from {redis_all[0]:.2f} to {redis_all[-1]:.2f} ms (median **{redis_ms:.2f} "
        "ms**), with the cores it shared. The commands of a hit, by Redis's own accounting (all "
        "rounds; those run at least once every two hits; its time a call is wall-clock time in "
        "the command, waits for a core included):",
        "",
        "| command | calls a hit | µs a call | µs a hit |",
        "|---|---:|---:|---:|",
        *(
            f"| `{c.name}` | {c.calls_per_hit:.2f} | {c.usec_per_call:.1f} "
            f"| {c.calls_per_hit * c.usec_per_call:.0f} |"
            for c in commands
        ),
        "",
        "## Upstream calls for a burst spread over three replicas",
        "",
        f"{args.burst} requests sent at once through HAProxy (a connection each, `balance "
        "leastconn`) to three gateways on one Redis (behind Sentinel, as `frugal fleet` runs "
        "them), the provider taking 1 s a call; identical: one question; paraphrased: "
        f"{len(WORDINGS)} wordings of one question, each about as often. Each setup on a fresh "
        "fleet.",
        "",
        "| burst | fleet coalescing | upstream calls | outcomes | requests per replica |",
        "|---|---|---:|---|---|",
    ]
    for coalescing, label in (("true", "on"), ("false", "off (`FRUGAL_FLEET_COALESCING=false`)")):
        for kind, result in bursts[coalescing].items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
            spread = ", ".join(str(v) for _, v in sorted(result.spread.items()))
            lines.append(f"| {kind} | {label} | {result.calls} | {outcomes} | {spread} |")
    gateway_ms = median(direct, "gateway_ms")
    proxy_ms = median(names[1], "proxy_ms")
    workers_ms = median(names[2], "gateway_ms")
    per_host = 16 * 1000 / gateway_ms
    redis_limit = 1000 / redis_ms
    lines += [
        "",
        "Across processes only exact questions are coalesced (a lease per question in Redis); a "
        "paraphrase waits only for a near question in flight on its own replica, so a burst of "
        "paraphrases costs a call or so per replica, with fleet coalescing or without (which "
        "wordings reach a replica first decides how many of them are near enough to share).",
        "",
        "## Sizing",
        "",
        f"- **A gateway core:** a semantic hit cost {gateway_ms:.1f} ms of gateway CPU here "
        f"(embedding included), so a core serves about {1000 / gateway_ms:.0f} hits/s.",
        f"- **A 16-core host** running gateways only (`--workers 8`, two embedder threads each, "
        f"or several replicas) would serve about {per_host:,.0f} hits/s if the cost per hit "
        f"holds as processes are added: with two workers it was {workers_ms:.1f} ms here against "
        f"{gateway_ms:.1f} ms for one process. Misses cost the same embedding and lookup, plus "
        "an upstream call that mostly waits.",
        f"- **HAProxy** spent {proxy_ms:.2f} ms a hit: one HAProxy core keeps up with about "
        f"{1000 / proxy_ms:,.0f} hits/s, several hosts' worth.",
        f"- **A fleet of H such hosts** serves about H × {per_host:,.0f} hits/s until Redis is "
        f"the limit. Redis spent {redis_ms:.2f} ms of CPU a hit (the median above): two "
        "`FT.SEARCH` (the exact lookup is a tag query too, then the vector search) and the "
        "scripts that purge and touch. Its commands run on one thread, so one primary answers "
        f"about {redis_limit:,.0f} hits/s, the work of about {redis_limit / per_host:.1f} such "
        "hosts: Redis is the first limit of a fleet. Beyond that, "
        "`FRUGAL_REDIS_READ_FROM_REPLICAS=true` sends the lookups (the bulk of it) to the "
        "replicas, one more replica for each primary's worth of lookups, while the writes stay on "
        "the primary; or split the tenants over deployments with their own prefixes and Redis.",
        f"- **Memory:** about {REDIS_BYTES_PER_ENTRY / 1000:.1f} KB of Redis memory an entry at "
        "100,000 entries (`redis_store.md`: the vector, its HNSW links and the hash with the "
        f"answer), so a million cached answers take about "
        f"{REDIS_BYTES_PER_ENTRY * 1_000_000 / 2**30:.1f} GiB on the primary and again on each "
        "replica; `FRUGAL_CACHE_MAX_ENTRIES` bounds it.",
    ]
    return lines


if __name__ == "__main__":
    main()
