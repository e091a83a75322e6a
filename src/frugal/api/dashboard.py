"""The live dashboard (``GET /dashboard``): one page served by the gateway, drawing with SVG,
fed by ``GET /dashboard/data`` (what `/admin/stats` shows, the Batch API's ``batches`` included)
every two seconds. With the Redis store a toggle shows the fleet instead (``?view=fleet``: the
replicas' figures summed, and each replica with its health).

With ``FRUGAL_ADMIN_KEY`` set, both need the admin: ``Authorization: Bearer <key>``, or the
cookie that signing in at the page sets (HttpOnly, SameSite=Strict; it holds an HMAC of the key,
never the key). Without an admin key the dashboard is open, as the gateway is.

Signing in is limited per client address (`SigninLimiter`: ten failures a minute): past that,
every attempt from the address, even with the right key, gets the sign-in page again as a 429
with ``Retry-After`` until the window lets one more through. Failed and refused attempts are
logged with the address and the count, never the key that was tried. The address is the
connection's, or the one a trusted proxy forwarded (uvicorn's ``FORWARDED_ALLOW_IPS``, loopback
by default).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import math
from functools import cache
from importlib import resources
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from frugal.api.admin import StatsView, all_stats, bearer_is_admin
from frugal.api.fleet_view import fleet_stats
from frugal.api.state import GatewayState, gateway
from frugal.errors import AuthenticationError

logger = logging.getLogger(__name__)

router = APIRouter()

COOKIE = "frugal_dashboard"
_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>frugal · sign in</title><link rel="icon" href="data:,">
<style>body{{font:15px system-ui,sans-serif;display:grid;
place-items:center;height:90vh;background:#f6f7fa;color:#1d2330}}form{{background:#fff;padding:24px;
border:1px solid #e3e6ed;border-radius:8px}}input{{font:inherit;padding:6px;width:260px}}
button{{font:inherit;padding:6px 14px;margin-left:6px}}p.error{{color:#a12a1f}}</style></head>
<body><form method="post" action="dashboard/login"><h1>frugal dashboard</h1>{message}
<label>Admin key <input type="password" name="key" autofocus autocomplete="current-password">
</label><button type="submit">Open</button></form></body></html>"""


def _token(state: GatewayState) -> str:
    key = state.settings.admin_key
    assert key is not None
    secret = key.get_secret_value().encode()
    return hmac.new(secret, b"frugal dashboard", hashlib.sha256).hexdigest()


def _allowed(request: Request, state: GatewayState) -> bool:
    if state.settings.admin_key is None:
        return True
    if bearer_is_admin(request, state):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), _token(state).encode())


@cache
def _page() -> str:
    return resources.files("frugal.api").joinpath("static/dashboard.html").read_text()


def _login_page(
    message: str = "", status: int = 401, headers: dict[str, str] | None = None
) -> HTMLResponse:
    shown = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(_LOGIN.format(message=shown), status_code=status, headers=headers)


@router.get("/dashboard", include_in_schema=False)
async def dashboard(request: Request) -> Response:
    if not _allowed(request, gateway(request)):
        return _login_page()
    return HTMLResponse(_page(), headers={"cache-control": "no-store"})


@router.post("/dashboard/login", include_in_schema=False)
async def login(request: Request) -> Response:
    state = gateway(request)
    if state.settings.admin_key is None:
        return RedirectResponse("../dashboard", status_code=303)
    body = await request.body()
    # From here to the answer nothing awaits: a burst of attempts cannot all pass the check
    # before the first of them is counted.
    limiter = state.signin_limiter
    address = request.client.host if request.client is not None else "unknown"
    wait_s = limiter.retry_after_s(address)
    if wait_s is not None:
        retry_after = max(1, math.ceil(wait_s))
        logger.warning(
            "dashboard sign-in from %s refused: %d failed in the last %g s; retry in %d s",
            address,
            limiter.failures(address),
            limiter.window_s,
            retry_after,
        )
        return _login_page(
            f"Too many wrong keys from your address: try again in {retry_after} s.",
            status=429,
            headers={"Retry-After": str(retry_after)},
        )
    given = parse_qs(body[:4096].decode("utf-8", "replace")).get("key", [""])[0]
    expected = state.settings.admin_key.get_secret_value()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        failed = limiter.record_failure(address)
        logger.warning(
            "dashboard sign-in from %s with a wrong key: %d failed in the last %g s",
            address,
            failed,
            limiter.window_s,
        )
        return _login_page("That is not the admin key.")
    response = RedirectResponse("../dashboard", status_code=303)
    response.set_cookie(COOKIE, _token(state), httponly=True, samesite="strict", path="/")
    return response


@router.get("/dashboard/data", include_in_schema=False)
async def data(request: Request, view: StatsView = "process") -> JSONResponse:
    """What `/admin/stats` answers for the same ``view``."""
    state = gateway(request)
    if not _allowed(request, state):
        raise AuthenticationError("A valid admin key is required.")
    found = await fleet_stats(state) if view == "fleet" else await all_stats(request, state)
    return JSONResponse(found, headers={"cache-control": "no-store"})
