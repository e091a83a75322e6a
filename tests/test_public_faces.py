"""The public faces of cache/, batching/, upstream/ and library/: what they export is pinned
here, so a change to it is a decision made in this file, not an accident of an import."""

from __future__ import annotations

import importlib
import types

import pytest

PINNED = {
    "frugal.cache": [
        "AsyncEmbedder",
        "BreakerState",
        "BreakerStats",
        "CacheCounters",
        "CacheKey",
        "CacheStats",
        "CircuitBreaker",
        "EmbeddedStore",
        "Embedder",
        "EmbedderStats",
        "Entry",
        "GuardedStore",
        "Hit",
        "LoadingStore",
        "Lookup",
        "Match",
        "ModelSpec",
        "RedisClients",
        "RedisStore",
        "RedisTarget",
        "ReembedProgress",
        "SemanticCache",
        "ShadowLog",
        "ShadowPair",
        "SqliteFile",
        "StoreStats",
        "VectorStore",
        "cache_key",
        "item_keys",
        "load_embedder",
        "resolve_model",
        "set_process_threads",
        "storable",
        "tls_refusal",
    ],
    "frugal.batching": [
        "BatchSettings",
        "BatchStats",
        "Batcher",
        "BatchingUpstream",
        "Coalescer",
        "Flight",
        "Joined",
        "UpstreamWatcher",
        "apportion_usage",
    ],
    "frugal.fleet": [
        "AnswerReader",
        "DoneListener",
        "Fleet",
        "FleetCollector",
        "FleetLeases",
        "FleetNames",
        "FleetReporter",
        "LeaseCounts",
        "LeaseTurn",
        "cached_answer",
        "fleet_view",
        "open_fleet",
        "read_reports",
        "replica_id",
        "report_ttl_s",
    ],
    "frugal.library": ["LoopThread", "wrap"],
    "frugal.upstream": [
        "LinearConnectionPool",
        "OpenAIUpstream",
        "ProviderBatches",
        "Relay",
        "RelayedResponse",
        "RetryPolicy",
        "UpstreamStream",
        "has_body",
        "provider_transport",
    ],
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_the_public_face_is_the_pinned_one(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == PINNED[package]
    for name in module.__all__:
        assert getattr(module, name) is not None


@pytest.mark.parametrize("package", sorted(PINNED))
def test_everything_the_package_shows_is_exported(package: str) -> None:
    """A public name in the package's namespace that is not a submodule is in ``__all__``."""
    module = importlib.import_module(package)
    shown = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert shown == set(module.__all__)
