"""Labels from operation: pairs of prompts a cache hit joined, labelled by what happened.

A hit reported wrong (`POST /admin/cache/feedback`, `POST /v1/feedback`) is a negative; shadow
mode's comparisons give positives (identical answers) and negatives (diverged ones). `keeper`
keeps them beside the cache (`store`) in the public pairs format (`record`), so that
``frugal cache labels export`` feeds ``frugal model tune --pairs``; `recent` remembers the
hits a report can name.
"""

from frugal.labels.keeper import Labels
from frugal.labels.recent import RecentHits, ServedHit
from frugal.labels.record import LabelledPair
from frugal.labels.store import FileLabels, LabelStore, RedisLabels

__all__ = [
    "FileLabels",
    "LabelStore",
    "LabelledPair",
    "Labels",
    "RecentHits",
    "RedisLabels",
    "ServedHit",
]
