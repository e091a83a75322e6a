"""Every ``/v1/`` route frugal does not serve itself is relayed to the provider, as it is.

`relay` is the one way to do it, for the router's fallback (`install_relay`) and for any
route that hands a request on (an id the gateway did not mint, say). What it does, in order:

1. the client-key check of every route (`tenant_of`: 401 without a valid key, when keys are
   required); the client's key then goes no further;
2. a path that would leave the provider's API base is refused (400); a body declared larger
   than ``FRUGAL_MAX_UPLOAD_BYTES`` is refused (413) before anything is sent;
3. the request goes on with the upstream key (`frugal.upstream.Relay`: which headers cross,
   and the retries of bodiless idempotent requests); its body streams to the provider as it
   arrives, counted: past ``FRUGAL_MAX_UPLOAD_BYTES`` it is cut off and the client gets a 413,
   a pause longer than ``FRUGAL_CLIENT_BODY_TIMEOUT_S`` a 408;
4. the provider's answer streams back as it arrives, its status and headers kept (any 4xx or
   5xx too: a route the provider does not know gets its own 404), with
   ``x-frugal-cache: bypass``; no answer at all is frugal's 502 or 504, in OpenAI's shape.

Each request is reported once it has ended (`record_relayed`), labelled by `route_label`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from frugal.api.errors import status_of
from frugal.api.observe import record_relayed, route_label
from frugal.api.routes import CACHE_HEADER, tenant_of
from frugal.api.state import GatewayState, gateway
from frugal.errors import (
    ClientDisconnectedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UpstreamError,
)
from frugal.outcome import Outcome
from frugal.tenants import OPEN_TENANT
from frugal.upstream import Relay, RelayedResponse, has_body

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"


def install_relay(app: FastAPI) -> None:
    """Relay every ``/v1/`` request that no route of ``app`` matches.

    The relay is the router's fallback (Starlette's ``Router.default``), not a catch-all
    route, so the routing is as it was for every path a route serves: a path the gateway
    serves with other methods stays the gateway's 405 with ``Allow`` (that path is in the
    OpenAPI document and answers as it says), and a route added later needs no ordering.
    A path outside ``/v1/`` that no route matches stays the gateway's 404.
    """
    not_found = app.router.default

    async def unmatched(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PREFIX + "/"):
            await not_found(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await relay(request, gateway(request))
        await response(scope, receive, send)

    app.router.default = unmatched


def relay_of(request: Request) -> Relay:
    """The app's `Relay`, built in its lifespan."""
    relay: Relay = request.app.state.relay
    return relay


def wire_path(request: Request) -> str:
    """The request's path below ``/v1``, percent-encoded as it came (``/files/file-abc``)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw.decode("latin-1").removeprefix(API_PREFIX)


async def relay(request: Request, state: GatewayState, *, path: str | None = None) -> Response:
    """Relay ``request`` to the provider's ``path`` (below its API base, percent-encoded;
    default: the request's own path below ``/v1``) with the request's method, query string,
    headers and body, and stream the answer back (see the module's docstring).

    Checks the client's key itself, so a route may hand a request on before or after its own
    check; the body must be unread (it streams from the client to the provider). Raises (for
    the error handlers) `AuthenticationError`, `InvalidRequestError`, `PayloadTooLargeError`,
    `RequestTimeoutError`, `ClientDisconnectedError` and `UpstreamError`; every other outcome
    is the provider's answer. In a route::

        return await relay(request, gateway(request), path=f"/responses/{response_id}")
    """
    started = time.perf_counter()
    path = wire_path(request) if path is None else path
    request_id = str(request.scope["state"]["request_id"])
    report = _Report(state, request, route=route_label(path), started=started)
    try:
        tenant_of(request, state)
        limit = state.settings.max_upload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(f"Request body is larger than {limit} bytes.")
        body = (
            _counted(request, max_bytes=limit, idle_s=state.settings.client_body_timeout_s)
            if has_body(request.headers.items())
            else None
        )
        relayed = await relay_of(request).send(
            request.method,
            path,
            query=request.scope.get("query_string", b""),
            headers=request.headers.items(),
            body=body,
            request_id=request_id,
        )
    except Exception as exc:
        report.done(status=status_of(exc), failed=True)
        raise
    return _RelayedStream(relayed, report)


async def _counted(request: Request, *, max_bytes: int, idle_s: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; `PayloadTooLargeError` past ``max_bytes``,
    `RequestTimeoutError` after ``idle_s`` without a byte, `ClientDisconnectedError` when the
    client leaves. Nothing is kept: each chunk goes on as it came."""
    size = 0
    chunks = request.stream()
    while True:
        try:
            async with asyncio.timeout(idle_s):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeoutError(
                f"The request body paused for more than {idle_s} s."
            ) from None
        except ClientDisconnect:
            raise ClientDisconnectedError("The client left while sending its body.") from None
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"Request body is larger than {max_bytes} bytes.")
        if chunk:
            yield chunk


class _Report:
    """Reports a relayed request once, when it has ended."""

    def __init__(self, state: GatewayState, request: Request, *, route: str, started: float):
        self._state = state
        self._request = request
        self.route = route
        self._started = started
        self.upstream_calls = 0

    def done(self, *, status: int, failed: bool) -> None:
        scope_state = self._request.scope["state"]
        record_relayed(
            self._state,
            request_id=str(scope_state["request_id"]),
            tenant=str(scope_state.get("tenant", OPEN_TENANT)),
            route=self.route,
            status=status,
            started=self._started,
            upstream_calls=self.upstream_calls,
            failed=failed,
        )


class _RelayedStream(StreamingResponse):
    """The provider's answer, streamed to the client as it arrives.

    The provider's response is closed however the stream ends (whole, the client gone, the
    provider failing on the way), and the request reported then. A failure after the status
    line has been sent cannot become an error response: the connection is closed short of the
    body's end (its ``content-length`` or last chunk never comes), so that the client sees a
    broken transfer, never a whole-looking one.
    """

    def __init__(self, relayed: RelayedResponse, report: _Report) -> None:
        super().__init__(self._body(), status_code=relayed.status_code)
        self.raw_headers = [
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in relayed.headers),
            (CACHE_HEADER.encode(), Outcome.BYPASS.header.encode()),
        ]
        self._relayed = relayed
        self._report = report
        report.upstream_calls = relayed.tries
        self._finished = False
        self._broke: UpstreamError | None = None

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._relayed:
                yield chunk
        except UpstreamError as exc:
            self._broke = exc  # told in __call__, which ends the response short
            return
        self._finished = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, self._unless_broken(send))
        except OSError:  # the client's connection went while a chunk was being sent
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await self._relayed.aclose()
            if self._finished:
                self._report.done(status=self.status_code, failed=False)
            elif self._broke is not None:
                logger.warning(
                    "relayed answer %s broke off: %s",
                    scope["state"]["request_id"],
                    self._broke.message,
                )
                self._report.done(status=status_of(self._broke), failed=True)
            else:
                gone = ClientDisconnectedError("the client left mid-answer")
                self._report.done(status=status_of(gone), failed=True)

    def _unless_broken(self, send: Send) -> Send:
        """``send``, except the body's last (empty) message once the provider has broken off:
        withheld, it leaves the server to close the connection short of the body's end."""

        async def guarded(message: Message) -> None:
            if self._broke is not None and message["type"] == "http.response.body":
                return
            await send(message)

        return guarded
