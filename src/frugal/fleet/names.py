"""Where the fleet keeps its keys in Redis, beside the cache's, under the same prefix.

    {prefix}fleet:lease:{digest}     the lease of one exact question in flight (or its tombstone)
    {prefix}fleet:done:{digest}      the channel its leader publishes on when it is settled
    {prefix}fleet:report:{replica}   a replica's latest report (it expires)
    {prefix}fleet:replicas           a sorted set of the replicas that reported, by time

The digest covers everything that makes two requests the same question for the exact tier:
the partition, the scope, the normalised prompt's hash and the embedding model in use.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["FleetNames"]

_GLOB = re.compile(r"([*?\[\]\\])")


class FleetNames:
    """The key names of a deployment (``prefix``, as ``FRUGAL_REDIS_PREFIX``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.replicas = f"{prefix}fleet:replicas"
        # A prefix may hold glob characters: escaped, the pattern matches only this deployment.
        self.done_pattern = _GLOB.sub(r"\\\1", prefix) + "fleet:done:*"

    @staticmethod
    def digest(*, partition: str, scope: str, prompt_hash: str, model: str) -> str:
        joined = "\0".join((partition, scope, prompt_hash, model))
        return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()

    def lease(self, digest: str) -> str:
        return f"{self.prefix}fleet:lease:{digest}"

    def done(self, digest: str) -> str:
        return f"{self.prefix}fleet:done:{digest}"

    def report(self, replica: str) -> str:
        return f"{self.prefix}fleet:report:{replica}"
