"""The dashboard sign-in cannot be hammered: ten failed sign-ins a minute per client address, then
429 with Retry-After, for every attempt from that address (the right key included) until the
oldest failure leaves the window. Other addresses sign in as ever; the tried keys are never
logged. The clock is injected: nothing here sleeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from frugal.api.app import create_app
from frugal.api.signin_limit import SigninLimiter
from frugal.config import load_settings
from tests.conftest import ADMIN_KEY, Stack, StackFactory

ATTACKER = "198.51.100.7"
ADMIN = "203.0.113.20"
GUESSES = [f"guess-{n}-e4b1c9" for n in range(12)]


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


# The limiter on its own.


def test_the_eleventh_attempt_in_a_minute_waits_for_the_oldest_failure() -> None:
    clock = Clock()
    limiter = SigninLimiter(max_failures=10, window_s=60, clock=clock)
    for n in range(10):
        assert limiter.retry_after_s(ATTACKER) is None
        assert limiter.record_failure(ATTACKER) == n + 1
        clock.now += 1
    # Failures at 0..9 s; now 10 s: the one at 0 s leaves the window at 60 s.
    assert limiter.retry_after_s(ATTACKER) == pytest.approx(50)
    clock.now = 5000.0 + 59.5
    assert limiter.retry_after_s(ATTACKER) == pytest.approx(0.5)
    clock.now = 5000.0 + 60
    assert limiter.retry_after_s(ATTACKER) is None  # one more may try...
    assert limiter.record_failure(ATTACKER) == 10
    assert limiter.retry_after_s(ATTACKER) == pytest.approx(1)  # ...and the next waits again
    clock.now += 3600
    assert limiter.retry_after_s(ATTACKER) is None
    assert limiter.failures(ATTACKER) == 0


def test_addresses_are_limited_apart() -> None:
    limiter = SigninLimiter(max_failures=2, window_s=60, clock=Clock())
    limiter.record_failure(ATTACKER)
    limiter.record_failure(ATTACKER)
    assert limiter.retry_after_s(ATTACKER) is not None
    assert limiter.retry_after_s(ADMIN) is None
    assert limiter.failures(ADMIN) == 0


def test_it_remembers_a_bounded_number_of_addresses() -> None:
    clock = Clock()
    limiter = SigninLimiter(max_failures=2, window_s=60, max_addresses=3, clock=clock)
    for n in range(1000):
        limiter.record_failure(f"10.0.{n // 256}.{n % 256}")
        clock.now += 0.01
    assert len(limiter) == 3
    # The addresses that failed last are the ones kept.
    assert [limiter.failures(f"10.0.3.{n}") for n in (229, 230, 231)] == [1, 1, 1]
    assert limiter.failures("10.0.0.0") == 0


def test_an_address_that_fails_again_is_remembered_longest() -> None:
    limiter = SigninLimiter(max_failures=5, window_s=60, max_addresses=2, clock=Clock())
    limiter.record_failure("a")
    limiter.record_failure("b")
    limiter.record_failure("a")
    limiter.record_failure("c")  # room is made by forgetting b, the least recent
    assert (limiter.failures("a"), limiter.failures("b"), limiter.failures("c")) == (2, 0, 1)


def test_forgotten_failures_free_their_room() -> None:
    clock = Clock()
    limiter = SigninLimiter(max_failures=2, window_s=60, clock=clock)
    limiter.record_failure(ATTACKER)
    clock.now += 60
    assert limiter.failures(ATTACKER) == 0
    assert len(limiter) == 0


@pytest.mark.parametrize(
    "bad", [{"max_failures": 0}, {"window_s": 0}, {"window_s": -1}, {"max_addresses": 0}]
)
def test_limits_must_be_positive(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SigninLimiter(**bad)


# The sign-in route, in process, with the clock in the test's hand.


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(clock: Clock) -> AsyncIterator[FastAPI]:
    settings = load_settings(
        upstream_base_url="http://provider.test/v1", admin_key=ADMIN_KEY, cache_mode="off"
    )
    app = create_app(settings, transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    async with app.router.lifespan_context(app):
        app.state.gateway.signin_limiter = SigninLimiter(clock=clock)
        yield app


def client(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50123))
    return httpx.AsyncClient(transport=transport, base_url="http://frugal.test")


async def sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post("/dashboard/login", data={"key": key})


def signed_in(response: httpx.Response) -> bool:
    return response.status_code == 303 and "frugal_dashboard" in response.cookies


async def hammer(app: FastAPI, clock: Clock) -> None:
    """Ten wrong keys from the attacker, one a second, each told it was wrong."""
    async with client(app, ATTACKER) as http:
        for guess in GUESSES[:10]:
            response = await sign_in(http, guess)
            assert response.status_code == 401
            assert "not the admin key" in response.text
            clock.now += 1


async def test_the_eleventh_attempt_gets_429_with_retry_after(app: FastAPI, clock: Clock) -> None:
    await hammer(app, clock)
    async with client(app, ATTACKER) as http:
        refused = await sign_in(http, GUESSES[10])
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "50"  # whole seconds until the first failure expires
    assert refused.headers["content-type"].startswith("text/html")
    assert "Too many wrong keys" in refused.text
    assert 'name="key"' in refused.text  # still the sign-in form
    clock.now += 0.4
    async with client(app, ATTACKER) as http:
        assert (await sign_in(http, GUESSES[11])).headers["retry-after"] == "50"  # rounded up


async def test_while_blocked_even_the_right_key_is_refused(app: FastAPI, clock: Clock) -> None:
    # Otherwise a blocked guesser would still learn when a guess was right.
    await hammer(app, clock)
    async with client(app, ATTACKER) as http:
        refused = await sign_in(http, ADMIN_KEY)
    assert refused.status_code == 429
    assert "frugal_dashboard" not in refused.cookies


async def test_another_address_still_signs_in(app: FastAPI, clock: Clock) -> None:
    await hammer(app, clock)
    async with client(app, ADMIN) as http:
        assert signed_in(await sign_in(http, ADMIN_KEY))
        assert (await sign_in(http, "a typo")).status_code == 401  # its own first failure


async def test_attempts_are_allowed_again_once_the_window_passes(
    app: FastAPI, clock: Clock
) -> None:
    await hammer(app, clock)
    async with client(app, ATTACKER) as http:
        assert (await sign_in(http, GUESSES[10])).status_code == 429
        clock.now += 50  # the first failure, 60 s ago, has left the window
        assert (await sign_in(http, GUESSES[10])).status_code == 401  # one more try...
        assert (await sign_in(http, GUESSES[11])).status_code == 429  # ...then wait again
        clock.now += 60
        assert signed_in(await sign_in(http, ADMIN_KEY))


async def test_a_burst_of_attempts_at_once_gets_no_more_than_ten_tries(app: FastAPI) -> None:
    # Bodies that take a moment to arrive: every attempt of the burst is in the route at once.
    async def slow_bodies(scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_later() -> Message:
            await asyncio.sleep(0.01)
            return await receive()

        await app(scope, receive_later, send)

    transport = httpx.ASGITransport(app=slow_bodies, client=(ATTACKER, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://frugal.test") as http:
        answers = await asyncio.gather(*(sign_in(http, guess) for guess in GUESSES * 3))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 10 + [429] * (len(answers) - 10)


async def test_refused_attempts_do_not_extend_the_block(app: FastAPI, clock: Clock) -> None:
    await hammer(app, clock)
    async with client(app, ATTACKER) as http:
        for _ in range(20):
            assert (await sign_in(http, GUESSES[10])).status_code == 429
        clock.now += 50
        assert signed_in(await sign_in(http, ADMIN_KEY))


def dashboard_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "frugal.api.dashboard"]


async def test_failed_and_refused_attempts_are_logged_without_the_key(
    app: FastAPI, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="frugal.api.dashboard")
    await hammer(app, clock)
    async with client(app, ATTACKER) as http:
        await sign_in(http, GUESSES[10])
        await sign_in(http, ADMIN_KEY)
    records = dashboard_records(caplog)
    lines = [record.getMessage() for record in records]
    assert len(lines) == 12  # ten failures, two refusals
    assert all(ATTACKER in line for line in lines)
    assert "10 failed" in lines[9] and "1 failed" in lines[0]
    assert all("refused" in line for line in lines[10:])
    for secret in [*GUESSES, ADMIN_KEY]:
        assert secret not in caplog.text
        assert all(secret not in str(record.args) for record in records)


async def test_a_successful_sign_in_is_not_logged_as_a_failure(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="frugal.api.dashboard")
    async with client(app, ADMIN) as http:
        assert signed_in(await sign_in(http, ADMIN_KEY))
    assert dashboard_records(caplog) == []


# The same over real sockets: the address is the connection's.


@pytest.fixture(scope="module")
def gateway(make_stack: StackFactory) -> Stack:
    return make_stack(env={"FRUGAL_CACHE_MODE": "off"})


def test_a_running_gateway_limits_sign_ins_by_address(gateway: Stack) -> None:
    with httpx.Client(base_url=gateway.gateway.url) as http:
        for guess in GUESSES[:10]:
            assert http.post("/dashboard/login", data={"key": guess}).status_code == 401
        refused = http.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # A proxy on this host forwarding another client: uvicorn trusts loopback's
        # X-Forwarded-For, so that client has an address, and a limit, of its own.
        forwarded = {"X-Forwarded-For": ADMIN}
        answer = http.post("/dashboard/login", data={"key": ADMIN_KEY}, headers=forwarded)
        assert answer.status_code == 303
    log = gateway.gateway.log()
    assert "127.0.0.1" in log and "refused" in log
    for secret in [*GUESSES[:10], ADMIN_KEY]:
        assert secret not in log
