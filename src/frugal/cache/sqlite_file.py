"""The embedded store's file: one SQLite database, read and written on a thread of its own.

    file = await SqliteFile.open(data_dir / "cache.sqlite3", dimensions=384)
    loaded = await file.load(now=time.time(), into=table)     # an `EntryTable` filled
    ids, vectors = await file.vectors(model=..., scope=...)     # the vectors of one index
    await file.write(wipe=False, changes={"id-1": stored_row(table, row, vector), "id-2": None})
    await file.aclose()

Every SQLite call runs on the file's single worker thread, in order, so the event loop never
waits on the disk and no two calls overlap. This is the one place `sqlite3` errors become
`CacheStoreError`; anything else a call raises comes through unchanged.

Layout: table ``entries``, one row per entry, with ``used_seq`` (the store's order of use,
for its LRU), ``model`` (the id of the embedding model that made the vector; an exact-only
entry's ``vector`` is an empty blob, the column being NOT NULL), ``vgen`` (the version of the
vector, `EntryTable.vgen`) and ``answer`` (the answer as zlib-compressed JSON; ``response`` is left
empty then). Table ``meta`` holds ``file_id``, a random id given to the file when it is created,
which an index file written beside it repeats (`frugal.cache.index_file`). `open` brings a file
of an older frugal up to date: a ``partition`` column named ``tenant`` is renamed, a file without
``model`` gets the column with the base model's id in every row, since the base model embedded
every entry of it (an upgrade keeps the cache), and rows whose answer is in ``response`` (JSON
text) are read as they are. `load` reads no vectors: those an index file does not hold are read
per index (`vectors`). WAL mode with ``synchronous=NORMAL``: a crash loses the last writes,
never the file.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from frugal.cache.entry_table import EntryTable, Rows, as_text, pack_answer
from frugal.cache.store import BASE_MODEL_ID, EXACT_ONLY
from frugal.errors import CacheStoreError

T = TypeVar("T")

# What one changed id becomes on disk: its row's values (`stored_row`), or None when removed.
Change = tuple[Any, ...] | None
_CHUNK = 8192  # rows read at a time at start-up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    partition TEXT NOT NULL,
    scope TEXT NOT NULL,
    prompt TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    vector BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    labels TEXT NOT NULL,
    hits INTEGER NOT NULL,
    last_used_at REAL,
    used_seq INTEGER NOT NULL,
    model TEXT NOT NULL,
    vgen INTEGER NOT NULL DEFAULT 0,
    answer BLOB
)
"""
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Rows of a file written before entries named their model were all embedded by the base model.
_ADD_MODEL = f"ALTER TABLE entries ADD COLUMN model TEXT NOT NULL DEFAULT '{BASE_MODEL_ID}'"
_ADDED = {
    "vgen": "ALTER TABLE entries ADD COLUMN vgen INTEGER NOT NULL DEFAULT 0",
    "answer": "ALTER TABLE entries ADD COLUMN answer BLOB",
}
_COLUMNS = (
    "id, partition, scope, prompt, prompt_hash, response, vector, created_at, expires_at, labels,"
    " hits, last_used_at, used_seq, model, vgen, answer"
)
_INSERT = f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"
# What `load` reads: everything but the vector, and the vector's length, to check it.
_LOAD = (
    # The answer's JSON text only for rows written before answers were compressed: a row read
    # costs no uncompressed copy of its answer.
    "SELECT id, partition, scope, prompt, prompt_hash,"
    " CASE WHEN answer IS NULL THEN response END, length(vector), created_at,"
    " expires_at, labels, hits, last_used_at, used_seq, model, vgen, answer"
    " FROM entries"  # in the table's order: sorting by use is cheaper in memory than in SQLite
)


@dataclass(frozen=True)
class Loaded:
    """What `SqliteFile.load` did besides filling the table: how many rows it dropped as
    expired, and the file's ``file_id``."""

    expired: int
    file_id: str


