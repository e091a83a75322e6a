"""The gateway's metrics leave out ``_created`` series without switching them off for the
whole process: importing frugal changes no library's global state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from frugal.observability.metrics import Metrics
from frugal.observability.record import RequestRecord
from frugal.outcome import Outcome


def test_the_exposition_has_no_created_series_and_other_registries_keep_theirs() -> None:
    metrics = Metrics()
    metrics.request(
        RequestRecord(
            request_id="r",
            tenant="t",
            endpoint="/chat/completions",
            model="m",
            outcome=Outcome.MISS,
            status=200,
            latency_s=0.1,
        )
    )
    ours = metrics.exposition().decode()
    assert 'frugal_requests_total{endpoint="/chat/completions",model="m",outcome="miss"' in ours
    assert "_created" not in ours

    theirs = CollectorRegistry()
    Counter("app_events", "An application's own counter.", registry=theirs).inc()
    assert "app_events_created" in generate_latest(theirs).decode()


def test_a_replica_labels_every_series_and_names_itself() -> None:
    metrics = Metrics(replica="host:1")
    metrics.request(
        RequestRecord(
            request_id="r",
            tenant="t",
            endpoint="/chat/completions",
            model="m",
            outcome=Outcome.MISS,
            status=200,
            latency_s=0.1,
        )
    )
    text = metrics.exposition().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert len(samples) > 10 and {s.labels.get("replica") for s in samples} == {"host:1"}
    assert 'frugal_replica_info{replica="host:1"} 1.0' in text
    assert "replica" not in Metrics().exposition().decode()  # one process alone: no label
