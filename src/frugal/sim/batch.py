"""One batch of the Batch API: its state and the ``Batch`` object OpenAI gives for it.

A batch goes ``validating`` → ``in_progress`` → ``finalizing`` → ``completed``, or from
``validating`` to ``failed`` (its file is not valid: ``errors``), or ends ``expired`` (its
deadline passed first) or, through ``cancelling``, ``cancelled``; each step sets its
``<status>_at`` time (Unix seconds). ``request_counts`` has ``total`` once validated, then
``completed`` (lines answered 200) and ``failed`` (lines in the error file: refused, expired or
cancelled). ``usage`` sums the usage of the lines answered.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("completed", "failed", "expired", "cancelled")


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(16)}"


@dataclass(kw_only=True)
class Batch:
    """A batch's state; ``cancel_requested`` is set by a cancellation, for its runner to see."""

    id: str = field(default_factory=new_batch_id)
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    expires_at: int
    status: str = "validating"
    model: str | None = None
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, int] = field(default_factory=dict)  # status -> when it was reached
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def move(self, status: str) -> None:
        """Reach ``status`` now."""
        self.status = status
        self.times[status] = int(time.time())

    def as_object(self) -> dict[str, Any]:
        """The OpenAI ``Batch`` object."""
        at = self.times.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": at("in_progress"),
            "expires_at": self.expires_at,
            "finalizing_at": at("finalizing"),
            "completed_at": at("completed"),
            "failed_at": at("failed"),
            "expired_at": at("expired"),
            "cancelling_at": at("cancelling"),
            "cancelled_at": at("cancelled"),
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }
