"""Structured logs: one JSON object per line, and one line per request.

Every record becomes ``{"ts", "level", "logger", "message", "pid", ...}`` (the process id
tells apart the workers of `frugal serve --workers`, which share one stderr); fields passed as
``extra={"fields": {...}}`` are added at the top level. The request line (logger
``frugal.requests``) carries the request id, tenant, endpoint, model, outcome, similarity,
latency and upstream calls, and a list's ``items`` (hits, misses) when answered item by item.
Prompt text appears only with ``log_prompts`` on; keys never do: nothing that logs here is
given one.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from frugal.observability.record import RequestRecord

REQUEST_LOGGER = "frugal.requests"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    """JSON lines on stderr for frugal's loggers and the server's (uvicorn's), at ``level``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # One line per upstream call at info would double the request lines.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


def log_request(record: RequestRecord, *, include_prompt: bool) -> None:
    logger = logging.getLogger(REQUEST_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "tenant": record.tenant,
        "endpoint": record.endpoint,
        "model": record.model,
        "outcome": record.outcome,
        "status": record.status,
        "similarity": round(record.similarity, 4) if record.similarity is not None else None,
        "latency_ms": round(record.latency_s * 1000, 2),
        "upstream_calls": record.upstream_calls,
        "stream": record.streamed,
    }
    if record.items_hit or record.items_missed:
        fields["items"] = {"hits": record.items_hit, "misses": record.items_missed}
    if include_prompt:
        fields["prompt"] = record.prompt
    logger.info("request", extra={"fields": fields})
