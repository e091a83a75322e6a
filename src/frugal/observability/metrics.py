"""Prometheus metrics (``GET /metrics``), on a registry of the gateway's own.

With a ``replica`` (the Redis store: one of several processes on one cache), every series
carries a ``replica`` label with its name, and ``frugal_replica_info{replica} 1`` says which
process answered the scrape: each process counts only its own, and the label keeps two
processes' counters apart wherever they are scraped from (``--workers`` share one port).

Per request, labelled by tenant (unless ``tenant_label`` is off, for setups with many tenants),
endpoint and model, never by prompt or key: requests by outcome, latency by outcome, tokens and
money saved, semantic-hit similarity; the items of lists answered item by item, by result.
Per upstream call and batch: calls, items, batch sizes and queue waits. What other parts
already count (the store's entries, evictions and expirations, store errors, the breaker, the
embedder) is read when scraped, by `GatewayCollector`.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from frugal.observability.record import RequestRecord
from frugal.outcome import Outcome

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SIMILARITY_BUCKETS = (0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 3, 4, 5, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)
BREAKER_STATES = ("closed", "open", "half-open")

# No `_created` series: they double the output and say little. They are left out of this
# registry's exposition rather than turned off for the whole process (a library-wide switch).
_CREATED = "_created"


@dataclass
class Snapshot:
    """What `GatewayCollector` reports, refreshed just before each scrape."""

    upstream_retries: int = 0
    entries: int | None = None
    evictions: int | None = None
    expirations: int | None = None
    write_failures: int | None = None
    unsaved: int | None = None
    store_errors: int = 0
    breaker: str | None = None
    embedder_calls: int = 0
    embedder_texts: int = 0
    embedder_seconds: float = 0.0
    embedder_batch_sizes: Tally[int] = field(default_factory=Tally)


class GatewayCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        yield CounterMetricFamily(
            "frugal_upstream_retries",
            "Provider calls tried again after a 5xx, a 429 or a lost connection.",
            s.upstream_retries,
        )
        if s.entries is not None:
            yield GaugeMetricFamily(
                "frugal_cache_entries", "Entries in the cache store.", s.entries
            )
        if s.evictions is not None:
            yield CounterMetricFamily(
                "frugal_cache_evictions", "Entries evicted by the size bound.", s.evictions
            )
        if s.expirations is not None:
            yield CounterMetricFamily(
                "frugal_cache_expirations", "Entries removed when their TTL ran out.", s.expirations
            )
        if s.write_failures is not None:
            yield CounterMetricFamily(
                "frugal_store_write_failures",
                "Failed attempts to write the cache file (retried; nothing is dropped).",
                s.write_failures,
            )
        if s.unsaved is not None:
            yield GaugeMetricFamily(
                "frugal_store_unsaved_changes",
                "Cache changes held in memory, not yet written to the cache file.",
                s.unsaved,
            )
        yield CounterMetricFamily(
            "frugal_cache_store_errors",
            "Cache operations that failed and were served as misses.",
            s.store_errors,
        )
        if s.breaker is not None:
            state = GaugeMetricFamily(
                "frugal_store_breaker_state", "The store's circuit breaker (1: this state).",
                labels=["state"],
            )  # fmt: skip
            for name in BREAKER_STATES:
                state.add_metric([name], 1.0 if s.breaker == name else 0.0)
            yield state
        yield CounterMetricFamily(
            "frugal_embedder_calls", "Model calls of the embedder.", s.embedder_calls
        )
        yield CounterMetricFamily("frugal_embedder_texts", "Texts embedded.", s.embedder_texts)
        yield CounterMetricFamily(
            "frugal_embedder_seconds", "Time spent in embedder model calls.", s.embedder_seconds
        )
        sizes = s.embedder_batch_sizes
        buckets = [
            (str(bound), float(sum(n for size, n in sizes.items() if size <= bound)))
            for bound in BATCH_BUCKETS
        ]
        buckets.append(("+Inf", float(sum(sizes.values()))))
        yield HistogramMetricFamily(
            "frugal_embedder_batch_size",
            "Texts per embedder model call.",
            buckets=buckets,
            sum_value=float(sum(size * n for size, n in s.embedder_batch_sizes.items())),
        )


class Metrics:
    """The gateway's metrics; ``tenant_label`` False drops the tenant label everywhere;
    ``replica`` adds a ``replica`` label to every series."""

    def __init__(self, *, tenant_label: bool = True, replica: str | None = None) -> None:
        self.replica = replica
        self.registry = CollectorRegistry()
        self.collector = GatewayCollector()
        self.registry.register(self.collector)
        if replica is not None:
            self.registry.register(_ReplicaInfo())
        self._tenant_label = tenant_label
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        who = ["tenant", "endpoint", "model"] if tenant_label else ["endpoint", "model"]
        self.requests = Counter(
            "frugal_requests", "Requests by outcome.", [*who, "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "frugal_request_duration_seconds",
            "Time to answer (to the last byte for streams), by outcome.",
            ["endpoint", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens_saved = Counter(
            "frugal_tokens_saved",
            "Tokens answered without an upstream call (cache hits and coalesced requests).",
            [*who, "kind"],
            registry=self.registry,
        )
        self.money_saved = Counter(
            "frugal_money_saved_usd",
            "Dollars those tokens would have cost (models with a known price).",
            who,
            registry=self.registry,
        )
        self.unpriced = Counter(
            "frugal_unpriced_saved_requests",
            "Requests saved for a model whose price is unknown (tokens counted, money not).",
            who,
            registry=self.registry,
        )
        self.cache_items = Counter(
            "frugal_cache_items",
            "Items of lists answered item by item (embeddings, lists of prompts), by result: "
            "hit (from the cache) or miss (sent upstream).",
            ["endpoint", "result"],
            registry=self.registry,
        )
        self.similarity = Histogram(
            "frugal_hit_similarity",
            "Cosine similarity of semantic hits.",
            ["endpoint"],
            buckets=SIMILARITY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_calls = Counter(
            "frugal_upstream_calls", "Calls made to the provider.", ["endpoint"],
            registry=self.registry,
        )  # fmt: skip
        self.upstream_items = Counter(
            "frugal_upstream_items",
            "Prompts or inputs sent to the provider (a list call carries several).",
            ["endpoint"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "frugal_batch_size",
            "Items (prompts, inputs) per batch sent upstream (completions, embeddings).",
            ["endpoint"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "frugal_batch_queue_wait_seconds",
            "How long a miss waited for its batch to leave.",
            ["endpoint"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )

    def request(self, record: RequestRecord) -> None:
        who: tuple[str, ...] = (record.endpoint, record.model)
        if self._tenant_label:
            who = (record.tenant, *who)
        self._child(self.requests, *who, record.outcome).inc()
        self._child(self.latency, record.endpoint, record.outcome).observe(record.latency_s)
        if record.outcome is Outcome.HIT_SEMANTIC and record.similarity is not None:
            self._child(self.similarity, record.endpoint).observe(record.similarity)
        if record.items_hit or record.items_missed:
            self._child(self.cache_items, record.endpoint, "hit").inc(record.items_hit)
            self._child(self.cache_items, record.endpoint, "miss").inc(record.items_missed)
        if record.saves_tokens:
            self._child(self.tokens_saved, *who, "prompt").inc(record.prompt_tokens)
            self._child(self.tokens_saved, *who, "completion").inc(record.completion_tokens)
            if record.cost_usd is None:
                self._child(self.unpriced, *who).inc()
            else:
                self._child(self.money_saved, *who).inc(record.cost_usd)

    def upstream_call(self, path: str, items: int) -> None:
        self._child(self.upstream_calls, path).inc()
        self._child(self.upstream_items, path).inc(items)

    def batch_sent(self, path: str, units: int, waits_s: list[float]) -> None:
        self._child(self.batch_size, path).observe(units)
        queue_wait = self._child(self.queue_wait, path)
        for wait in waits_s:
            queue_wait.observe(wait)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: finding a child costs more than counting, and
        the label sets are few (models and tenants are bounded before they get here)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self) -> bytes:
        return generate_latest(_WithoutCreated(self.registry, replica=self.replica))


class _ReplicaInfo(Collector):
    """``frugal_replica_info 1``: its ``replica`` label is added with every other one's."""

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "frugal_replica_info", "The process that answered this scrape (its replica label).", 1
        )


class _WithoutCreated(Collector):
    """A registry's metrics without their ``_created`` samples, each labelled with
    ``replica`` when one is given."""

    def __init__(self, registry: CollectorRegistry, *, replica: str | None = None) -> None:
        self._registry = registry
        self._replica = replica

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            samples = [s for s in metric.samples if not s.name.endswith(_CREATED)]
            if self._replica is not None:
                samples = [
                    s._replace(labels={**s.labels, "replica": self._replica}) for s in samples
                ]
            metric.samples = samples
            yield metric
