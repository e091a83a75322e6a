"""What one request of the bench came back with."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The simulator's answers name the prompt they were written for.
ANSWER = re.compile(r"^\[[^\]]*\] Answer to: (.*)$", re.DOTALL)


@dataclass
class Outcome:
    """One request as the client saw it."""

    latency_s: float
    cache: str  # x-frugal-cache, or "direct"
    answered_for: str | None = None  # the prompt the answer was written for
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
