"""Sending cache misses upstream together: the generic batcher and the coalescer.

The public face is below; the modules behind it are private rooms.
"""

from frugal.batching.batcher import Batcher, BatchStats
from frugal.batching.coalescer import Coalescer, Flight, Joined
from frugal.batching.upstream import BatchingUpstream, BatchSettings, UpstreamWatcher

__all__ = [
    "BatchSettings",
    "BatchStats",
    "Batcher",
    "BatchingUpstream",
    "Coalescer",
    "Flight",
    "Joined",
    "UpstreamWatcher",
]
