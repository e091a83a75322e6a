"""One batch, from its input file to its output files: the per-batch state machine.

    validating ──(a bad line)──▶ failed
        │
        ▼
    in_progress: plan (cache hits, folds) ─▶ send the unique misses ─▶ store their answers
        │                                  (live, or as one provider batch)
        ▼
    finalizing: write the output and error files ─▶ completed | expired | cancelled | failed

Every step leaves what it did in the batch's record or its work folder before the next begins,
so that `run` on a record read back after a restart carries on where it was: the plan is read
back rather than made again (the cache may have changed meanwhile), a provider batch already
made is polled by its saved id, live answers already had are not asked again. Only the upload
of a provider batch whose id was not yet saved is done again.

A cancel (`request_cancel`, or a record found ``cancelling``) stops the live sending, or asks
the provider to cancel its batch; what was answered by then is in the output, the rest in the
error file as ``batch_cancelled``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from frugal.cache import SemanticCache, storable
from frugal.deferred.figures import Figures, tally
from frugal.deferred.fold import Plan, key_of, plan_batch
from frugal.deferred.lines import BatchLine, LinesInvalid, parse_lines
from frugal.deferred.live import send_live
from frugal.deferred.output import Result, write_files
from frugal.deferred.remote import NoBatchApi, collect, submit, wait
from frugal.deferred.store import FILE_PREFIX, BatchRecord, BatchStore, FileRecord, read_json
from frugal.errors import UpstreamError
from frugal.ids import random_hex
from frugal.observability.prices import PriceTable
from frugal.provider import Endpoint, Upstream
from frugal.upstream import ProviderBatches

logger = logging.getLogger(__name__)

RATE_KEY = "frugal_live_rps"  # a batch's metadata may choose its own live rate
NO_BATCH_API = "live (the provider has no Batch API)"


@dataclass(frozen=True)
class RunnerParts:
    """What every batch is run with."""

    store: BatchStore
    upstream: Upstream
    provider: ProviderBatches
    cache: SemanticCache | None
    prices: PriceTable
    schemas: Mapping[Endpoint, type[BaseModel]]
    poll_s: float
    live_rps: float
    user_is_label: bool = True
    admit_length: bool = False
    admit_tool_calls: bool = False


def _nothing(record: BatchRecord) -> None:
    return None


class BatchRunner:
    """Runs one batch (`run`), saving its record at every change of state. ``on_end`` is
    called once the batch has ended, in the same step as its final status is set: whoever
    reads the status then also finds it counted."""

    def __init__(
        self,
        parts: RunnerParts,
        record: BatchRecord,
        *,
        on_end: Callable[[BatchRecord], None] = _nothing,
    ) -> None:
        self.parts = parts
        self.record = record
        self._on_end = on_end
        self.stop = asyncio.Event()
        if record.status == "cancelling":
            self.stop.set()

    def request_cancel(self) -> None:
        if self.record.finished:
            return
        if self.record.status != "cancelling":
            self.record.status = "cancelling"
            self.record.cancelling_at = int(time.time())
            self._save()
        self.stop.set()

    async def run(self) -> BatchRecord:
        record = self.record
        try:
            lines = await self._validate()
            if lines is None or record.finished:
                return record
            if self.stop.is_set() and record.provider_batch_id is None:
                await self._finish(lines, Plan.from_json(_all_misses(len(lines))), {}, "cancelled")
                return record
            plan = await self._plan(lines)
            results, ended = await self._send(lines, plan)
            await self._store_answers(lines, plan, results)
            await self._finish(lines, plan, results, ended)
        except asyncio.CancelledError:
            raise  # the gateway is stopping: the batch resumes at its next start
        except UpstreamError as exc:  # the provider's batch could not be made or read
            logger.warning("batch %s failed: %s", record.id, exc.message)
            self._fail("upstream_error", exc.message)
        except Exception:
            logger.exception("batch %s failed unexpectedly", record.id)
            self._fail("internal_error", "The batch failed in the gateway.")
        return record

    def _fail(self, code: str, message: str) -> None:
        record = self.record
        record.status, record.failed_at = "failed", int(time.time())
        record.errors = [{"code": code, "message": message, "param": None, "line": None}]
        self._save()
        self._on_end(record)

    # ---- validating ------------------------------------------------------------------------

    async def _validate(self) -> list[BatchLine] | None:
        record, parts = self.record, self.parts
        path = parts.store.file_path(record.input_file_id)
        try:
            lines = await asyncio.to_thread(
                parse_lines, path, endpoint=record.endpoint, schemas=parts.schemas
            )
        except LinesInvalid as exc:
            record.status, record.failed_at = "failed", int(time.time())
            record.errors = [error.as_object() for error in exc.errors]
            self._save()
            self._on_end(record)
            return None
        if record.status == "validating":
            record.status, record.in_progress_at = "in_progress", int(time.time())
            record.request_counts = {"total": len(lines), "completed": 0, "failed": 0}
            self._save()
        return lines

    # ---- in_progress ------------------------------------------------------------------------

    async def _plan(self, lines: list[BatchLine]) -> Plan:
        path = self._work() / "plan.json"
        saved = await asyncio.to_thread(read_json, path)
        if saved is not None:
            return Plan.from_json(saved)
        parts = self.parts
        plan = await plan_batch(
            lines,
            cache=parts.cache,
            partition=self.record.partition,
            user_is_label=parts.user_is_label,
        )
        await asyncio.to_thread(parts.store.write_json, path, plan.as_json())
        return plan

    async def _send(self, lines: list[BatchLine], plan: Plan) -> tuple[dict[int, Result], str]:
        """The results of the unique misses, and how the sending ended (``completed``,
        ``cancelled``, ``expired`` or ``failed``)."""
        misses = [(number, lines[index]) for number, index in enumerate(plan.misses)]
        if not misses:
            return {}, "completed"
        if self.record.mode == "provider":
            try:
                return await self._send_to_provider(misses)
            except NoBatchApi:
                logger.info("batch %s: the provider has no Batch API; sending live", self.record.id)
                self.record.mode = "live"
                self.record.figures["frugal_mode"] = NO_BATCH_API
                self._save()
        return await self._send_live(misses)

    async def _send_to_provider(
        self, misses: list[tuple[int, BatchLine]]
    ) -> tuple[dict[int, Result], str]:
        record, parts = self.record, self.parts
        if record.provider_batch_id is None:
            record.provider_batch_id = await submit(
                parts.provider,
                misses,
                endpoint=record.endpoint,
                folder=self._work(),
                batch_id=record.id,
            )
            self._save()

        def seen(status: str) -> None:
            if status != record.provider_status:
                record.provider_status = status
                self._save()

        batch = await wait(
            parts.provider,
            record.provider_batch_id,
            poll_s=parts.poll_s,
            stop=self.stop,
            on_status=seen,
        )
        status = str(batch.get("status"))
        if status == "failed":
            record.errors = _provider_errors(batch, misses)
        return await collect(parts.provider, batch, folder=self._work()), status

    async def _send_live(
        self, misses: list[tuple[int, BatchLine]]
    ) -> tuple[dict[int, Result], str]:
        path = self._work() / "results.jsonl"
        results = await asyncio.to_thread(_read_results, path)
        left = [(number, line) for number, line in misses if number not in results]

        def keep(number: int, result: Result) -> None:
            results[number] = result
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"miss": number, **result.as_json()}) + "\n")

        whole = await send_live(
            self.parts.upstream, left, rps=self._rate(), on_result=keep, stop=self.stop
        )
        return results, "completed" if whole and not self.stop.is_set() else "cancelled"

    def _rate(self) -> float:
        chosen = (self.record.metadata or {}).get(RATE_KEY)
        try:
            rate = float(chosen) if chosen is not None else self.parts.live_rps
        except ValueError:
            rate = self.parts.live_rps
        return rate if rate > 0 else self.parts.live_rps

    async def _store_answers(
        self, lines: list[BatchLine], plan: Plan, results: Mapping[int, Result]
    ) -> None:
        """Each answer that came back joins the cache, as a live miss's would."""
        parts = self.parts
        if parts.cache is None:
            return
        for number, index in enumerate(plan.misses):
            result = results.get(number)
            key = key_of(
                lines[index], partition=self.record.partition, user_is_label=parts.user_is_label
            )
            if key is None or result is None or not result.ok:
                continue
            assert result.body is not None
            if storable(
                result.body,
                admit_length=parts.admit_length,
                admit_tool_calls=parts.admit_tool_calls,
            ):
                await parts.cache.save(key, result.body, vector=plan.vectors.get(index))

    # ---- finalizing -------------------------------------------------------------------------

    async def _finish(
        self, lines: list[BatchLine], plan: Plan, results: Mapping[int, Result], ended: str
    ) -> None:
        record, store = self.record, self.parts.store
        if ended not in ("cancelled", "failed", "expired"):
            ended = "completed"
        record.status, record.finalizing_at = "finalizing", int(time.time())
        self._save()
        output_id, errors_id = f"{FILE_PREFIX}{random_hex()}", f"{FILE_PREFIX}{random_hex()}"
        output, error = (
            store.temp_dir() / f"{output_id}.part",
            store.temp_dir() / f"{errors_id}.part",
        )
        written = await asyncio.to_thread(
            write_files,
            [line.custom_id for line in lines],
            plan,
            results,
            output=output,
            errors=error,
            ended=ended,
        )
        now = int(time.time())
        for file_id, path, purpose, count in (
            (output_id, output, "batch_output", written.completed),
            (errors_id, error, "batch_output", written.failed),
        ):
            if count:
                size = path.stat().st_size
                file = FileRecord(
                    id=file_id,
                    tenant=record.tenant,
                    filename=f"{record.id}_{'output' if path is output else 'error'}.jsonl",
                    purpose=purpose,
                    bytes=size,
                    created_at=now,
                )
                await asyncio.to_thread(store.add_file, file, path)
            else:
                path.unlink(missing_ok=True)
        record.output_file_id = output_id if written.completed else None
        record.error_file_id = errors_id if written.failed else None
        record.request_counts = {
            "total": len(lines),
            "completed": written.completed,
            "failed": written.failed,
        }
        figures: Figures = tally(
            lines, plan, results, prices=self.parts.prices, batch_price=record.mode == "provider"
        )
        record.figures.update(figures.as_metadata())
        record.status = ended
        setattr(record, f"{ended}_at", now)
        self._save()
        self._on_end(record)
        await asyncio.to_thread(store.drop_work, record.id)

    def _work(self) -> Path:
        return self.parts.store.work_dir(self.record.id)

    def _save(self) -> None:
        self.parts.store.save(self.record)


