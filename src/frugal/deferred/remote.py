"""Sending a batch's unique misses to the provider as one batch of its own, at batch price.

`submit` writes the misses as a JSONL file under frugal's own custom ids (``frugal-<n>``, the
miss's number: the client's ids never reach the provider, and two clients' ids cannot clash),
uploads it and creates the provider's batch; `NoBatchApi` when the provider answers 404 (it has
no Batch API). `wait` polls it every ``poll_s`` (backing off, up to `MAX_POLL_S`, while polling
fails) until it ends, asking the provider to cancel it once ``stop`` is set. `collect`
downloads its output and error files and maps every line back by custom id; a miss the provider
never answered is left out, for the output to report as the way the batch ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from frugal.deferred.lines import BatchLine
from frugal.deferred.output import Result
from frugal.errors import UpstreamError, UpstreamStatusError
from frugal.upstream import ProviderBatches

logger = logging.getLogger(__name__)

ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
MAX_POLL_S = 60.0
_PREFIX = "frugal-"


class NoBatchApi(Exception):
    """The provider answered 404 to the Files or Batch API."""


def internal_id(number: int) -> str:
    return f"{_PREFIX}{number}"


async def submit(
    provider: ProviderBatches,
    misses: Sequence[tuple[int, BatchLine]],
    *,
    endpoint: str,
    folder: Path,
    batch_id: str,
) -> str:
    """Upload the misses and create the provider's batch; its id."""
    path = folder / "provider_input.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for number, line in misses:
            item = {"custom_id": internal_id(number), "method": "POST", "url": endpoint}
            out.write(json.dumps({**item, "body": line.body}, separators=(",", ":")) + "\n")
    try:
        file_id = await provider.upload(path, filename=f"{batch_id}.jsonl")
        created = await provider.create(file_id, endpoint=endpoint, metadata={"frugal": batch_id})
    except UpstreamStatusError as exc:
        if exc.upstream_status == 404:
            raise NoBatchApi(exc.message) from None
        raise
    provider_id = created.get("id")
    if not isinstance(provider_id, str) or not provider_id:
        raise UpstreamStatusError(
            "the provider's batch has no id", upstream_status=502, upstream_body=None
        )
    return provider_id


async def wait(
    provider: ProviderBatches,
    provider_id: str,
    *,
    poll_s: float,
    stop: asyncio.Event,
    on_status: Callable[[str], None],
) -> dict[str, Any]:
    """Poll until the provider's batch has ended; the batch as the provider last gave it."""
    failures = 0
    cancel_sent = False
    while True:
        if stop.is_set() and not cancel_sent:
            try:
                await provider.cancel(provider_id)
                cancel_sent = True
            except UpstreamError as exc:
                logger.warning("cancelling provider batch %s failed: %s", provider_id, exc.message)
        try:
            batch = await provider.retrieve(provider_id)
            failures = 0
        except UpstreamError as exc:
            failures += 1
            logger.warning("polling provider batch %s failed: %s", provider_id, exc.message)
            batch = None
        if batch is not None:
            status = str(batch.get("status"))
            on_status(status)
            if status in ENDED:
                return batch
        pause = min(MAX_POLL_S, poll_s * 2**failures)
        if stop.is_set():
            await asyncio.sleep(pause)
        else:  # a cancel asked for meanwhile wakes the poll at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)


async def collect(
    provider: ProviderBatches, batch: dict[str, Any], *, folder: Path
) -> dict[int, Result]:
    """Every answer and error of the provider's ended ``batch``, by miss number."""
    results: dict[int, Result] = {}
    for name in ("output_file_id", "error_file_id"):
        file_id = batch.get(name)
        if not isinstance(file_id, str) or not file_id:
            continue
        path = folder / f"provider_{name}.jsonl"
        await provider.download(file_id, path)
        with path.open("rb") as lines:
            for raw in lines:
                parsed = _parse(raw)
                if parsed is not None:
                    results[parsed[0]] = parsed[1]
    return results


def _parse(raw: bytes) -> tuple[int, Result] | None:
    try:
        item = json.loads(raw)
        custom_id = str(item["custom_id"])
        number = int(custom_id.removeprefix(_PREFIX))
    except (ValueError, KeyError, TypeError):
        return None
    if not custom_id.startswith(_PREFIX):
        return None
    response = item.get("response")
    error = item.get("error")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        body = response.get("body")
        return number, Result(
            status_code=response["status_code"],
            body=body if isinstance(body, dict) else {},
            request_id=response.get("request_id"),
        )
    if isinstance(error, dict):
        shown = {"code": str(error.get("code")), "message": str(error.get("message"))}
        return number, Result(error=shown)
    return None
