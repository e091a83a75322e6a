"""A call the simulator answers with an error, in OpenAI's shape."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from frugal.errors import error_body


class Rejected(Exception):
    """A call answered with an error; ``kind`` names its counter in the stats."""

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind, self.status, self.retry_after_s = kind, status, retry_after_s
        self.body = error_body(message, type=type, param=param, code=code)

    def response(self) -> JSONResponse:
        headers = None if self.retry_after_s is None else {"retry-after": str(self.retry_after_s)}
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def invalid(message: str, param: str | None, *, code: str | None = None) -> Rejected:
    """A 400 for a malformed body, naming the bad field in ``param``."""
    return Rejected("bad_request", 400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> Rejected:
    """A 404 for an id or a name the simulator does not hold."""
    return Rejected("not_found", 404, message, param=param, code=code)


def content_rejected(needle: str, param: str | None) -> Rejected:
    """The 400 for a call (or a batch line) that contains ``reject_containing``."""
    message = f"The request contains the rejected text {needle!r}."
    return Rejected("bad_request", 400, message, param=param, code="content_rejected")
