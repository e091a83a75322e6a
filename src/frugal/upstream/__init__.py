"""Reaching the provider: the OpenAI-compatible client on an HTTP pool of its own, and the
relay that hands on, as they are, the requests frugal does not serve itself.

The public face is below; the modules behind it are private rooms.
"""

from frugal.upstream.batch_api import ProviderBatches
from frugal.upstream.client import OpenAIUpstream, RetryPolicy, UpstreamStream
from frugal.upstream.pool import LinearConnectionPool, provider_transport
from frugal.upstream.relay import Relay, RelayedResponse, has_body

__all__ = [
    "LinearConnectionPool",
    "OpenAIUpstream",
    "ProviderBatches",
    "Relay",
    "RelayedResponse",
    "RetryPolicy",
    "UpstreamStream",
    "has_body",
    "provider_transport",
]
