"""An approximate scope index saved beside the SQLite file, so that a restart loads its graph
instead of building it again (minutes at a million entries).

    with index.frozen() as frozen:                      # None for an exact index
        graph, keys = frozen                            # ids and versions by position, from keys
        saved = IndexSnapshot.take(index, graph, ids, vgens, model=m, scope=s, ...)
        await asyncio.to_thread(saved.write, folder)    # the graph streamed to the file
    found = read_index_file(path, file_id=f, dimensions=384, options=options)   # or None

One file per (embedding model, scope), named by a hash of the two, in the folder
``<cache file>.indexes``. Layout: 8 bytes of magic, a 4-byte little-endian header length, the
header (JSON), then the body: the id at each graph position (UTF-8, newline-separated; empty
for a tombstone), each position's vector version (int64, `EntryTable.vgen`), and the graph as
``faiss.write_index`` writes it. The header carries the SQLite file's ``file_id``, the store's
generation when the snapshot was taken, the index's build options, the sizes of the three parts
and a CRC-32 of the body.

A file is used only when all of it checks: magic and version, the ``file_id`` of the SQLite
file beside it (a file copied from another cache is foreign), the dimensions and build options
in force, the sizes (a truncated file) and the checksum (a torn or damaged one). Anything else
and `read_index_file` returns None, saying why in the log, and the store rebuilds the index from
SQLite. Even a file that checks is only a cache of vectors: the store keeps a position only when
the SQLite file holds its id, in that scope and model, at that vector version
(`frugal.cache.embedded`).

Files are written to a temporary name, flushed to disk and renamed, so a crash while writing
leaves the previous file (or none), never half of one. The graph goes from faiss to the file
in chunks, on the writing thread, never copied whole into memory: the header is written last,
into room kept for it at the start (padded JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from frugal.cache.index import IndexOptions, ScopeIndex

logger = logging.getLogger(__name__)

_swig: Any = faiss  # faiss's stubs leave out serialize_index and its IO readers
MAGIC = b"FRUGALIX"
VERSION = 1
SUFFIX = ".index"
_CHUNK = 16 << 20  # bytes read at a time for the checksum
_HEADER_ROOM = 4096  # bytes kept for the header, written once the body's size and CRC are known


def folder_of(sqlite_path: Path) -> Path:
    """Where the index files of the cache file at ``sqlite_path`` live."""
    return sqlite_path.with_name(sqlite_path.name + ".indexes")


def file_name(model: str, scope: str) -> str:
    return hashlib.sha256(f"{model}\0{scope}".encode()).hexdigest()[:32] + SUFFIX


def options_tag(options: IndexOptions) -> str:
    """What of the options shapes a graph: a graph built with other ones is built again."""
    return f"HNSW-IP {options.encoding} M={options.hnsw_m} efC={options.ef_construction}"


@dataclass(frozen=True)
class IndexFile:
    """What a valid file holds: the graph, the id and vector version at each position."""

    model: str
    scope: str
    generation: int
    graph: Any  # faiss.IndexHNSWSQ (float16) or IndexHNSWFlat (float32)
    ids: list[str | None]
    vgens: np.ndarray


@dataclass(frozen=True)
class IndexSnapshot:
    """An index as it was when `take` ran, ready to be written on another thread."""

    header: dict[str, Any]
    ids: bytes
    vgens: bytes
    graph: Any  # the faiss graph: unchanged until `write` returns (`ScopeIndex.frozen`)

    @classmethod
    def take(
        cls,
        index: ScopeIndex[Any],
        graph: Any,
        ids: list[str | None],
        vgens: np.ndarray,
        *,
        model: str,
        scope: str,
        file_id: str,
        generation: int,
    ) -> IndexSnapshot:
        """What to write of ``index``: its frozen ``graph`` (`ScopeIndex.frozen`), the entry id
        at each position (None: a tombstone) and its vector version (int64, -1 for a
        tombstone)."""
        header = {
            "version": VERSION,
            "file_id": file_id,
            "model": model,
            "scope": scope,
            "generation": generation,
            "dimensions": index.dimensions,
            "options": options_tag(index.options),
            "positions": len(ids),
        }
        id_bytes = "\n".join("" if i is None else i for i in ids).encode()
        return cls(header, id_bytes, vgens.tobytes(), graph)

    def write(self, folder: Path) -> Path:
        """Write the file (blocking: call it on a worker thread, the graph frozen); its path.
        ValueError for a header that outgrows its room (a scope of some 4,000 characters)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(self.header["model"], self.header["scope"])
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as out:
            out.write(MAGIC + struct.pack("<I", _HEADER_ROOM) + b" " * _HEADER_ROOM)
            crc = 0
            graph_size = 0

            def body(chunk: bytes) -> None:
                nonlocal crc
                crc = zlib.crc32(chunk, crc)
                out.write(chunk)

            def graph_chunk(chunk: bytes) -> None:
                nonlocal graph_size
                graph_size += len(chunk)
                body(chunk)

            body(self.ids)
            body(self.vgens)
            faiss.write_index(self.graph, _swig.PyCallbackIOWriter(graph_chunk, _CHUNK))
            header = {
                **self.header,
                "sizes": [len(self.ids), len(self.vgens), graph_size],
                "crc32": crc,
            }
            encoded = json.dumps(header).encode()
            if len(encoded) > _HEADER_ROOM:
                raise ValueError(f"an index file header of {len(encoded)} bytes")
            out.seek(12)
            out.write(encoded)  # the rest of the room stays spaces, which JSON ignores
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        return path


