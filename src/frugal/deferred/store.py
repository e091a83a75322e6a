"""Batches and their files, kept in the data dir so that they outlive the process.

Layout under ``root`` (``FRUGAL_DATA_DIR/batches``)::

    files/<file id>.json     the file's record (`FileRecord`)
    files/<file id>.jsonl    its bytes
    records/<batch id>.json  the batch's record (`BatchRecord`)
    work/<batch id>/         what a running batch has done so far (`frugal.deferred.runner`)
    claims/<batch id>.lock   locked by the process running the batch (`BatchStore.claim`)
    tmp/                     uploads on their way in

Every record is written atomically (a temporary file, then ``os.replace``): a crash leaves the
old record or the new one, never half of one. Records are small; a file's bytes are never read
whole here.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FILE_PREFIX = "file-frugal-"
BATCH_PREFIX = "batch_frugal_"
TERMINAL = frozenset({"failed", "completed", "expired", "cancelled"})


class FileRecord(BaseModel):
    """A file frugal holds, and the tenant it belongs to."""

    model_config = ConfigDict(extra="ignore")

    id: str
    tenant: str
    filename: str
    purpose: str
    bytes: int
    created_at: int

    def as_object(self) -> dict[str, Any]:
        """OpenAI's ``FileObject``."""
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


class BatchRecord(BaseModel):
    """A batch as OpenAI describes it, plus what frugal needs to carry it on after a restart.

    ``tenant`` owns it; ``partition`` is the cache partition it reads and writes.
    ``provider_batch_id`` is the provider's batch, once one was made; ``figures`` the counts
    and costs published as ``frugal_*`` metadata.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    tenant: str
    partition: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str = "validating"
    created_at: int
    created_ns: int = 0  # orders batches made in the same second
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    expires_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    request_counts: dict[str, int] = Field(
        default_factory=lambda: {"total": 0, "completed": 0, "failed": 0}
    )
    metadata: dict[str, str] | None = None
    mode: str = "provider"
    provider_batch_id: str | None = None
    provider_status: str | None = None
    figures: dict[str, str] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def as_object(self) -> dict[str, Any]:
        """OpenAI's ``Batch``; frugal's figures join the client's metadata (strings, as
        OpenAI's metadata values are)."""
        errors = {"object": "list", "data": self.errors} if self.errors is not None else None
        metadata = {**(self.metadata or {}), **self.figures}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": self.request_counts,
            "metadata": metadata or None,
        }


class Claim:
    """A batch claimed by this process (`BatchStore.claim`) until `release`."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the file drops its lock
            self._descriptor = None


class BatchStore:
    """Records and files under ``root``; every method is synchronous file work (call it off
    the event loop for anything large)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("files", "records", "work", "claims", "tmp"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    # ---- files ------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        return self.root / "files" / f"{_safe(file_id)}.jsonl"

    def temp_dir(self) -> Path:
        return self.root / "tmp"

    def add_file(self, record: FileRecord, source: Path) -> None:
        """Take ``source`` (moved, not copied: it is on the same disk) as ``record``'s bytes."""
        os.replace(source, self.file_path(record.id))
        self._write(self.root / "files" / f"{_safe(record.id)}.json", record.model_dump())

    def file(self, file_id: str) -> FileRecord | None:
        data = _read(self.root / "files" / f"{_safe(file_id)}.json")
        return FileRecord.model_validate(data) if data is not None else None

    def delete_file(self, file_id: str) -> None:
        (self.root / "files" / f"{_safe(file_id)}.json").unlink(missing_ok=True)
        self.file_path(file_id).unlink(missing_ok=True)

    # ---- batches ----------------------------------------------------------------------------

    def save(self, record: BatchRecord) -> None:
        self._write(self.root / "records" / f"{_safe(record.id)}.json", record.model_dump())

    def batch(self, batch_id: str) -> BatchRecord | None:
        data = _read(self.root / "records" / f"{_safe(batch_id)}.json")
        return BatchRecord.model_validate(data) if data is not None else None

    def batches(self) -> list[BatchRecord]:
        """Every batch held, newest first."""
        found = []
        for path in (self.root / "records").glob("*.json"):
            data = _read(path)
            if data is not None:
                found.append(BatchRecord.model_validate(data))
        return sorted(
            found,
            key=lambda record: (record.created_ns, record.created_at, record.id),
            reverse=True,
        )

    def claim(self, batch_id: str) -> Claim | None:
        """The right to run ``batch_id`` in this process, or None while another process (or
        another runner here) holds it: the workers of one gateway share the data dir, and each
        resumes the unfinished batches at start-up. An exclusive `flock` on a file of the
        batch's own, which the system drops if the process dies (the batch then resumes at the
        next start)."""
        descriptor = os.open(
            self.root / "claims" / f"{_safe(batch_id)}.lock", os.O_CREAT | os.O_RDWR, 0o600
        )
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return Claim(descriptor)

    def work_dir(self, batch_id: str) -> Path:
        folder = self.root / "work" / _safe(batch_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def drop_work(self, batch_id: str) -> None:
        shutil.rmtree(self.root / "work" / _safe(batch_id), ignore_errors=True)

    def write_json(self, path: Path, value: object) -> None:
        """Write ``value`` as JSON at ``path``, atomically."""
        self._write(path, value)

    @staticmethod
    def _write(path: Path, value: object) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                json.dump(value, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def read_json(path: Path) -> Any:
    """The JSON at ``path``, or ``None`` when there is none."""
    return _read(path)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _safe(identifier: str) -> str:
    """An id as a file name: ids come from clients, so nothing but letters, digits, - and _."""
    if not identifier or not all(c.isalnum() or c in "-_" for c in identifier):
        raise ValueError(f"not an id frugal makes: {identifier!r}")
    return identifier
