"""frugal, an LLM gateway: a semantic cache and dynamic batching in front of any
OpenAI-compatible provider. See the README for the two commands that run it.

``frugal.wrap(client)`` puts the same cache in front of an OpenAI SDK client, in-process
(`frugal.library`). It is imported on first use: ``import frugal`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from frugal.library import wrap

__all__ = ["wrap"]


def __getattr__(name: str) -> Any:
    if name == "wrap":
        from frugal.library import wrap

        return wrap
    raise AttributeError(f"module 'frugal' has no attribute {name!r}")
