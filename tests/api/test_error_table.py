"""The one table from frugal's exception tree to OpenAI-shaped HTTP errors."""

from __future__ import annotations

import inspect

import pytest

from frugal import errors
from frugal.api.errors import HTTP_ERRORS, error_json, status_of


def tree() -> list[type[errors.FrugalError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.FrugalError)
    ]


def test_every_class_of_the_tree_has_a_row_of_its_own() -> None:
    missing = [cls.__name__ for cls in tree() if cls not in HTTP_ERRORS]
    assert missing == []
    assert len(tree()) > 20  # the tree was found, not an empty module


def test_no_error_outside_the_tree_is_frugals() -> None:
    """Classes deriving from FrugalError live in `frugal.errors`, where the table sees them."""

    def subclasses(cls: type) -> list[type]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in subclasses(child))]

    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in subclasses(errors.FrugalError)
        if cls.__module__ != errors.__name__ and cls.__module__.startswith("frugal")
    ]
    assert strays == []


def test_domain_errors_carry_no_http_status() -> None:
    for cls in tree():
        assert not {"status_code", "error_type", "code"} & set(vars(cls)), cls.__name__


@pytest.mark.parametrize(
    ("upstream_status", "status", "kind"),
    [
        (400, 400, "invalid_request_error"),
        (404, 404, "invalid_request_error"),
        (429, 429, "rate_limit_error"),
        (500, 502, "upstream_error"),
        (503, 502, "upstream_error"),
    ],
)
def test_a_providers_status_maps_per_error(upstream_status: int, status: int, kind: str) -> None:
    exc = errors.UpstreamStatusError("no", upstream_status=upstream_status, upstream_body=None)
    assert status_of(exc) == status
    body = error_json(exc)
    assert body["error"]["type"] == kind and body["error"]["code"] == f"upstream_{upstream_status}"


def test_internal_failures_do_not_describe_themselves_to_clients() -> None:
    body = error_json(errors.CacheStoreError("redis://:hunter2@db:6379 refused"))
    assert "hunter2" not in str(body) and status_of(errors.CacheStoreError("x")) == 503
    assert status_of(RuntimeError("boom")) == 500
