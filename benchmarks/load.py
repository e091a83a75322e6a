"""A long run at 70% of measured capacity, with faults midway: nothing lost, nothing misdelivered,
no leak, no drift.

    python benchmarks/load.py [--minutes 10] [--share 0.7] [--store embedded|redis]
                              [--no-provider-faults] [--out load]

Three tenants (client keys) ask CLINC150 utterances, drawn by Zipf popularity, through the
gateway in front of the simulated provider. First the capacity: a closed loop of 48 clients on the
warm cache, throughput over its last half. Then open-loop Poisson arrivals at ``share`` of it for
``minutes``, during which
- from 40% to 60% of the run the provider fails (unless ``--no-provider-faults``): 20% 500s,
  5% dropped connections, 5% answers 2 s late;
- at 65% of the run Redis (``--store redis``) is stopped for 30 s, then started again, empty.

Every response is checked: a 200 must be the caller's own answer (a miss answers its prompt; a
hit answers a prompt the same tenant asked), anything else an OpenAI-shaped error; a request with
no response in 60 s, or a broken one, is lost. The goals: zero misdelivered, zero lost, gateway
memory (RSS) at the end within 10% of the end of the first minute, p99 latency of the last
minute within 20% of the first minute's. Results go to benchmarks/results/OUT.md and OUT.png.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS  # noqa: E402
from _lean_http import LeanConnection  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.bench.workload import Draw, load_workload, stream  # noqa: E402
from frugal.config import load_settings  # noqa: E402
from frugal.local import processes  # noqa: E402
from frugal.local.redis_server import RedisServer  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402
from frugal.plots import pyplot, save  # noqa: E402
from frugal.tenants import add_key  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
MODEL = "sim-small"
PATH = "/v1/chat/completions"
TENANTS = ("acme", "globex", "initech")
ANSWER = re.compile(r"\[(?P<model>[^\]]+)\] Answer to: (?P<prompt>.*)", re.DOTALL)
SIM = ["--call-latency-ms", "200", "--item-latency-ms", "20"]
FAULTS = {"error_rate": 0.2, "drop_rate": 0.05, "slow_rate": 0.05, "slow_ms": 2000}
CLEAN = {"error_rate": 0.0, "drop_rate": 0.0, "slow_rate": 0.0}
CLEAN_ERRORS = {429, 502, 503, 504}  # what a client may get instead of its answer
LOST_AFTER_S = 60.0
CAPACITY_CLIENTS = 48


@dataclass
class Result:
    at: float  # seconds since the open loop started
    latency_s: float
    status: int  # 0: lost
    cache: str = ""
    misdelivered: bool = False
    lost_why: str = ""
    answered: str | None = None  # the prompt the answer names
    prompt: str = ""
    tenant: str = ""
    wrong_hit: bool = False  # a hit for another intent: the threshold's error, not a lost answer


@dataclass
class Run:
    sent: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in TENANTS})
    results: list[Result] = field(default_factory=list)
    memory: list[tuple[float, float]] = field(default_factory=list)  # (at, RSS MiB)
    health: list[tuple[float, str]] = field(default_factory=list)  # (at, /readyz's "cache")
    readyz_s: list[tuple[float, float]] = field(default_factory=list)  # (at, /readyz's time)
    wall_start: float = 0.0  # unix time at which the open loop started
    breaker_log: list[tuple[float, str]] = field(default_factory=list)


class Pool:
    """Idle keep-alive connections; a broken one is dropped, a new one opened on demand.

    A connection idle for IDLE_S is closed rather than reused: the server closes idle
    connections after 5 s (uvicorn's keep-alive timeout), and a request written into one it is
    closing would be lost to the client's timing, not the gateway's.
    """

    IDLE_S = 4.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.idle: list[tuple[LeanConnection, float]] = []

    async def _take(self) -> LeanConnection:
        while self.idle:
            connection, since = self.idle.pop()
            if time.monotonic() - since < self.IDLE_S:
                return connection
            await _close(connection)
        return await LeanConnection.open(self.url)

    async def post(self, body: dict, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        connection = await self._take()
        try:
            answer = await connection.post(PATH, body, headers)
        except BaseException:
            await asyncio.shield(_close(connection))
            raise
        self.idle.append((connection, time.monotonic()))
        return answer


async def _close(connection: LeanConnection) -> None:
    try:
        await connection.aclose()
    except OSError:
        pass


def asked(tenant: str, draw: Draw) -> str:
    """The prompt as ``tenant`` asks it. The tenant's name in the text makes an answer name its
    tenant, so that one tenant's answer reaching another is seen; the meaning is the draw's."""
    return f"{tenant}: {draw.text}"


def check(run: Run, tenant: str, draw: Draw, group_of: dict[str, int], status: int,
          headers: dict[str, str], payload: bytes) -> Result:  # fmt: skip
    """Classify one response (its timing is filled in by the caller)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return Result(0, 0, status=0, lost_why=f"{status}: not JSON")  # as good as lost
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        shaped = isinstance(error, dict) and isinstance(error.get("message"), str)
        if shaped and status in CLEAN_ERRORS:
            return Result(0, 0, status=status)
        return Result(0, 0, status=0, lost_why=f"{status}: {payload[:200]!r}")
    cache = headers.get("x-frugal-cache", "")
    found = ANSWER.fullmatch(body["choices"][0]["message"]["content"])
    answered = found["prompt"] if found else None
    shared = cache in ("hit", "coalesced")  # another request's answer, which this tenant asked
    misdelivered = answered not in run.sent[tenant] if shared else answered != asked(tenant, draw)
    meaning = group_of.get((answered or "").removeprefix(f"{tenant}: "))
    wrong_hit = shared and meaning != draw.group
    return Result(
        at=0,
        latency_s=0,
        status=status,
        cache=cache,
        misdelivered=misdelivered,
        wrong_hit=wrong_hit and not misdelivered,
        answered=answered,
    )


async def ask(
    run: Run, pool: Pool, keys: dict[str, str], tenant: str, draw: Draw, group_of: dict[str, int],
    started: float,
) -> Result:  # fmt: skip
    prompt = asked(tenant, draw)
    run.sent[tenant].add(prompt)
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    at = time.perf_counter()
    try:
        status, headers, payload = await asyncio.wait_for(
            pool.post(body, {"authorization": f"Bearer {keys[tenant]}"}), LOST_AFTER_S
        )
        result = check(run, tenant, draw, group_of, status, headers, payload)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        result = Result(0, 0, status=0, lost_why=repr(exc))
    result.at, result.latency_s = at - started, time.perf_counter() - at
    result.prompt, result.tenant = prompt, tenant
    return result


async def capacity(run: Run, pool: Pool, keys: dict[str, str], draws: list[Draw],
                   group_of: dict[str, int], seconds: float) -> float:  # fmt: skip
    """Requests per second of a closed loop of CAPACITY_CLIENTS, over its last half (its
    results are not kept; what it asked is, since its answers are in the cache)."""
    queue = iter(enumerate(draws))
    started = time.perf_counter()
    done: list[float] = []

    async def client() -> None:
        while time.perf_counter() - started < seconds:
            number, draw = next(queue)
            await ask(run, pool, keys, TENANTS[number % 3], draw, group_of, started)
            done.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(CAPACITY_CLIENTS)))
    late = [t for t in done if t >= seconds / 2]
    return len(late) / (seconds / 2)


