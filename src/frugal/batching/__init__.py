"""Sending cache misses upstream together: the generic batcher, the coalescer, and the
apportioning of a list call's usage.

The public face is below; the modules behind it are private rooms.
"""

from frugal.batching.batcher import Batcher, BatchStats
from frugal.batching.coalescer import Coalescer, Flight, Joined
from frugal.batching.upstream import BatchingUpstream, BatchSettings, UpstreamWatcher
from frugal.batching.usage import apportion_usage

__all__ = [
    "BatchSettings",
    "BatchStats",
    "Batcher",
    "BatchingUpstream",
    "Coalescer",
    "Flight",
    "Joined",
    "UpstreamWatcher",
    "apportion_usage",
]
