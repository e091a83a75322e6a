"""The embedded store's entries as columns: a row an entry, no Python object per entry.

    table = EntryTable()
    row = table.add(entry, vgen=7, used_seq=12, put_seq=3)   # the answer compressed, no vector
    table.find(entry.id), table.find_prompt(scope, prompt_hash)       # rows, or None
    table.entry(row, vector)            # the `Entry` again, answer decoded (a hit needs it)
    table.remove(row)                   # the row is given to a later entry

At a million entries, an object per entry (its floats, its ints, a dict entry or two and a heap
pair for the LRU and expiry) cost about 1,100 bytes. Here the numbers are numpy columns (8
bytes each), the partition, scope, embedding model and labels are int32 codes into counted
tables (`Codes`), and a row keeps as Python objects only what is its own: its id, prompt, prompt
hash and compressed answer. Ids and prompt hashes that are lowercase hex (those frugal makes:
uuid4 and sha256) are held as their bytes, half the size (`compact_hex`). The least recently
used and the expired rows are found from the columns (`OldestFirst`).

The vector is not here: it lives once, in the entry's scope index. ``vgen`` is the entry's
vector version: the store's generation when the entry got its vector (a `put` or a `reembed`);
an index file records each vector's version, so that a vector it holds is used again only for
the version of the entry the SQLite file holds (`frugal.cache.index_file`).

The answer is kept as zlib-compressed JSON (as the SQLite file stores it) and decoded only when
a lookup returns the entry.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np

from frugal.cache.codes import Codes
from frugal.cache.oldest_first import OldestFirst
from frugal.cache.store import EXACT_ONLY, Entry

# zlib level 6 (its default) compresses a chat answer about 2-3x for some 30 us a KiB; answers
# are compressed once, when stored, and decompressed on each hit (a few us).
_LEVEL = 6
UNUSED = -1  # ``used_seq`` of a row no entry holds
_FIRST_ROWS = 64


def pack_answer(response: dict[str, Any]) -> bytes:
    """The answer as the store holds and writes it: compact JSON, zlib-compressed."""
    return zlib.compress(json.dumps(response, separators=(",", ":")).encode(), _LEVEL)


def unpack_answer(answer: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(zlib.decompress(answer))
    return decoded


def compact_hex(text: str) -> str | bytes:
    """``text`` as the bytes it spells when it is lowercase hex, else as it is: one to one, so
    that equal texts and only they give equal keys."""
    if len(text) >= 16 and not len(text) % 2:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return text
        if raw.hex() == text:  # fromhex also takes upper case and spaces
            return raw
    return text


def compact_hex_many(texts: Sequence[str]) -> list[str | bytes]:
    """`compact_hex` of each of ``texts``; in one call when all are lowercase hex of one
    length (the ids and hashes of a restart: a million at a time)."""
    if texts:
        size = len(texts[0])
        joined = "".join(texts)
        if size >= 16 and not size % 2 and set(map(len, texts)) == {size}:
            try:
                raw = bytes.fromhex(joined)
            except ValueError:
                raw = b""
            if raw.hex() == joined:
                half = size // 2
                return [raw[i : i + half] for i in range(0, len(raw), half)]
    return list(map(compact_hex, texts))


def as_text(key: str | bytes) -> str:
    return key.hex() if isinstance(key, bytes) else key


def labels_text(labels: dict[str, str]) -> str:
    """Labels as the table codes them and the SQLite file stores them."""
    return json.dumps(labels, sort_keys=True)


@dataclass
class Rows:
    """Many entries, column by column: what a restart reads from the SQLite file."""

    ids: Sequence[str]
    partitions: Sequence[str]
    scopes: Sequence[str]
    prompts: Sequence[str]
    prompt_hashes: Sequence[str]
    answers: Sequence[bytes]
    labels: Sequence[str]  # JSON (`labels_text`)
    models: Sequence[str]
    created_at: np.ndarray
    expires_at: np.ndarray
    last_used_at: np.ndarray  # NaN for never
    hits: np.ndarray
    used_seq: np.ndarray
    vgen: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, keep: np.ndarray) -> Rows:
        """The rows where the boolean ``keep`` is true."""
        lists = [list(compress(column, keep)) for column in self._lists()]
        arrays = [column[keep] for column in self._arrays()]
        return Rows(*lists, *arrays)  # type: ignore[arg-type]

    def _lists(self) -> tuple[Sequence[Any], ...]:
        return (
            self.ids, self.partitions, self.scopes, self.prompts, self.prompt_hashes,
            self.answers, self.labels, self.models,
        )  # fmt: skip

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.created_at, self.expires_at, self.last_used_at, self.hits, self.used_seq,
            self.vgen,
        )  # fmt: skip


class EntryTable:
    """Every entry of one store; used from one thread at a time."""

    def __init__(self) -> None:
        self.partitions = Codes()
        self.scopes = Codes()
        self.models = Codes()
        self.labels = Codes()  # JSON texts
        self.by_use = OldestFirst(dead=UNUSED)
        self.by_expiry = OldestFirst(dead=math.inf)
        self._row_of: dict[str | bytes, int] = {}
        # scope code -> prompt hash -> row: nested, so no (scope, hash) tuple is held per entry.
        self._by_prompt: dict[int, dict[str | bytes, int]] = {}
        self._free: list[int] = []
        self._rows = 0  # rows ever used (the columns' meaningful length)
        self.ids: list[str | bytes | None] = []
        self.prompts: list[str | None] = []
        self.prompt_hashes: list[str | bytes | None] = []
        self.answers: list[bytes | None] = []
        self._allocate(_FIRST_ROWS)

    def __len__(self) -> int:
        return len(self._row_of)

    # ---- finding rows ---------------------------------------------------------------------

    def find(self, entry_id: str) -> int | None:
        return self._row_of.get(compact_hex(entry_id))

    def find_many(self, entry_ids: Sequence[str]) -> np.ndarray:
        """The rows of ``entry_ids`` (int64), -1 for an id not held."""
        found = map(self._row_of.get, compact_hex_many(entry_ids))
        return np.fromiter(
            (UNUSED if row is None else row for row in found), np.int64, count=len(entry_ids)
        )

    def find_prompt(self, scope: str, prompt_hash: str) -> int | None:
        """The row of the entry stored last for ``prompt_hash`` in ``scope``."""
        code = self.scopes.find(scope)
        in_scope = None if code is None else self._by_prompt.get(code)
        return None if in_scope is None else in_scope.get(compact_hex(prompt_hash))

    def live_rows(self) -> np.ndarray:
        """Every row an entry holds, in row order."""
        return np.flatnonzero(self.used_seq[: self._rows] != UNUSED)

    def id_of(self, row: int) -> str:
        key = self.ids[row]
        assert key is not None, f"row {row} holds no entry"
        return as_text(key)

    def holds(self, row: int, *, scope: str, model: str) -> bool:
        """Whether ``row`` holds an entry of ``scope`` and ``model``."""
        return bool(
            self.used_seq[row] != UNUSED
            and self.scopes.find(scope) == self.scope[row]
            and self.models.find(model) == self.model[row]
        )

    def model_and_scope(self, row: int) -> tuple[str, str]:
        return self.models.value(self.model[row]), self.scopes.value(self.scope[row])

    # ---- one entry ------------------------------------------------------------------------

    def add(self, entry: Entry, *, vgen: int, used_seq: int, put_seq: int) -> int:
        """Hold ``entry`` (its id and prompt not held: the caller removed those); its row."""
        # What can raise (an answer or labels that are not JSON) first: nothing taken yet.
        answer, labels = pack_answer(entry.response), labels_text(entry.labels)
        row = self._free.pop() if self._free else self._next_row()
        key, prompt_key = compact_hex(entry.id), compact_hex(entry.prompt_hash)
        self.ids[row], self.prompts[row] = key, entry.prompt
        self.prompt_hashes[row], self.answers[row] = prompt_key, answer
        self.partition[row] = self.partitions.take(entry.partition)
        self.scope[row] = scope = self.scopes.take(entry.scope)
        self.model[row] = self.models.take(entry.model)
        self.label[row] = self.labels.take(labels)
        self.created_at[row], self.expires_at[row] = entry.created_at, entry.expires_at
        last = entry.last_used_at
        self.last_used_at[row] = math.nan if last is None else last
        self.hits[row], self.vgen[row] = entry.hits, vgen
        self.used_seq[row], self.put_seq[row] = used_seq, put_seq
        self.own_bytes[row] = _own_bytes(answer, entry.prompt, entry.id)
        self._row_of[key] = row
        self._by_prompt.setdefault(scope, {})[prompt_key] = row
        self.by_expiry.noted(row, entry.expires_at)
        self.by_use.noted(row, used_seq)
        return row

    def remove(self, row: int) -> None:
        key, prompt_key = self.ids[row], self.prompt_hashes[row]
        assert key is not None and prompt_key is not None, f"row {row} holds no entry"
        del self._row_of[key]
        scope = int(self.scope[row])
        in_scope = self._by_prompt.get(scope)  # None: a twin read from the file took the key
        if in_scope is not None and in_scope.get(prompt_key) == row:
            del in_scope[prompt_key]
            if not in_scope:
                del self._by_prompt[scope]
        for codes, column in self._coded():
            codes.release(int(column[row]))
        self.ids[row] = self.prompts[row] = self.prompt_hashes[row] = self.answers[row] = None
        self.used_seq[row], self.expires_at[row] = UNUSED, math.inf
        self._free.append(row)

    def entry(self, row: int, vector: np.ndarray | None) -> Entry:
        """The entry of ``row``, with ``vector`` (None for an exact-only entry), answer decoded."""
        answer, prompt, prompt_key = self.answers[row], self.prompts[row], self.prompt_hashes[row]
        assert answer is not None and prompt is not None and prompt_key is not None
        last = float(self.last_used_at[row])
        return Entry(
            id=self.id_of(row), partition=self.partitions.value(self.partition[row]),
            scope=self.scopes.value(self.scope[row]), prompt=prompt,
            prompt_hash=as_text(prompt_key), response=unpack_answer(answer), vector=vector,
            created_at=float(self.created_at[row]), expires_at=float(self.expires_at[row]),
            labels=json.loads(self.labels.value(self.label[row])), hits=int(self.hits[row]),
            last_used_at=None if math.isnan(last) else last,
            model=self.models.value(self.model[row]),
        )  # fmt: skip

    def vector_less(self, row: int) -> bool:
        """Whether ``row`` holds an exact-only entry: no vector, in no index."""
        return self.models.value(self.model[row]) == EXACT_ONLY

    def size(self, row: int, vector_bytes: int) -> int:
        """What the entry counts toward the store's byte bound: its compressed answer, its
        prompt and id (UTF-8) and ``vector_bytes`` (its vector as the index stores it; 0 for an
        exact-only entry). The index's links and the bookkeeping are not counted."""
        return int(self.own_bytes[row]) + vector_bytes

    def set_model(self, row: int, model: str, *, vgen: int) -> None:
        """The entry of ``row`` has a vector of ``model`` now, at version ``vgen``."""
        self.models.release(int(self.model[row]))
        self.model[row], self.vgen[row] = self.models.take(model), vgen

    # ---- many entries ---------------------------------------------------------------------

    def extend(self, rows: Rows) -> None:
        """Hold every entry of ``rows`` (a restart's: ids not held yet), in new rows."""
        count = len(rows)
        if not count:
            return
        start = self._rows
        if start + count > len(self.used_seq):
            self._allocate(max(start + count, 2 * len(self.used_seq)))
        self._rows += count
        end = start + count
        keys = compact_hex_many(rows.ids)
        prompt_keys = compact_hex_many(rows.prompt_hashes)
        self.ids[start:end], self.prompts[start:end] = keys, rows.prompts
        self.prompt_hashes[start:end], self.answers[start:end] = prompt_keys, rows.answers
        self.partition[start:end] = self.partitions.take_many(rows.partitions)
        self.scope[start:end] = scopes = self.scopes.take_many(rows.scopes)
        self.model[start:end] = self.models.take_many(rows.models)
        self.label[start:end] = self.labels.take_many(rows.labels)
        for name in ("created_at", "expires_at", "last_used_at", "hits", "used_seq", "vgen"):
            getattr(self, name)[start:end] = getattr(rows, name)
        self.own_bytes[start:end] = (
            np.fromiter(map(len, rows.answers), np.int64, count=count)
            + _utf8_sizes(rows.prompts)
            + _utf8_sizes(rows.ids)
        )
        numbers = list(range(start, end))  # one int object a row, shared by both maps
        self._row_of.update(zip(keys, numbers, strict=True))
        distinct = np.unique(scopes).tolist()
        if len(distinct) <= 4:  # most chunks: a few scopes, each added in one call
            for scope in distinct:
                mask = scopes == scope
                self._by_prompt.setdefault(scope, {}).update(
                    zip(compress(prompt_keys, mask), compress(numbers, mask), strict=True)
                )
        else:  # many (a scope per conversation): one pass, not one per scope
            by_prompt = self._by_prompt
            for key, scope, number in zip(prompt_keys, scopes.tolist(), numbers, strict=True):
                in_scope = by_prompt.get(scope)
                if in_scope is None:
                    in_scope = by_prompt[scope] = {}
                in_scope[key] = number

    def number_puts(self) -> int:
        """Give every row its place in put order by ``created_at`` (after a restart's
        `extend`); the number of puts so given."""
        live = self.live_rows()
        order = live[np.argsort(self.created_at[live], kind="stable")]
        self.put_seq[order] = np.arange(1, len(order) + 1)
        return len(order)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    # ---- columns --------------------------------------------------------------------------

    def _coded(self) -> tuple[tuple[Codes, np.ndarray], ...]:
        return (
            (self.partitions, self.partition), (self.scopes, self.scope),
            (self.models, self.model), (self.labels, self.label),
        )  # fmt: skip

    def _next_row(self) -> int:
        if self._rows == len(self.used_seq):
            self._allocate(2 * self._rows)
        for column in self._objects():
            column.append(None)
        self._rows += 1
        return self._rows - 1

    def _objects(self) -> tuple[list[Any], ...]:
        """The columns of Python objects, as long as the rows used (lists grow by themselves)."""
        return (self.ids, self.prompts, self.prompt_hashes, self.answers)

    def _allocate(self, size: int) -> None:
        """Number columns of ``size`` rows, keeping what the rows used hold. The pages of the
        rows not used yet stay out of the resident memory until written, but for the columns
        that mark a row unused."""
        old = self._rows
        for name, dtype, fill in _COLUMNS:
            column: np.ndarray = np.empty(size, dtype=dtype)
            if old:
                column[:old] = getattr(self, name)[:old]
            if fill is not None:  # unused rows must read as unused: the pages are touched
                column[old:] = fill
            setattr(self, name, column)

    # Columns (set by `_allocate`), typed for readers:
    created_at: np.ndarray
    expires_at: np.ndarray
    last_used_at: np.ndarray
    hits: np.ndarray
    vgen: np.ndarray
    used_seq: np.ndarray
    put_seq: np.ndarray
    partition: np.ndarray
    scope: np.ndarray
    model: np.ndarray
    label: np.ndarray
    own_bytes: np.ndarray  # the answer's, the prompt's and the id's (`size`)
    index_key: np.ndarray  # the row's key in its scope index, -1 for none (`RowKeys`)


_COLUMNS: tuple[tuple[str, type, float | None], ...] = (
    ("created_at", np.float64, None),
    ("expires_at", np.float64, math.inf),
    ("last_used_at", np.float64, None),
    ("hits", np.int64, None),
    ("vgen", np.int64, None),
    ("used_seq", np.int64, UNUSED),
    ("put_seq", np.int64, None),
    ("partition", np.int32, None),
    ("scope", np.int32, None),
    ("model", np.int32, None),
    ("label", np.int32, None),
    ("own_bytes", np.int64, None),
    ("index_key", np.int32, -1),
)


def _own_bytes(answer: bytes, prompt: str, entry_id: str) -> int:
    return len(answer) + _utf8_size(prompt) + _utf8_size(entry_id)


def _utf8_sizes(texts: Sequence[str]) -> np.ndarray:
    if "".join(texts).isascii():  # most: a character a byte, no copy of each
        return np.fromiter(map(len, texts), np.int64, count=len(texts))
    return np.fromiter(map(len, map(str.encode, texts)), np.int64, count=len(texts))


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())  # most prompts: no copy
