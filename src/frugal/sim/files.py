"""The Files API: uploads kept on disk, bounded, so that a relayed upload can be checked.

``POST /v1/files`` (multipart: ``file``, ``purpose``) gives a ``FileObject`` (``id``
``file-<hex>``, ``object`` ``"file"``, ``bytes``, ``created_at``, ``filename``, ``purpose``,
``status`` ``"processed"``, ``expires_at`` and ``status_details`` null); ``GET /v1/files``
lists them (``purpose``, ``order``, ``limit``, ``after`` as OpenAI reads them), newest first;
``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (the bytes as they arrived,
``application/octet-stream``) and ``DELETE /v1/files/{id}`` (``{"id", "object": "file",
"deleted": true}``) find one; an id not held is OpenAI's 404 (``param`` ``"id"``).

The multipart body is parsed by starlette (python-multipart), which spools a large file to
disk; the store copies it in chunks off the event loop, hashing it as it goes. The store keeps
the newest `FileStore.max_files` files within `FileStore.max_total_bytes`, evicting the oldest,
in a temporary folder removed by `FileStore.close` (or at exit).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from frugal.sim.job import Job
from frugal.sim.rejected import invalid, not_found

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    sha256: str
    path: Path

    def as_object(self) -> dict[str, Any]:
        """The OpenAI ``FileObject`` of this file."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class FileStore:
    """Uploaded files, oldest first; the folder is made at the first upload."""

    def __init__(self, *, max_files: int = 1000, max_total_bytes: int = 1 << 30) -> None:
        self.max_files, self.max_total_bytes = max_files, max_total_bytes
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._folder: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    async def add(self, source: IO[bytes], *, filename: str, purpose: str) -> StoredFile:
        """Copy ``source`` from its start into the store, then evict the oldest files beyond
        the bounds (never the new one)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="frugal-sim-files-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._folder, True)
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        path = self._folder / file_id
        size, digest = await asyncio.to_thread(_copy, source, path)
        stored = StoredFile(
            id=file_id,
            filename=filename,
            purpose=purpose,
            bytes=size,
            created_at=int(time.time()),
            sha256=digest,
            path=path,
        )
        self._files[file_id] = stored
        total = sum(f.bytes for f in self._files.values())
        while len(self._files) > 1 and (
            len(self._files) > self.max_files or total > self.max_total_bytes
        ):
            oldest = next(iter(self._files))
            total -= self._files[oldest].bytes
            self.remove(oldest)
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def remove(self, file_id: str) -> bool:
        """Forget a file and delete its bytes; False when it was not held."""
        stored = self._files.pop(file_id, None)
        if stored is not None:
            stored.path.unlink(missing_ok=True)
        return stored is not None

    def listed(self) -> list[StoredFile]:
        return list(self._files.values())

    def close(self) -> None:
        self._files.clear()
        if self._finalizer is not None:
            self._finalizer()


def _copy(source: IO[bytes], path: Path) -> tuple[int, str]:
    """Bytes copied and their sha256, a chunk at a time."""
    source.seek(0)
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as sink:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _held(store: FileStore, request: Request) -> StoredFile:
    file_id = request.path_params["file_id"]
    stored = store.get(file_id)
    if stored is None:
        raise not_found(f"No such File object: {file_id}", param="id")
    return stored


async def upload_job(request: Request, *, store: FileStore) -> Job:
    """An upload; raises `Rejected` (400) naming the missing or bad field."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid("Uploads must be sent as multipart/form-data.", None)
    try:
        form = await request.form(max_files=1, max_fields=16)
    except (MultiPartException, HTTPException) as exc:
        raise invalid(f"The multipart body cannot be read: {exc}", None) from None

    async def release() -> None:
        await form.close()

    try:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise invalid("'file' is required and must be a file part.", "file")
        if purpose not in PURPOSES:
            raise invalid(f"'purpose' must be one of {', '.join(PURPOSES)}.", "purpose")
        if upload.size is not None and upload.size > store.max_total_bytes:
            message = f"The file is {upload.size} bytes; at most {store.max_total_bytes} are kept."
            raise invalid(message, "file")
    except BaseException:
        await release()
        raise
    filename = upload.filename or "upload"

    async def answer() -> Response:
        stored = await store.add(upload.file, filename=filename, purpose=str(purpose))
        return JSONResponse(stored.as_object())

    return Job(answer=answer, release=release)


async def list_job(request: Request, *, store: FileStore) -> Job:
    """The files held, newest first unless ``order=asc``, a page of ``limit`` after the id
    ``after``."""
    query = request.query_params
    purpose, order, after = query.get("purpose"), query.get("order", "desc"), query.get("after")
    if order not in ("asc", "desc"):
        raise invalid("'order' must be 'asc' or 'desc'.", "order")
    limit_text = query.get("limit", "10000")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 10000:
        raise invalid("'limit' must be an integer in [1, 10000].", "limit")
    limit = int(limit_text)

    async def answer() -> Response:
        files = [f for f in store.listed() if purpose is None or f.purpose == purpose]
        if order == "desc":
            files.reverse()
        ids = [f.id for f in files]
        if after is not None:
            files = files[ids.index(after) + 1 :] if after in ids else []
        page = files[:limit]
        return JSONResponse(
            {
                "object": "list",
                "data": [f.as_object() for f in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(files) > limit,
            }
        )

    return Job(answer=answer)


async def retrieve_job(request: Request, *, store: FileStore) -> Job:
    stored = _held(store, request)

    async def answer() -> Response:
        return JSONResponse(stored.as_object())

    return Job(answer=answer)


async def content_job(request: Request, *, store: FileStore) -> Job:
    stored = _held(store, request)

    async def answer() -> Response:
        if store.get(stored.id) is None:  # deleted or evicted while the call waited
            raise not_found(f"No such File object: {stored.id}", param="id")
        return FileResponse(stored.path, media_type="application/octet-stream")

    return Job(answer=answer)


async def delete_job(request: Request, *, store: FileStore) -> Job:
    stored = _held(store, request)

    async def answer() -> Response:
        store.remove(stored.id)
        return JSONResponse({"id": stored.id, "object": "file", "deleted": True})

    return Job(answer=answer)


def received(store: FileStore, file_id: str) -> dict[str, Any] | None:
    """What ``GET /sim/files/{id}`` says of a held file: ``{"bytes", "sha256"}``."""
    stored = store.get(file_id)
    return None if stored is None else {"bytes": stored.bytes, "sha256": stored.sha256}
