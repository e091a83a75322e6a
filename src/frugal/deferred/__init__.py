"""The deferred tier: OpenAI's Batch API in front of the cache.

A client uploads a JSONL file (`POST /v1/files`, purpose ``batch``) and makes a batch of it
(`POST /v1/batches`). frugal checks every line (`lines`), answers what the cache can, folds
repeats and paraphrases onto one question (`fold`), sends the unique rest upstream, live or as
one provider batch at the batch price (`runner`), and writes the output and error files in
OpenAI's line shape (`output`). Batches and files live in the data dir (`store`) and resume
after a restart (`service`).

The public face is below; the modules behind it are private rooms.
"""

from frugal.deferred.lines import BatchLine, LineError, LinesInvalid, parse_lines
from frugal.deferred.runner import RunnerParts
from frugal.deferred.service import BatchService
from frugal.deferred.store import BatchRecord, BatchStore, FileRecord

__all__ = [
    "BatchLine",
    "BatchRecord",
    "BatchService",
    "BatchStore",
    "FileRecord",
    "LineError",
    "LinesInvalid",
    "RunnerParts",
    "parse_lines",
]