def _all_misses(count: int) -> dict[str, Any]:
    """A plan sending every line, none answered: for a batch cancelled before it was planned."""
    resolutions = [
        {"kind": "miss", "miss": n, "response": None, "similarity": None} for n in range(count)
    ]
    return {"resolutions": resolutions, "misses": list(range(count))}


def _read_results(path: Path) -> dict[int, Result]:
    found: dict[int, Result] = {}
    if not path.exists():
        return found
    with path.open(encoding="utf-8") as lines:
        for raw in lines:
            try:
                item = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: asked again
            number = item.pop("miss")
            found[number] = Result(**item)
    return found


def _provider_errors(
    batch: dict[str, Any], misses: list[tuple[int, BatchLine]]
) -> list[dict[str, Any]]:
    """The provider's reasons, its line numbers turned into the client's."""
    given = (batch.get("errors") or {}).get("data") or []
    found = []
    for error in given:
        if not isinstance(error, dict):
            continue
        line = error.get("line")
        client_line = (
            misses[line - 1][1].number
            if isinstance(line, int) and 0 < line <= len(misses)
            else None
        )
        found.append(
            {
                "code": error.get("code"),
                "message": error.get("message"),
                "param": error.get("param"),
                "line": client_line,
            }
        )
    return found or [
        {
            "code": "provider_batch_failed",
            "message": "The provider's batch failed.",
            "param": None,
            "line": None,
        }
    ]