class SqliteFile:
    """The cache file at ``path``; build it with `open`, end it with `aclose`.

    ``load_rows`` and ``write_rows`` are the worker thread's side, blocking; callers use the
    coroutines.
    """

    def __init__(self, path: Path, *, dimensions: int) -> None:
        self.path = Path(path)
        self.dimensions = dimensions
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frugal-sqlite")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path, *, dimensions: int) -> SqliteFile:
        """Open (creating if needed) the file, migrating an older layout; `CacheStoreError`
        when it cannot be opened or is not a database."""
        file = cls(path, dimensions=dimensions)
        try:
            await file._sql(file._connect)
        except BaseException:
            await file.aclose()
            raise
        return file

    async def file_id(self) -> str:
        """The id this file was given when created: index files name the file they go with."""
        return await self._sql(self._file_id)

    async def load(self, *, now: float, into: EntryTable) -> Loaded:
        """Put every row not expired by ``now`` (unix seconds) in the table ``into`` (empty, and
        not used meanwhile), and delete the expired ones. `CacheStoreError` for a row that
        cannot be read (a vector of other dimensions, bad JSON)."""
        return await self._sql(self.load_rows, now, into)

    async def vectors(
        self, *, model: str, scope: str, ids: list[str] | None = None
    ) -> tuple[list[str], np.ndarray]:
        """The ids and vectors (one row each, float32) of ``model``'s entries in ``scope``; of
        those of ``ids`` only, when given (ids not stored are left out)."""
        return await self._sql(self.vector_rows, model, scope, ids)

    async def write(self, *, wipe: bool, changes: dict[str, Change]) -> None:
        """In one transaction: delete every row first when ``wipe``, then apply ``changes``."""
        await self._sql(self.write_rows, wipe, changes)

    async def aclose(self) -> None:
        """Close the database and end the worker thread, after whatever it is doing."""
        try:
            await self._sql(self._close)
        finally:
            self._executor.shutdown(wait=False)

    # ---- on the worker thread -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            try:
                # A new file's pages hold about six entries of 2-3 KB (vector, compressed
                # answer) where 4 KB pages held one with 1.5 KB left empty: a third less to read
                # at a restart. An existing file keeps its page size.
                db.execute("PRAGMA page_size=16384")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # with WAL: a crash loses, never corrupts
                with db:
                    db.execute(_SCHEMA)
                    db.execute(_META)
                    db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('file_id', ?)", (uuid.uuid4().hex,)
                    )
                    columns = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
                    if "tenant" in columns and "partition" not in columns:
                        db.execute("ALTER TABLE entries RENAME COLUMN tenant TO partition")
                    if "model" not in columns:
                        db.execute(_ADD_MODEL)
                    for column, statement in _ADDED.items():
                        if column not in columns:
                            db.execute(statement)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def load_rows(self, now: float, table: EntryTable) -> Loaded:
        db = self._connect()
        with db:
            # A chunk of rows at a time, column by column: the rows never sit in memory all
            # together beside the table (a transient copy of the cache that the allocator
            # would keep as resident memory after the load).
            expired: list[tuple[str]] = []
            cursor = db.execute(_LOAD)
            while chunk := cursor.fetchmany(_CHUNK):
                rows = _columns(chunk, self.dimensions)
                live = rows.expires_at > now
                expired.extend((entry_id,) for entry_id in compress(rows.ids, ~live))
                table.extend(rows if live.all() else rows.where(live))
            db.executemany("DELETE FROM entries WHERE id = ?", expired)
        return Loaded(expired=len(expired), file_id=self._file_id())

    def _file_id(self) -> str:
        (file_id,) = (
            self._connect().execute("SELECT value FROM meta WHERE key = 'file_id'").fetchone()
        )
        return str(file_id)

    def vector_rows(
        self, model: str, scope: str, ids: list[str] | None
    ) -> tuple[list[str], np.ndarray]:
        db = self._connect()
        query = "SELECT id, vector FROM entries WHERE model = ? AND scope = ?"
        if ids is None:
            rows = db.execute(query, (model, scope)).fetchall()
        else:
            rows = []
            for start in range(0, len(ids), 500):  # SQLite's bound on variables is 999 or more
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows += db.execute(f"{query} AND id IN ({marks})", (model, scope, *chunk))
        matrix = np.empty((len(rows), self.dimensions), dtype=np.float32)
        for i, (_, blob) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, dtype=np.float32)
        return [row[0] for row in rows], matrix

    def write_rows(self, wipe: bool, changes: dict[str, Change]) -> None:
        db = self._connect()
        with db:
            if wipe:
                db.execute("DELETE FROM entries")
            gone = [(entry_id,) for entry_id, change in changes.items() if change is None]
            db.executemany("DELETE FROM entries WHERE id = ?", gone)
            db.executemany(_INSERT, _rows(changes))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _sql(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` on the worker thread; the one place sqlite3 errors are mapped."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        except sqlite3.Error as exc:
            raise CacheStoreError(f"cache file {self.path}: {exc}") from exc


def _rows(changes: dict[str, Change]) -> Iterator[tuple[Any, ...]]:
    return (change for change in changes.values() if change is not None)


def stored_row(table: EntryTable, row: int, vector: np.ndarray | None) -> tuple[Any, ...]:
    """The values the file stores for the entry in ``row`` of ``table``, with its ``vector``
    (None for an exact-only entry), in the order of ``_COLUMNS``."""
    last = float(table.last_used_at[row])
    return (
        table.id_of(row), table.partitions.value(table.partition[row]),
        table.scopes.value(table.scope[row]), table.prompts[row],
        as_text(table.prompt_hashes[row] or ""), "",
        b"" if vector is None else np.asarray(vector, dtype=np.float32).tobytes(),
        float(table.created_at[row]), float(table.expires_at[row]),
        table.labels.value(table.label[row]), int(table.hits[row]),
        None if math.isnan(last) else last, int(table.used_seq[row]),
        table.models.value(table.model[row]), int(table.vgen[row]), table.answers[row],
    )  # fmt: skip


def _columns(chunk: list[tuple[Any, ...]], dimensions: int) -> Rows:
    """Stored rows (as `_LOAD` reads them) as columns; `CacheStoreError` for a row this store
    cannot read."""
    columns = zip(*chunk, strict=True)  # the rows' tuples, transposed
    (ids, partitions, scopes, prompts, hashes, responses, lengths, created_at, expires_at,
     labels, hits, last_used_at, used_seq, models, vgen, answers) = columns  # fmt: skip
    try:
        exact_only = np.fromiter(map(EXACT_ONLY.__eq__, models), dtype=bool, count=len(models))
        sizes = np.array(lengths, dtype=np.int64)
        wrong = np.flatnonzero(np.where(exact_only, sizes != 0, sizes != 4 * dimensions))
        if len(wrong):
            first = wrong[0]
            if exact_only[first]:
                raise _Unreadable(ids[first], "an exact-only entry with a vector")
            raise _Unreadable(
                ids[first], f"a vector of {sizes[first] // 4} dimensions, not {dimensions}"
            )
        packed = list(answers)
        for i, answer in enumerate(answers):
            if answer is None:  # written by an older frugal: the answer as JSON text
                try:
                    packed[i] = pack_answer(json.loads(responses[i]))
                except (ValueError, TypeError) as exc:
                    raise _Unreadable(ids[i], str(exc)) from exc
        for i, text in enumerate(labels):
            if not isinstance(text, str):
                raise _Unreadable(ids[i], f"labels {text!r}")
        return Rows(
            ids=ids, partitions=partitions, scopes=scopes, prompts=prompts,
            prompt_hashes=hashes, answers=packed, labels=labels, models=models,
            created_at=np.array(created_at, dtype=np.float64),
            expires_at=np.array(expires_at, dtype=np.float64),
            last_used_at=np.array(last_used_at, dtype=np.float64),  # None: NaN
            hits=np.array(hits, dtype=np.int64), used_seq=np.array(used_seq, dtype=np.int64),
            vgen=np.array(vgen, dtype=np.int64),
        )  # fmt: skip
    except _Unreadable as exc:
        raise CacheStoreError(f"unreadable cache entry {exc.args[0]!r}: {exc.args[1]}") from exc
    except (ValueError, TypeError) as exc:
        raise CacheStoreError(f"unreadable cache entries: {exc}") from exc


class _Unreadable(Exception):
    """A stored row this store cannot read: its id and why."""
