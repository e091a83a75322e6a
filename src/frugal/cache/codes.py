"""Values that many rows share, as small integer codes, counted so that unused ones go.

    scopes = Codes()
    code = scopes.take("tenant-a:chat")        # the code, one more row using it
    scopes.value(code)                         # "tenant-a:chat"
    scopes.release(code)                       # one row fewer; at none, the value goes

The embedded store's entries name a partition, a scope, an embedding model and labels that
thousands of other entries repeat; a row holds an int32 code for each instead of a reference,
and a value no row uses any more is forgotten (labels can vary per tenant, and a store running
for months must not keep every one it ever saw). A code freed is given to the next new value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Codes:
    """Strings by code and codes by string, with the number of rows using each code."""

    def __init__(self) -> None:
        self._values: list[str | None] = []  # by code; None: a free code
        self._code_of: dict[str, int] = {}
        self._uses = np.zeros(16, dtype=np.int64)  # by code
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._code_of)

    def find(self, value: str) -> int | None:
        """The code of ``value`` if some row uses it, without taking it."""
        return self._code_of.get(value)

    def value(self, code: int) -> str:
        value = self._values[code]
        assert value is not None, f"code {code} is not in use"
        return value

    def take(self, value: str) -> int:
        """The code of ``value``, counting one more use."""
        code = self._code_of.get(value)
        if code is None:
            code = self._new(value)
        self._uses[code] += 1
        return code

    def take_many(self, values: Sequence[str]) -> np.ndarray:
        """The codes of ``values`` (int32), counting a use for each."""
        for value in set(values).difference(self._code_of):
            self._new(value)
        codes = np.fromiter(map(self._code_of.__getitem__, values), np.int32, count=len(values))
        self._uses[: len(self._values)] += np.bincount(codes, minlength=len(self._values))
        return codes

    def release(self, code: int) -> None:
        """One use fewer of ``code``; the value is forgotten when none is left."""
        self._uses[code] -= 1
        if self._uses[code] == 0:
            value = self._values[code]
            assert value is not None
            del self._code_of[value]
            self._values[code] = None
            self._free.append(code)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def _new(self, value: str) -> int:
        if self._free:
            code = self._free.pop()
            self._values[code] = value
        else:
            code = len(self._values)
            self._values.append(value)
            if code >= len(self._uses):
                self._uses = np.concatenate([self._uses, np.zeros_like(self._uses)])
        self._code_of[value] = code
        return code
