"""OpenAI's Files and Batch APIs, answered by frugal's deferred tier (`frugal.deferred`).

``POST /v1/files`` with purpose ``batch`` is kept by frugal (a ``file-frugal-`` id); with any
other purpose it is relayed to the provider, byte for byte. To know the purpose the multipart
body must be read, and a relayed body must be unread: so the body is streamed once, counted
against ``FRUGAL_MAX_UPLOAD_BYTES``, both into a raw copy on disk and through a streaming
multipart parser (python-multipart) whose file part is written straight into the data dir.
A ``batch`` upload keeps the parsed file and drops the raw copy; any other (or a body the parser
cannot read) is relayed from the raw copy (the client's own bytes and headers), which is
removed once sent. Nothing is held whole in memory.

``GET``/``DELETE /v1/files/{id}`` and ``GET /v1/files/{id}/content`` answer for frugal's ids
and relay every other id; ``GET /v1/files`` (the provider's list) is relayed. ``POST
/v1/batches`` on a frugal file makes a frugal batch (``batch_frugal_`` id); on any other file
it is relayed, as are other batch ids. ``GET /v1/batches`` lists the tenant's frugal batches.
A file or batch of another tenant is a 404, as is an unknown id.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import python_multipart
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from python_multipart.exceptions import MultipartParseError
from starlette.types import Message

from frugal.api.body import json_object, read_bytes
from frugal.api.errors import invalid_request_from
from frugal.api.relay import relay
from frugal.api.routes import tenant_of
from frugal.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
)
from frugal.api.state import gateway
from frugal.deferred import BatchService, FileRecord
from frugal.errors import InvalidRequestError, PayloadTooLargeError, RequestTimeoutError
from frugal.ids import random_hex
from frugal.provider import Endpoint

router = APIRouter(include_in_schema=False)

FILE_PREFIX = "file-frugal-"
BATCH_PREFIX = "batch_frugal_"
# The schema each batch line's body must meet: the live route's own.
LINE_SCHEMAS: dict[Endpoint, type[BaseModel]] = {
    Endpoint.CHAT: ChatCompletionRequest,
    Endpoint.COMPLETIONS: CompletionRequest,
    Endpoint.EMBEDDINGS: EmbeddingRequest,
    Endpoint.RESPONSES: ResponsesRequest,
}


class CreateBatchRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    input_file_id: StrictStr
    endpoint: StrictStr
    completion_window: StrictStr
    metadata: dict[StrictStr, StrictStr] | None = Field(None, max_length=16)


def batch_service(request: Request) -> BatchService:
    service: BatchService = request.app.state.batches
    return service


# ---- files ----------------------------------------------------------------------------------


@router.post("/v1/files")
async def upload_file(request: Request) -> Response:
    state = gateway(request)
    tenant = tenant_of(request, state)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return await relay(request, state)  # the provider says what is wrong with it
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"Request body is larger than {limit} bytes.")
    service = batch_service(request)
    upload = _Upload(service.store.temp_dir(), content_type)
    try:
        await upload.read(request, max_bytes=limit, idle_s=state.settings.client_body_timeout_s)
        purpose = upload.fields.get("purpose")
        if purpose != "batch" or upload.unparsable:
            raw = upload.take_raw()
            return await relay(_replayed(request, raw), state)
        file_path, filename, size = upload.take_file()
        record = FileRecord(
            id=f"{FILE_PREFIX}{random_hex()}",
            tenant=tenant.name,
            filename=filename,
            purpose="batch",
            bytes=size,
            created_at=int(time.time()),
        )
        await asyncio.to_thread(service.store.add_file, record, file_path)
        return JSONResponse(record.as_object())
    finally:
        upload.discard()


@router.get("/v1/files")
async def list_files(request: Request) -> Response:
    """The provider's files (frugal's own are not listed): relayed."""
    return await relay(request, gateway(request))


@router.get("/v1/files/{file_id}")
async def retrieve_file(request: Request, file_id: str) -> Response:
    state = gateway(request)
    if not file_id.startswith(FILE_PREFIX):
        return await relay(request, state)
    tenant = tenant_of(request, state)
    return JSONResponse(batch_service(request).file(tenant.name, file_id).as_object())


@router.get("/v1/files/{file_id}/content")
async def file_content(request: Request, file_id: str) -> Response:
    state = gateway(request)
    if not file_id.startswith(FILE_PREFIX):
        return await relay(request, state)
    tenant = tenant_of(request, state)
    service = batch_service(request)
    record = service.file(tenant.name, file_id)
    return FileResponse(service.store.file_path(record.id), media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
async def delete_file(request: Request, file_id: str) -> Response:
    state = gateway(request)
    if not file_id.startswith(FILE_PREFIX):
        return await relay(request, state)
    tenant = tenant_of(request, state)
    service = batch_service(request)
    record = service.file(tenant.name, file_id)
    await asyncio.to_thread(service.store.delete_file, record.id)
    return JSONResponse({"id": record.id, "object": "file", "deleted": True})


# ---- batches --------------------------------------------------------------------------------


@router.post("/v1/batches")
async def create_batch(request: Request) -> Response:
    state = gateway(request)
    tenant = tenant_of(request, state)
    raw = await read_bytes(
        request,
        max_bytes=state.settings.max_body_bytes,
        timeout_s=state.settings.client_body_timeout_s,
    )
    try:
        parsed = CreateBatchRequest.model_validate(json_object(raw))
    except ValidationError as exc:
        raise invalid_request_from(exc) from None
    if not parsed.input_file_id.startswith(FILE_PREFIX):
        return await relay(_replayed_bytes(request, raw), state)
    record = batch_service(request).create(
        tenant=tenant.name,
        partition=tenant.namespace,
        input_file_id=parsed.input_file_id,
        endpoint=parsed.endpoint,
        completion_window=parsed.completion_window,
        metadata=parsed.metadata,
    )
    return JSONResponse(record.as_object())


@router.get("/v1/batches")
async def list_batches(
    request: Request,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
) -> Response:
    state = gateway(request)
    tenant = tenant_of(request, state)
    found, more = batch_service(request).listed(tenant.name, after=after, limit=limit)
    data = [record.as_object() for record in found]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(request: Request, batch_id: str) -> Response:
    state = gateway(request)
    if not batch_id.startswith(BATCH_PREFIX):
        return await relay(request, state)
    tenant = tenant_of(request, state)
    return JSONResponse(batch_service(request).get(tenant.name, batch_id).as_object())


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, batch_id: str) -> Response:
    state = gateway(request)
    if not batch_id.startswith(BATCH_PREFIX):
        return await relay(request, state)
    tenant = tenant_of(request, state)
    return JSONResponse(batch_service(request).cancel(tenant.name, batch_id).as_object())


# ---- reading bodies -------------------------------------------------------------------------


class _Upload:
    """A multipart body read once: its raw bytes to one file, its parts parsed as they come
    (fields in memory, the ``file`` part to a file of its own), both in ``folder``."""

    def __init__(self, folder: Path, content_type: str) -> None:
        self.fields: dict[str, str] = {}
        self._files: list[Any] = []
        descriptor, name = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=".raw")
        self._raw_path: Path | None = Path(name)
        self._raw: IO[bytes] = os.fdopen(descriptor, "wb")
        self._folder = folder
        self._parser = python_multipart.create_form_parser(
            {"Content-Type": content_type.encode("latin-1")},
            self._on_field,
            self._on_file,
            config={
                "UPLOAD_DIR": str(folder),
                "UPLOAD_DELETE_TMP": False,
                "MAX_MEMORY_FILE_SIZE": 0,
            },
        )
        self._taken_file: Path | None = None
        self.unparsable = False

    def _on_field(self, field: Any) -> None:
        name = field.field_name.decode("utf-8", "replace") if field.field_name else ""
        value = field.value.decode("utf-8", "replace") if field.value is not None else ""
        self.fields[name] = value

    def _on_file(self, file: Any) -> None:
        self._files.append(file)

    def _feed(self, chunk: bytes) -> None:
        self._raw.write(chunk)
        if not self.unparsable:
            try:
                self._parser.write(chunk)
            except MultipartParseError:
                self.unparsable = True  # not frugal's to judge: relayed, the provider says

    def _finalize(self) -> None:
        if not self.unparsable:
            try:
                self._parser.finalize()
            except MultipartParseError:
                self.unparsable = True

    async def read(self, request: Request, *, max_bytes: int, idle_s: float) -> None:
        size = 0
        chunks = request.stream()
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_s):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise RequestTimeoutError(
                        f"The request body paused for more than {idle_s} s."
                    ) from None
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(f"Request body is larger than {max_bytes} bytes.")
                if chunk:
                    await asyncio.to_thread(self._feed, chunk)
            await asyncio.to_thread(self._finalize)
        finally:
            self._raw.close()

    def take_raw(self) -> Path:
        assert self._raw_path is not None
        path, self._raw_path = self._raw_path, None
        return path

    def take_file(self) -> tuple[Path, str, int]:
        """The ``file`` part: where it is, its name, its size; 400 without exactly one."""
        parts = [file for file in self._files if file.field_name == b"file"]
        if len(parts) != 1:
            raise InvalidRequestError("A batch upload needs exactly one 'file' part.", param="file")
        part = parts[0]
        part.flush_to_disk()
        part.file_object.close()
        path = Path(os.fsdecode(part.actual_file_name))
        self._taken_file = path
        name = part.file_name.decode("utf-8", "replace") if part.file_name else "batch.jsonl"
        return path, name, int(part.size)

    def discard(self) -> None:
        """Remove every temporary file not taken (a taken file has been moved away)."""
        if not self._raw.closed:
            self._raw.close()
        if self._raw_path is not None:
            self._raw_path.unlink(missing_ok=True)
        for file in self._files:
            if not file.in_memory:
                file.file_object.close()
                path = Path(os.fsdecode(file.actual_file_name))
                if path != self._taken_file:
                    path.unlink(missing_ok=True)


def _replayed(request: Request, raw: Path) -> Request:
    """``request`` again, its body read back from ``raw`` (removed once it has been read
    or the relay is done with it)."""
    source = raw.open("rb")
    raw.unlink()  # the open file keeps its bytes until closed

    def next_chunk() -> bytes:
        return source.read(1 << 16)

    return _with_body(request, next_chunk, source.close)


def _replayed_bytes(request: Request, raw: bytes) -> Request:
    chunks = [raw]
    return _with_body(request, lambda: chunks.pop() if chunks else b"", lambda: None)


def _with_body(
    request: Request, next_chunk: Callable[[], bytes], close: Callable[[], None]
) -> Request:
    done = False

    async def receive() -> Message:
        nonlocal done
        if done:
            return await request.receive()  # only the client's leaving is left to hear
        chunk = await asyncio.to_thread(next_chunk)
        if not chunk:
            done = True
            close()
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return Request(request.scope, receive)
