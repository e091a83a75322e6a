"""The provider connection pool: httpcore's, with its bookkeeping made linear.

On every request start and end, httpcore 1.0's pool re-examines its connections; its keep-alive
check builds a list of all connections for each idle one, so a pass costs O(N²) in the pool's
size (encode/httpcore#1035). With 64 provider connections that is thousands of calls per pass,
and under a backlog half of the gateway's event loop went to it: throughput fell as the queue
grew, and the gateway could not recover from a burst. The same decisions, made in one pass.

Whether an idle connection has expired is a socket poll (the server may have closed it), which
httpcore asks of every idle connection on every pass. Here it is asked of the connection about
to be reused, and of all of them at most every `SWEEP_S` for the keep-alive expiry.
"""

from __future__ import annotations

import time

import httpcore
import httpx

SWEEP_S = 1.0


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    """`httpcore.AsyncConnectionPool` whose assignment pass is linear in its connections."""

    _swept_at = 0.0

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now - self._swept_at >= SWEEP_S
        if sweep:
            self._swept_at = now
        for connection in self._connections:
            if connection.is_closed():
                continue  # already gone: just forget it
            if sweep and connection.has_expired():
                closing.append(connection)
            else:
                kept.append(connection)
        # Beyond the keep-alive bound, idle connections close, oldest first.
        surplus = len(kept) - self._max_keepalive_connections
        if surplus > 0:
            for connection in [c for c in kept if c.is_idle()][:surplus]:
                kept.remove(connection)
                closing.append(connection)
        self._connections = kept

        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            reusable = None
            for candidate in self._connections:
                if not (candidate.can_handle_request(origin) and candidate.is_available()):
                    continue
                if candidate.is_idle() and candidate.has_expired():  # checked before reuse
                    self._connections.remove(candidate)
                    closing.append(candidate)
                    break  # a new connection takes its place below
                reusable = candidate
                break
            if reusable is not None:
                pool_request.assign_to_connection(reusable)
                continue
            if len(self._connections) >= self._max_connections:
                idle = next((c for c in self._connections if c.is_idle()), None)
                if idle is None:
                    continue  # the request waits for a connection to free up
                self._connections.remove(idle)  # make room for the new origin
                closing.append(idle)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


def provider_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport, TLS and all, on a `LinearConnectionPool` with the same settings."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool.__class__ = LinearConnectionPool  # same state, linear bookkeeping
    return transport
