"""The semantic cache: embedder, scopes, the cache itself, and its stores.

The public face is below; the modules behind it are private rooms. The API and the pipeline
use `SemanticCache` (lookups, saves, and the operator's face: `stats`, `entries`,
`invalidate`, `flush`, `reembed`); the app factory resolves the embedding model
(`resolve_model`) and builds the stores and the embedder.
"""

from frugal.cache.breaker import BreakerState, CircuitBreaker, GuardedStore
from frugal.cache.embedded import EmbeddedStore
from frugal.cache.embedder import (
    AsyncEmbedder,
    Embedder,
    EmbedderStats,
    load_embedder,
    set_process_threads,
)
from frugal.cache.loading import LoadingStore
from frugal.cache.models import ModelSpec, resolve_model
from frugal.cache.redis_connection import RedisClients, RedisTarget, tls_refusal
from frugal.cache.redis_store import RedisStore
from frugal.cache.scope import CacheKey, cache_key, item_keys
from frugal.cache.semantic import (
    BreakerStats,
    CacheCounters,
    CacheStats,
    Hit,
    Lookup,
    ReembedProgress,
    SemanticCache,
    storable,
)
from frugal.cache.shadow import ShadowLog, ShadowPair
from frugal.cache.sqlite_file import SqliteFile
from frugal.cache.store import Entry, Match, StoreStats, VectorStore

__all__ = [
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
]
