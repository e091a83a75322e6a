"""Servers run on this machine as child processes, on free loopback ports.

`processes`: `frugal sim` and `frugal serve` children (the demo, ``frugal bench``, benchmarks and
tests). `redis_server`: a local Redis 8 with the query engine (``make redis``, tests, benchmarks).
`redis_sentinel`: a primary, a replica and three Sentinels (tests, the local fleet).
None is imported here, so that ``python -m frugal.local.redis_server`` runs its module once.
"""

__all__ = ["processes", "redis_sentinel", "redis_server"]