def read_header(path: Path) -> tuple[dict[str, Any], int] | None:
    """The header of the file at ``path`` and where its body starts; None when unreadable."""
    try:
        with open(path, "rb") as source:
            start = source.read(12)
            if len(start) != 12 or start[:8] != MAGIC:
                return None
            (length,) = struct.unpack("<I", start[8:])
            header: dict[str, Any] = json.loads(source.read(length))
        return header, 12 + length
    except (OSError, ValueError):
        return None


def read_index_file(
    path: Path, *, file_id: str, dimensions: int, options: IndexOptions
) -> IndexFile | None:
    """The file at ``path`` if every check passes (module docstring); else None, logged."""
    found = read_header(path)
    if found is None:
        return _refused(path, "not an index file, or unreadable")
    header, body_at = found
    try:
        if header.get("version") != VERSION:
            return _refused(path, f"version {header.get('version')}, not {VERSION}")
        if header["file_id"] != file_id:
            return _refused(path, "written beside another cache file")
        if header["dimensions"] != dimensions or header["options"] != options_tag(options):
            return _refused(path, "built with other dimensions or options")
        id_size, vgen_size, graph_size = (int(size) for size in header["sizes"])
        if os.path.getsize(path) != body_at + id_size + vgen_size + graph_size:
            return _refused(path, "truncated (or extended)")
        with open(path, "rb") as source:
            source.seek(body_at)
            crc = 0
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                crc = zlib.crc32(chunk, crc)
            if crc != header["crc32"]:
                return _refused(path, "checksum mismatch")
            source.seek(body_at)
            text = source.read(id_size).decode()
            vgens = np.frombuffer(source.read(vgen_size), dtype=np.int64)
            graph = faiss.read_index(_swig.PyCallbackIOReader(source.read, _CHUNK))
        ids: list[str | None] = [i or None for i in text.split("\n")] if text or vgen_size else []
        if (
            len(ids) != header["positions"]
            or len(vgens) != len(ids)
            or graph.ntotal != len(ids)
            or graph.d != dimensions
            or not isinstance(graph, (faiss.IndexHNSWSQ, faiss.IndexHNSWFlat))
        ):
            return _refused(path, "parts that do not agree")
        return IndexFile(
            model=header["model"],
            scope=header["scope"],
            generation=int(header["generation"]),
            graph=graph,
            ids=ids,
            vgens=vgens,
        )
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        return _refused(path, f"unreadable: {exc}")


def _refused(path: Path, why: str) -> IndexFile | None:
    """None, having logged why the file at ``path`` is not used."""
    logger.warning(
        "index file %s not used (%s): the index is rebuilt from the cache file", path, why
    )
    return None
