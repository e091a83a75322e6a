"""Reaching the provider: the OpenAI-compatible client on an HTTP pool of its own.

The public face is below; the modules behind it are private rooms.
"""

from frugal.upstream.client import OpenAIUpstream, RetryPolicy, UpstreamStream
from frugal.upstream.pool import LinearConnectionPool, provider_transport

__all__ = [
    "LinearConnectionPool",
    "OpenAIUpstream",
    "RetryPolicy",
    "UpstreamStream",
    "provider_transport",
]