async def cache_health(run: Run, url: str, at: float) -> None:
    """Sample the store's health (the cache of /readyz) and how long /readyz took."""
    began = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            state = (await http.get(url + "/readyz")).json()["cache"]
    except httpx.HTTPError as exc:
        state = f"no answer ({type(exc).__name__})"
    run.health.append((at, state))
    run.readyz_s.append((at, time.perf_counter() - began))


def degraded_spans(health: list[tuple[float, str]]) -> list[tuple[float, float]]:
    """The intervals (from the 2 s samples) in which the store's breaker was not closed."""
    spans: list[tuple[float, float]] = []
    start = None
    for at, state in sorted(health):
        if state != "ok" and start is None:
            start = at
        elif state == "ok" and start is not None:
            spans.append((start, at))
            start = None
    if start is not None:
        spans.append((start, sorted(health)[-1][0]))
    return spans


def breaker_events(log: str, since: float) -> list[tuple[float, str]]:
    """The store breaker's log lines, timed from ``since`` (unix seconds)."""
    events = []
    for line in log.splitlines():
        if "circuit breaker" not in line or not line.startswith("{"):
            continue
        record = json.loads(line)
        at = dt.datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp() - since
        events.append((at, record["message"]))
    return events


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def open_loop(
    run: Run, pool: Pool, keys: dict[str, str], draws: list[Draw], group_of: dict[str, int],
    rate: float, seconds: float, events: list[tuple[float, str, object]], gateway_pid: int,
) -> None:  # fmt: skip
    """Poisson arrivals at ``rate`` for ``seconds``; ``events`` run at their times."""
    rng = random.Random(1)
    started = time.perf_counter()
    run.wall_start = time.time()
    tasks: list[asyncio.Task[Result]] = []
    samples: list[asyncio.Task[None]] = []
    pending_events = sorted(events, key=lambda e: e[0])
    actions: list[asyncio.Task[object]] = []
    next_sample = 0.0
    arrival = 0.0
    number = 0
    while arrival < seconds:
        now = time.perf_counter() - started
        while pending_events and pending_events[0][0] <= now:
            _, name, action = pending_events.pop(0)
            print(f"  {now:6.1f} s: {name}", flush=True)
            # In a thread of its own: restarting Redis takes seconds, arrivals go on meanwhile.
            actions.append(asyncio.create_task(asyncio.to_thread(action)))  # type: ignore[arg-type]
        if now >= next_sample:
            run.memory.append((now, rss_mib(gateway_pid)))
            samples.append(asyncio.create_task(cache_health(run, pool.url, now)))
            next_sample += 2.0
        if arrival > now:
            await asyncio.sleep(arrival - now)
        tenant = TENANTS[number % 3]
        tasks.append(
            asyncio.create_task(ask(run, pool, keys, tenant, draws[number], group_of, started))
        )
        number += 1
        arrival += rng.expovariate(rate)
    run.results = list(await asyncio.gather(*tasks))
    await asyncio.gather(*samples)
    await asyncio.gather(*actions)
    run.memory.append((time.perf_counter() - started, rss_mib(gateway_pid)))


