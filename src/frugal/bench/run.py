"""`frugal bench`: the same prompt stream through each configuration a user might pick.

Each configuration gets a fresh `frugal sim` (so its call counts are its own) and, but for
``direct``, a fresh gateway with an empty cache, both real processes; the `openai` SDK (async)
sends the stream, closed-loop (N clients) or open-loop (Poisson arrivals at a rate).

Configurations (the gateway's batching is off unless named, to separate the two savings):

- ``direct``: no gateway;
- ``no-cache``: the gateway passing through;
- ``exact``: an exact-string cache (threshold 1.0, no coalescing);
- ``semantic``: the semantic cache at the default threshold, with coalescing;
- ``semantic+batching``: every default, batching included;
- ``semantic@T``: the semantic cache at threshold T;
- ``batch-direct``: the stream as one file to the provider's Batch API, no gateway (every line
  sent, at the batch price);
- ``deferred``: the same file through frugal's Batch API (cache, folding of repeats and
  paraphrases, then one provider batch of the rest at the batch price; `frugal.bench.deferred`
  says how its lines are read).

A wrong hit is an answer served without its own upstream call (a hit or a coalesced request)
that the simulator wrote for a prompt of another group: its answers name their prompt.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai

from frugal.bench.answers import ANSWER, Outcome
from frugal.bench.deferred import submit
from frugal.bench.workload import Draw, Workload
from frugal.config import DEFAULT_THRESHOLD
from frugal.local import processes
from frugal.observability.prices import PriceTable
from frugal.percentiles import percentile

NO_BATCHING = {"FRUGAL_BATCH_WINDOW_MS": "0"}
# The gateway's default threshold, set explicitly on the default setups so that what runs is
# what the report says, whatever the environment holds.
AT_DEFAULT = {"FRUGAL_CACHE_THRESHOLD": str(DEFAULT_THRESHOLD)}
MODEL_SETTING = "FRUGAL_EMBEDDER_MODEL"
# The deferred tier sends its misses as one provider batch, polled often enough for a bench.
DEFERRED = {"FRUGAL_BATCH_API_MODE": "provider", "FRUGAL_BATCH_API_POLL_S": "0.2"}


@dataclass(frozen=True)
class Config:
    """A setup: its ``name`` (what ``--only`` picks), the gateway's settings (``None``: no
    gateway), its threshold, and the ``model`` it embeds with when models are compared (the
    choice as given to ``--models``; ``None``: the configured one)."""

    name: str
    gateway_env: dict[str, str] | None  # None: straight to the simulator
    threshold: float | None = None
    model: str | None = None
    batch: bool = False  # submitted as one Batch API file, not as live requests

    @property
    def label(self) -> str:
        """The name, with the model when there is one: ``semantic (quora)``."""
        return self.name if self.model is None else f"{self.name} ({self.model})"


def configurations(
    thresholds: list[float], models: list[tuple[str, str]] | None = None
) -> list[Config]:
    """Every setup, in the report's order; ``semantic@T`` for each of ``thresholds``.

    With ``models`` (each a label and its ``FRUGAL_EMBEDDER_MODEL`` value), the setups that
    embed (``semantic``, ``semantic+batching``, ``semantic@T``) run once per model, side by
    side; the others do not depend on the model and run once.
    """
    semantic = [
        Config("semantic", {**AT_DEFAULT, **NO_BATCHING}, threshold=DEFAULT_THRESHOLD),
        Config("semantic+batching", dict(AT_DEFAULT), threshold=DEFAULT_THRESHOLD),
        *[
            Config(
                f"semantic@{t:.2f}",
                {"FRUGAL_CACHE_THRESHOLD": str(t), **NO_BATCHING},
                threshold=t,
            )
            for t in thresholds
        ],
        Config("deferred", {**AT_DEFAULT, **DEFERRED}, threshold=DEFAULT_THRESHOLD, batch=True),
    ]
    if models is not None:
        semantic = [
            replace(setup, gateway_env=_with(setup.gateway_env, MODEL_SETTING, value), model=label)
            for setup in semantic
            for label, value in models
        ]
    return [
        Config("direct", None),
        Config("no-cache", {"FRUGAL_CACHE_MODE": "off", **NO_BATCHING}),
        Config(
            "exact", {"FRUGAL_CACHE_THRESHOLD": "1.0", "FRUGAL_COALESCE": "false", **NO_BATCHING}
        ),
        Config("batch-direct", None, batch=True),
        *semantic,
    ]


def _with(env: dict[str, str] | None, key: str, value: str) -> dict[str, str]:
    return {**(env or {}), key: value}


@dataclass
class ConfigResult:
    config: Config
    outcomes: list[Outcome]
    wall_s: float
    upstream_calls: int
    upstream_tokens: int
    draws: list[Draw] = field(repr=False)

    def summary(self, workload: Workload, prices: PriceTable, model: str) -> dict[str, Any]:
        groups = workload.group_of()
        latencies = [o.latency_s * 1000 for o in self.outcomes if o.error is None]
        served = [o for o in self.outcomes if o.cache in ("hit", "coalesced")]
        wrong = sum(
            groups.get(o.answered_for or "") != draw.group
            for o, draw in zip(self.outcomes, self.draws, strict=True)
            if o.cache in ("hit", "coalesced")
        )
        fetched = [o for o in self.outcomes if o.cache not in ("hit", "coalesced")]
        cost = prices.cost(
            model,
            prompt_tokens=sum(o.prompt_tokens for o in fetched),
            completion_tokens=sum(o.completion_tokens for o in fetched),
            batch=self.config.batch,
        )
        requests = len(self.outcomes)
        # "embedder", not "model": the report's "model" is the LLM asked.
        embedder = {} if self.config.model is None else {"embedder": self.config.model}
        return {
            "config": self.config.name,
            **embedder,
            "threshold": self.config.threshold,
            "requests": requests,
            "errors": sum(o.error is not None for o in self.outcomes),
            "upstream_calls": self.upstream_calls,
            "calls_saved": 1 - self.upstream_calls / requests if requests else 0.0,
            "upstream_tokens": self.upstream_tokens,
            "upstream_cost_usd": cost,
            "hits": sum(o.cache == "hit" for o in self.outcomes),
            "coalesced": sum(o.cache == "coalesced" for o in self.outcomes),
            "hit_rate": sum(o.cache == "hit" for o in self.outcomes) / requests,
            "wrong_hits": wrong,
            "wrong_hit_rate": wrong / len(served) if served else None,
            "latency_ms": {
                "mean": float(np.mean(latencies)) if latencies else None,
                "p50": percentile(latencies, 50) if latencies else None,
                "p95": percentile(latencies, 95) if latencies else None,
                "p99": percentile(latencies, 99) if latencies else None,
            },
            "throughput_rps": requests / self.wall_s if self.wall_s else 0.0,
        }


async def _send(client: openai.AsyncOpenAI, model: str, draw: Draw) -> Outcome:
    started = time.perf_counter()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": draw.text}]
        )
        answer = raw.parse()
    except openai.OpenAIError as exc:
        return Outcome(time.perf_counter() - started, "error", error=type(exc).__name__)
    latency = time.perf_counter() - started
    text = answer.choices[0].message.content or ""
    match = ANSWER.match(text)
    usage = answer.usage
    return Outcome(
        latency,
        raw.headers.get("x-frugal-cache", "direct"),
        answered_for=match.group(1) if match else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )


async def drive(
    base_url: str,
    draws: list[Draw],
    *,
    model: str,
    clients: int | None,
    qps: float | None,
    seed: int,
    advance: Callable[[], None],
) -> tuple[list[Outcome], float]:
    """Send ``draws`` closed-loop with ``clients`` or open-loop at ``qps``; outcomes in order."""
    outcomes: list[Outcome | None] = [None] * len(draws)
    # The SDK's own HTTP client (up to 1,000 connections): what an application would use.
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=120)

    async def one(index: int) -> None:
        outcomes[index] = await _send(client, model, draws[index])
        advance()

    started = time.perf_counter()
    try:
        if qps is not None:
            rng = np.random.default_rng(seed)
            tasks = []
            for index in range(len(draws)):
                tasks.append(asyncio.create_task(one(index)))
                await asyncio.sleep(float(rng.exponential(1 / qps)))
            await asyncio.gather(*tasks)
        else:
            queue = iter(range(len(draws)))

            async def worker() -> None:
                for index in queue:
                    await one(index)

            await asyncio.gather(*(worker() for _ in range(clients or 1)))
    finally:
        await client.close()
    wall = time.perf_counter() - started
    return [outcome for outcome in outcomes if outcome is not None], wall


def run_config(
    config: Config,
    draws: list[Draw],
    *,
    model: str,
    clients: int | None,
    qps: float | None,
    seed: int,
    sim_args: list[str],
    model_dir: Path,
    advance: Callable[[], None],
) -> ConfigResult:
    with tempfile.TemporaryDirectory(prefix="frugal-bench-") as tmp:
        work = Path(tmp)
        sim = processes.start_frugal(["sim", *sim_args], log_dir=work)
        try:
            base = sim.url + "/v1"
            gateway = None
            if config.gateway_env is not None:
                env = {
                    "FRUGAL_DATA_DIR": str(work / "data"),
                    "FRUGAL_MODEL_DIR": str(model_dir),
                    "FRUGAL_LOG_LEVEL": "warning",
                    **config.gateway_env,
                }
                gateway = processes.start_frugal(
                    ["serve", "--upstream", base], log_dir=work, env=env, ready_path="/readyz"
                )
                base = gateway.url + "/v1"
            try:
                if config.batch:
                    outcomes, wall = asyncio.run(
                        submit(base, draws, model=model, through_gateway=gateway is not None)
                    )
                    for _ in draws:
                        advance()
                else:
                    outcomes, wall = asyncio.run(
                        drive(
                            base,
                            draws,
                            model=model,
                            clients=clients,
                            qps=qps,
                            seed=seed,
                            advance=advance,
                        )
                    )
            finally:
                if gateway is not None:
                    gateway.stop()
            stats = httpx.get(sim.url + "/sim/stats").json()
        finally:
            sim.stop()
    # A batch's upstream calls are the lines the provider answered in batches.
    calls, tokens = ("batch_lines", "batch_tokens") if config.batch else ("calls", "tokens")
    return ConfigResult(
        config=config,
        outcomes=outcomes,
        wall_s=wall,
        upstream_calls=int(stats[calls]),
        upstream_tokens=int(stats[tokens]),
        draws=draws,
    )
