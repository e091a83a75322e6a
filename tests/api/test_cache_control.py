"""The x-frugal-cache-control header: 0 is a value, nonsense is a 400."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.api.cache_control import PATTERN, parse_cache_control
from frugal.api.errors import status_of
from frugal.errors import InvalidRequestError
from frugal.pipeline import CacheControl


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("", CacheControl()),
        ("no-cache", CacheControl(no_cache=True)),
        ("no-store", CacheControl(no_store=True)),
        ("No-Cache, no-store", CacheControl(no_cache=True, no_store=True)),
        ("ttl=60", CacheControl(ttl_s=60.0)),
        ("ttl=0", CacheControl(ttl_s=0.0)),
        ("threshold=0.0", CacheControl(threshold=0.0)),
        ("threshold=0.95, ttl=1.5", CacheControl(threshold=0.95, ttl_s=1.5)),
    ],
)
def test_parse(header: str | None, expected: CacheControl) -> None:
    assert parse_cache_control(header) == expected


def test_zero_is_a_value_not_unset() -> None:
    control = parse_cache_control("ttl=0, threshold=0")
    assert control.ttl_s == 0.0 and control.ttl_s is not None
    assert control.threshold == 0.0 and control.threshold is not None


@pytest.mark.parametrize(
    "header",
    [
        "ttl=-1",
        "ttl=abc",
        "threshold=1.5",
        "threshold=-2",
        "threshold=nan",
        "ttl=inf",
        "max-age=5",
        "ttl",
        "no-cache, bogus",
        "ttl=1e3",
        "threshold=.5",
        "no-cache,",
        "\x0bno-cache",
    ],
)
def test_bad_directives_are_400(header: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_cache_control(header)
    assert status_of(caught.value) == 400
    assert caught.value.param == "x-frugal-cache-control"


PIECES = ["no-cache", "No-Store", "ttl=", "threshold=", "60", "0.5", "1.0", "-", ".", "=", "e3"]
NOISE = [",", " ", "\t", "\x0b", "\xa0", "x", "0", "1"]


@given(st.lists(st.sampled_from(PIECES + NOISE), max_size=8).map("".join))
def test_the_published_pattern_is_exactly_what_is_accepted(header: str) -> None:
    """The OpenAPI schema publishes `PATTERN`; the parser must agree with it on every header."""
    published = re.fullmatch(PATTERN, header) is not None
    try:
        parse_cache_control(header)
        accepted = True
    except InvalidRequestError:
        accepted = False
    assert accepted == published