def per_minute(run: Run, minutes: int) -> list[dict]:
    rows = []
    for minute in range(minutes):
        chunk = [r for r in run.results if minute * 60 <= r.at < (minute + 1) * 60]
        ok = [r.latency_s * 1000 for r in chunk if r.status == 200]
        memory = [m for t, m in run.memory if t < (minute + 1) * 60]
        rows.append(
            {
                "minute": minute + 1,
                "requests": len(chunk),
                "answered": len(ok),
                "errors": Counter(r.status for r in chunk if r.status not in (0, 200)),
                "lost": sum(r.status == 0 for r in chunk),
                "misdelivered": sum(r.misdelivered for r in chunk),
                "hits": sum(r.cache == "hit" for r in chunk if r.status == 200),
                "wrong_hits": sum(r.wrong_hit for r in chunk),
                "p50": percentile(ok, 50) if ok else float("nan"),
                "p99": percentile(ok, 99) if ok else float("nan"),
                "rss": memory[-1] if memory else float("nan"),
            }
        )
    return rows


def plot(run: Run, seconds: float, windows: list[tuple[float, float, str]], path: Path) -> None:
    plt = pyplot()
    fig, (lat, rate, mem) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    bins = np.arange(0, seconds + 10, 10)
    centers, p50s, p99s, answered, failed = [], [], [], [], []
    for low in bins[:-1]:
        chunk = [r for r in run.results if low <= r.at < low + 10]
        ok = [r.latency_s * 1000 for r in chunk if r.status == 200]
        centers.append(low + 5)
        p50s.append(percentile(ok, 50) if ok else np.nan)
        p99s.append(percentile(ok, 99) if ok else np.nan)
        answered.append(len(ok) / 10)
        failed.append(sum(r.status != 200 for r in chunk) / 10)
    lat.plot(centers, p50s, label="p50")
    lat.plot(centers, p99s, label="p99")
    lat.set_ylabel("latency of answers (ms)")
    lat.set_yscale("log")
    lat.legend(loc="upper left")
    rate.plot(centers, answered, label="answered /s")
    rate.plot(centers, failed, label="clean errors /s", color="tab:red")
    rate.set_ylabel("requests per second")
    rate.legend(loc="upper left")
    mem.plot([t for t, _ in run.memory], [m for _, m in run.memory], color="tab:purple")
    mem.set_ylabel("gateway RSS (MiB)")
    mem.set_xlabel("seconds into the run")
    for axis in (lat, rate, mem):
        for start, end, label in windows:
            axis.axvspan(start, end, color="tab:orange" if "provider" in label else "tab:grey",
                         alpha=0.15, label=None)  # fmt: skip
    lat.set_title(" · ".join(f"{label}: {start:.0f}–{end:.0f} s" for start, end, label in windows))
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.7)
    parser.add_argument("--store", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--no-provider-faults", dest="provider_faults", action="store_false")
    parser.add_argument("--out", default="load", help="Name of the result files.")
    parser.add_argument("--capacity-s", type=float, default=60.0)
    parser.add_argument("--max-entries", type=int, default=2000)
    parser.add_argument("--raw", type=Path, help="Also write every request's result here.")
    args = parser.parse_args()
    seconds = args.minutes * 60.0
    workload = load_workload(INTENTS)
    group_of = workload.group_of()

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = None
        if args.store == "redis":
            redis = stack.enter_context(RedisServer.start(log_path=tmp / "redis.log"))
        keys_file = tmp / "keys.yaml"
        keys = {tenant: add_key(keys_file, tenant) for tenant in TENANTS}
        env = {
            "FRUGAL_MODEL_DIR": str(load_settings().models_path),
            "FRUGAL_DATA_DIR": str(tmp / "data"),
            "FRUGAL_ADMIN_KEY": "load-admin",
            "FRUGAL_API_KEYS_FILE": str(keys_file),
            "FRUGAL_CACHE_MAX_ENTRIES": str(args.max_entries),
        }
        if redis is not None:
            env |= {"FRUGAL_STORE": "redis", "FRUGAL_REDIS_URL": redis.url}
        sim, gateway = stack.enter_context(
            processes.running_stack(log_dir=tmp, sim_args=SIM, gateway_env=env)
        )

        def faults(change: dict) -> None:
            httpx.post(sim.url + "/sim/faults", json=change).raise_for_status()

        windows: list[tuple[float, float, str]] = []
        events: list[tuple[float, str, object]] = []
        if args.provider_faults:
            windows.append((0.4 * seconds, 0.6 * seconds, "provider faults"))
            events += [
                (0.4 * seconds, "provider faults on", lambda: faults(FAULTS)),
                (0.6 * seconds, "provider faults off", lambda: faults(CLEAN)),
            ]
        if redis is not None:
            windows.append((0.65 * seconds, 0.65 * seconds + 30, "Redis stopped"))
            events += [
                (0.65 * seconds, "Redis stopped", redis.stop),
                (0.65 * seconds + 30, "Redis started", redis.restart),
            ]
        draws = stream(workload, int(seconds * 400) + 100_000, zipf=1.1, seed=0)

        def admin_stats() -> dict:
            headers = {"authorization": "Bearer load-admin"}
            return httpx.get(gateway.url + "/admin/stats", headers=headers).json()

        async def session() -> tuple[float, float, Run, dict]:
            pool = Pool(gateway.url)
            print(f"capacity: a closed loop of {CAPACITY_CLIENTS} clients for {args.capacity_s} s")
            run = Run()
            measured = await capacity(run, pool, keys, draws[-100_000:], group_of, args.capacity_s)
            rate = args.share * measured
            print(f"capacity {measured:.1f} req/s; open loop at {rate:.1f} req/s")
            before = await asyncio.to_thread(admin_stats)
            await open_loop(run, pool, keys, draws, group_of, rate, seconds, events,
                            gateway.process.pid)  # fmt: skip
            return measured, rate, run, before

        measured, rate, run, before = asyncio.run(session())
        stats = admin_stats()
        run.breaker_log = breaker_events(gateway.log(), run.wall_start)
    if args.raw:
        args.raw.write_text("".join(json.dumps(vars(r)) + "\n" for r in run.results))
    report(args, measured, rate, run, before, stats, windows)
    plot(run, seconds, windows, RESULTS / f"{args.out}.png")


def report(args: argparse.Namespace, measured: float, rate: float, run: Run, before: dict,
           stats: dict, windows: list[tuple[float, float, str]]) -> None:  # fmt: skip
    rows = per_minute(run, args.minutes)
    results = run.results
    lost = sum(r.status == 0 for r in results)
    misdelivered = sum(r.misdelivered for r in results)
    errors = Counter(r.status for r in results if r.status not in (0, 200))
    warm = rows[0]["rss"]
    end = run.memory[-1][1]
    growth = (end - warm) / warm
    drift = (rows[-1]["p99"] - rows[0]["p99"]) / rows[0]["p99"]
    hits = sum(r.cache == "hit" for r in results if r.status == 200)
    wrong = sum(r.wrong_hit for r in results)
    causes = Counter(r.lost_why for r in results if r.status == 0)
    store, earlier = stats.get("store", {}), before.get("store", {})
    opened = store.get("opened", 0) - earlier.get("opened", 0)
    closed = store.get("closed", 0) - earlier.get("closed", 0)
    upstream = stats.get("upstream", {})
    lines = [
        f"Store: {args.store}; three tenants; CLINC150 by Zipf 1.1; the simulator at "
        f"{' '.join(SIM)} (ms); cache bound {args.max_entries} entries (reached during the "
        f"capacity phase, so that memory is flat unless something leaks).",
        "",
        f"Capacity (closed loop of {CAPACITY_CLIENTS}, warm cache): **{measured:.1f} req/s**. "
        f"Open loop at {args.share:.0%}: **{rate:.1f} req/s** for {args.minutes} minutes, "
        f"{len(results)} requests.",
        "",
        "Events: "
        + "; ".join(f"{label} {start:.0f}–{end:.0f} s" for start, end, label in windows)
        + (f". Provider faults: {FAULTS}." if args.provider_faults else "."),
        "",
        "| goal | measured | |",
        "|---|---|---|",
        f"| zero answers delivered to the wrong caller | {misdelivered} | "
        f"{'met' if misdelivered == 0 else 'NOT met'} |",
        f"| zero lost requests | {lost} | {'met' if lost == 0 else 'NOT met'} |",
        f"| memory growth after warm-up ≤ 10% | {warm:.0f} → {end:.0f} MiB ({growth:+.1%}) | "
        f"{'met' if growth <= 0.10 else 'NOT met'} |",
        f"| p99 drift, first to last minute, ≤ 20% | {rows[0]['p99']:.0f} → "
        f"{rows[-1]['p99']:.0f} ms ({drift:+.1%}) | {'met' if drift <= 0.20 else 'NOT met'} |",
        "",
        f"Clean errors (OpenAI-shaped, during the faults): {dict(sorted(errors.items()))}. "
        f"Hits: {hits} ({hits / max(1, len(results)):.1%} of requests), of which "
        f"{wrong} for another intent (the threshold's error rate, {wrong / max(1, hits):.2%}).",
        "",
        "Lost, by cause: "
        + (", ".join(f"{why} ×{n}" for why, n in causes.most_common(5)) or "none")
        + ".",
        "",
        "Cache degraded (the store's breaker not closed, sampled every 2 s): "
        + (", ".join(f"{a:.0f}–{b:.0f} s" for a, b in degraded_spans(run.health)) or "never")
        + ".",
        "",
        "Store breaker log: "
        + ("; ".join(f"{at:.1f} s: {message[:110]}" for at, message in run.breaker_log) or "none")
        + ".",
        "",
        f"Store breaker during the open loop: opened {opened}, closed {closed}; "
        f"provider calls {upstream.get('calls', '–')}, retries {upstream.get('retries', '–')}.",
        "",
        "| minute | requests | answered | clean errors | lost | misdelivered | hits | "
        "p50 (ms) | p99 (ms) | RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        errs = ", ".join(f"{n}×{s}" for s, n in sorted(row["errors"].items())) or "0"
        lines.append(
            f"| {row['minute']} | {row['requests']} | {row['answered']} | {errs} | {row['lost']} "
            f"| {row['misdelivered']} | {row['hits']} | {row['p50']:.0f} | {row['p99']:.0f} "
            f"| {row['rss']:.0f} |"
        )
    lines += ["", f"![load over time]({args.out}.png)"]
    command = f"python benchmarks/load.py --minutes {args.minutes} --share {args.share} " \
              f"--store {args.store}" + ("" if args.provider_faults else " --no-provider-faults") \
              + f" --out {args.out}"  # fmt: skip
    title = "Load: " + " and ".join(label for _, _, label in windows) + " midway"
    write_report(RESULTS / f"{args.out}.md", title=title, command=command, lines=lines)


if __name__ == "__main__":
    main()
