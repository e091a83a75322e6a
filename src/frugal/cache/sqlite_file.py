"""The embedded store's file: one SQLite database, read and written on a thread of its own.

    file = await SqliteFile.open(data_dir / "cache.sqlite3", dimensions=384)
    loaded = await file.load(now=time.time(), max_entries=100_000, labels=LabelsTable())
    ids, vectors = await file.vectors(model=..., scope=...)     # the vectors of one index
    await file.write(wipe=False, changes={"id-1": (held, used_seq, vector), "id-2": None})
    await file.aclose()

Every SQLite call runs on the file's single worker thread, in order, so the event loop never
waits on the disk and no two calls overlap. This is the one place `sqlite3` errors become
`CacheStoreError`; anything else a call raises comes through unchanged.

Layout: table ``entries``, one row per entry, with ``used_seq`` (the store's order of use,
for its LRU), ``model`` (the id of the embedding model that made the vector; an exact-only
entry's ``vector`` is an empty blob, the column being NOT NULL), ``vgen`` (the version of the
vector, `Held.vgen`) and ``answer`` (the answer as zlib-compressed JSON; ``response`` is left
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
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from frugal.cache.held import Held, LabelsTable, interned, pack_answer
from frugal.cache.store import BASE_MODEL_ID, EXACT_ONLY
from frugal.errors import CacheStoreError

T = TypeVar("T")

# What one changed id becomes on disk: the entry, its place in the order of use and its vector
# (None for an exact-only entry), or None when it was removed.
Change = tuple[Held, int, np.ndarray | None] | None

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
    """What `SqliteFile.load` found: the live entries with their ``used_seq``, least recently
    used first, how many rows it dropped as expired or as past ``max_entries``, and the file's
    ``file_id``."""

    entries: list[tuple[Held, int]]
    expired: int
    evicted: int
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

    async def load(self, *, now: float, max_entries: int, labels: LabelsTable) -> Loaded:
        """Drop rows expired by ``now`` (unix seconds) and the least recently used past
        ``max_entries`` (the bound may have shrunk since the last run); return the rest, their
        labels shared through ``labels``. `CacheStoreError` for a row that cannot be read
        (a vector of other dimensions, bad JSON)."""
        return await self._sql(self.load_rows, now, max_entries, labels)

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

    def load_rows(self, now: float, max_entries: int, labels: LabelsTable) -> Loaded:
        db = self._connect()
        with db:
            # One pass over the table, row by row: each live row becomes its entry at once, so
            # the rows never sit in memory all together beside the entries (a transient copy
            # of the cache that the allocator would keep as resident memory after the load).
            expired: list[tuple[str]] = []
            entries = []
            for row in db.execute(_LOAD):
                if row[8] <= now:
                    expired.append((row[0],))
                else:
                    entries.append((_held_from_row(row, self.dimensions, labels), row[12]))
            entries.sort(key=_used_seq)  # least recently used first
            surplus = max(0, len(entries) - max_entries)
            doomed = expired + [(held.id,) for held, _ in entries[:surplus]]
            db.executemany("DELETE FROM entries WHERE id = ?", doomed)
            del entries[:surplus]
            (file_id,) = db.execute("SELECT value FROM meta WHERE key = 'file_id'").fetchone()
        return Loaded(entries=entries, expired=len(expired), evicted=surplus, file_id=file_id)

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
    for change in changes.values():
        if change is not None:
            e, used_seq, vector = change
            yield (
                e.id, e.partition, e.scope, e.prompt, e.prompt_hash, "",
                b"" if vector is None else vector.tobytes(),
                e.created_at, e.expires_at, _labels_json(e.labels), e.hits,
                e.last_used_at, used_seq, e.model, e.vgen, e.answer,
            )  # fmt: skip


def _labels_json(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)


def _used_seq(pair: tuple[Held, int]) -> int:
    return pair[1]


def _held_from_row(row: tuple[Any, ...], dimensions: int, labels: LabelsTable) -> Held:
    """Decode a stored row (its vector's length, not the vector); a row this store cannot read
    raises `CacheStoreError`."""
    try:
        if row[13] == EXACT_ONLY:
            if row[6]:
                raise ValueError("an exact-only entry with a vector")
        elif row[6] != 4 * dimensions:
            raise ValueError(f"a vector of {row[6] // 4} dimensions, not {dimensions}")
        answer = row[15]
        if answer is None:  # written by an older frugal: the answer as JSON text
            answer = pack_answer(json.loads(row[5]))
        return Held(
            id=row[0], partition=interned(row[1]), scope=interned(row[2]),
            prompt=row[3], prompt_hash=row[4],
            answer=answer, created_at=row[7], expires_at=row[8],
            labels=labels.parsed(row[9]), hits=row[10], last_used_at=row[11],
            model=interned(row[13]), vgen=row[14],
        )  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise CacheStoreError(f"unreadable cache entry {row[0]!r}: {exc}") from exc
