"""The OpenAI endpoints frugal serves."""

from __future__ import annotations

import enum


class Endpoint(enum.StrEnum):
    """An endpoint, as its path relative to the API base (``/v1``)."""

    CHAT = "/chat/completions"
    COMPLETIONS = "/completions"
    EMBEDDINGS = "/embeddings"
