"""Lookup latency, memory per entry and recall of the embedded store, on real embeddings.

    python benchmarks/store_lookup.py [--quick] [--sizes 10000,100000,1000000]
                                      [--queries 1000] [--answer-bytes 1024]
                                      [--out benchmarks/results/store_lookup.md]

The corpus is the distinct questions of ``data/qqp/pairs.jsonl.gz`` (about 110k),
embedded once with all-MiniLM-L6-v2 and cached under ``.frugal/bench/`` (embedding them takes
minutes on 2 cores). Held-out real questions are the queries; they are never in the store.
Sizes past the real corpus are filled with perturbed copies of real vectors (see
`extra_vectors`). Three measurements:

1. where exhaustive search stops being cheaper than HNSW (the index's switch threshold);
2. recall@1 of HNSW against exact search, and its latency, across ``ef_search`` values;
3. the store itself at each size, all entries in one scope: ``search`` p50/p99, ``get_exact``
   p50, recall@1 with the default options, resident memory per entry and in all, the bytes each
   entry counts toward ``FRUGAL_CACHE_MAX_BYTES``, the time to fill it, and the time to open it
   again after a clean close (loading its index file).

Each answer is a chat completion whose content is about ``--answer-bytes`` of real questions'
text (compressible as prose is, not as repeated bytes).

Each store size runs in a fresh process so that its resident memory is its own. ``--quick``
(2k and 10k entries, 200 queries, about 10 s) writes to ``.frugal/bench/`` instead of the
committed results. The full run takes about 15 minutes and 10 GB of memory at 1M entries.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import PAIRS, shown  # noqa: E402
from _machine import write_report  # noqa: E402
from _qqp import CACHE_DIR, ROOT, load_questions, load_vectors  # noqa: E402

from frugal.cache.embedded import EmbeddedStore  # noqa: E402
from frugal.cache.entry_table import pack_answer  # noqa: E402
from frugal.cache.index import Encoding, IndexOptions, ScopeIndex  # noqa: E402
from frugal.cache.store import Entry  # noqa: E402
from frugal.percentiles import percentile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "store_lookup.md"
SCOPE = "bench-scope"
DIMENSIONS = 384
EF_VALUES = [16, 32, 64, 96, 128, 192, 256, 384, 512]


def extra_vectors(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` synthetic vectors near the real ones: each is a random real vector plus a quarter
    of another random real vector plus isotropic noise of norm 0.25, renormalised, so the
    extras sit between real questions (on the data's manifold, not in empty space)."""
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        noise = rng.standard_normal((size, real.shape[1])).astype(np.float32)
        noise *= 0.25 / np.linalg.norm(noise, axis=1, keepdims=True)
        mixed = (
            real[rng.integers(len(real), size=size)]
            + 0.25 * real[rng.integers(len(real), size=size)]
        )
        mixed += noise
        out[start : start + size] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return out


def corpus_of(real: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if size <= len(real):
        return real[:size]
    return np.concatenate([real, extra_vectors(real, size - len(real), rng)])


def exact_top1(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The best similarity of each query over the corpus (ground truth for recall@1)."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    for start in range(0, len(corpus), 200_000):
        best = np.maximum(best, (corpus[start : start + 200_000] @ queries.T).max(axis=0))
    return best


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def timed_searches(
    index: ScopeIndex,
    corpus: np.ndarray,
    queries: np.ndarray,
    ef_search: int | None = None,
    id_of: Callable[[Any], str] = str,
) -> tuple[list[float], list[float]]:
    """Per-query latency (s), and the float32 similarity of the entry found (ids are ``q<i>``,
    row ``i`` of ``corpus``; ``id_of`` gives the id of what the index names), searching
    ``index`` for each query."""
    latencies, best = [], []
    for query in queries:
        started = time.perf_counter()
        found = index.search(query, 1, ef_search=ef_search)
        latencies.append(time.perf_counter() - started)
        best.append(found_similarity(corpus, id_of(found[0][0]), query))
    return latencies, best


def found_similarity(corpus: np.ndarray, entry_id: str, query: np.ndarray) -> float:
    """The float32 similarity of entry ``q<i>`` to ``query``: recall asks whether the search
    found the best entry, not whether the index's (float16) similarity equals float32's."""
    return float(corpus[int(entry_id[1:])] @ query)


def recall(best: list[float], truth: np.ndarray) -> float:
    # A tie with the true best counts as found: another entry with the same similarity.
    return float(np.mean(np.asarray(best) >= truth - 1e-5))


def switch_table(
    real: np.ndarray, queries: np.ndarray, sizes: list[int], encoding: Encoding
) -> list[str]:
    """Exhaustive vs HNSW latency at small sizes, to place the switch threshold."""
    rows = [
        "| vectors | exact p50 (ms) | exact p99 (ms) | HNSW p50 (ms) | HNSW p99 (ms) "
        "| HNSW recall@1 | HNSW build (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        corpus = real[:size]
        exact = ScopeIndex(
            dimensions=corpus.shape[1],
            options=IndexOptions(approximate_above=size, encoding=encoding),
        )
        hnsw = ScopeIndex(
            dimensions=corpus.shape[1], options=IndexOptions(approximate_above=1, encoding=encoding)
        )
        for i, vector in enumerate(corpus):
            exact.add(f"q{i}", vector)
            hnsw.add(f"q{i}", vector)
        started = time.perf_counter()
        hnsw.rebuild()
        build = time.perf_counter() - started
        truth = exact_top1(corpus, queries)
        exact_lat, _ = timed_searches(exact, corpus, queries)
        hnsw_lat, best = timed_searches(hnsw, corpus, queries)
        rows.append(
            f"| {size:,} | {ms(percentile(exact_lat, 50))} | {ms(percentile(exact_lat, 99))} "
            f"| {ms(percentile(hnsw_lat, 50))} | {ms(percentile(hnsw_lat, 99))} | {recall(best, truth):.3f} "
            f"| {build:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


@dataclass
class StoreResult:
    """One store size's measurements; latencies in seconds, memory in bytes per entry."""

    kind: str
    p50: float
    p99: float
    recall: float
    exact_p50: float
    memory: float
    filled: float
    indexed: float
    restart: float | None
    rss: float = 0.0  # resident bytes of the whole process once filled
    counted: float = 0.0  # bytes per entry toward FRUGAL_CACHE_MAX_BYTES
    answer: float = 0.0  # the mean compressed answer (bytes)
    graphs_loaded: int = 0
    restart_rss: float = 0.0  # resident bytes of a fresh process once the store is open again
    restart_memory: float = 0.0  # that process's resident growth per entry, opening the store
    # A second fresh process opening it right after: the files in the page cache, as a restart
    # on the same host finds them (the first follows the fill's gigabytes of writes).
    restart_again: float | None = None
    sweep: list[tuple[int, float, float, float]] = field(default_factory=list)


def make_entry(i: int, vector: np.ndarray, question: str, now: float, content: str) -> Entry:
    return Entry(
        id=f"q{i}",
        partition="bench",
        scope=SCOPE,
        prompt=question,
        prompt_hash=hashlib.sha256(question.encode()).hexdigest(),
        response={
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "model": "sim-small",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"An answer to: {question} {content}",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 24, "total_tokens": 36},
        },
        vector=vector.copy(),  # each entry owns its vector, as in the gateway
        created_at=now,
        expires_at=now + 86_400,
        labels={"partition": "bench", "endpoint": "/v1/chat/completions", "model": "sim-small"},
    )


def contents(questions: list[str], size: int, rng: np.random.Generator) -> list[str]:
    """1,000 answer texts of about ``size`` bytes each, made of random real questions."""
    made = []
    for _ in range(1000):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < size:
            parts.append(questions[int(rng.integers(len(questions)))])
        made.append(" ".join(parts)[:size])
    return made


async def measure_store(
    corpus: np.ndarray,
    questions: list[str],
    queries: np.ndarray,
    folder: Path,
    answer_bytes: int,
    encoding: Encoding,
) -> StoreResult:
    """Fill one store (one scope) with ``corpus`` and time its lookups."""
    now = time.time()
    before = rss_bytes()
    store = await EmbeddedStore.open(
        folder / "cache.sqlite3",
        max_entries=len(corpus),
        dimensions=corpus.shape[1],
        now=now,
        index_options=IndexOptions(encoding=encoding),
    )
    texts = contents(questions, answer_bytes, np.random.default_rng(1)) if answer_bytes else [""]
    try:
        started = time.perf_counter()
        for i, vector in enumerate(corpus):
            # Extra (synthetic) vectors reuse a real question's text under a distinct prompt;
            # every entry owns its text (a copy), as it would in the gateway.
            question = f"{questions[i % len(questions)]}{'' if i < len(questions) else f' #{i}'}"
            await store.put(make_entry(i, vector, question, now, texts[i % len(texts)]))
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let the background build and the writer run
        filled = time.perf_counter() - started
        await store.settle()
        indexed = time.perf_counter() - started
        memory = (rss_bytes() - before) / len(corpus)
        rss = rss_bytes()
        counted = (await store.stats()).bytes / len(corpus)
        answer = float(
            np.mean(
                [
                    len(
                        pack_answer(
                            make_entry(
                                i, corpus[i], questions[i], now, texts[i % len(texts)]
                            ).response
                        )
                    )
                    for i in range(min(1000, len(corpus)))
                ]
            )
        )
        index = store.index_of(SCOPE)
        assert index is not None
        truth = exact_top1(corpus, queries)
        latencies, best = [], []
        for query in queries:
            started = time.perf_counter()
            found = await store.search(scope=SCOPE, vector=query, k=1, min_similarity=0.0, now=now)
            latencies.append(time.perf_counter() - started)
            best.append(found_similarity(corpus, found[0].entry.id, query))
        hashes = [hashlib.sha256(q.encode()).hexdigest() for q in questions[:1000]]
        exact_lat = []
        for prompt_hash in hashes:
            started = time.perf_counter()
            await store.get_exact(scope=SCOPE, prompt_hash=prompt_hash, now=now)
            exact_lat.append(time.perf_counter() - started)
        sweep = []
        if index.approximate:
            for ef in EF_VALUES:
                ef_lat, ef_best = timed_searches(
                    index, corpus, queries, ef_search=ef, id_of=store.id_of_row
                )
                sweep.append(
                    (ef, recall(ef_best, truth), percentile(ef_lat, 50), percentile(ef_lat, 99))
                )
    finally:
        await store.aclose()
    # The restart runs in a fresh process, as a deploy would: its time and resident memory.
    opened = []
    for _ in range(2):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--restart",
                str(folder),
                "--restart-now",
                repr(now),
                "--encoding",
                encoding,
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        opened.append(json.loads(child.stdout.strip().splitlines()[-1]))
    reopened, again = opened
    assert reopened["entries"] == len(corpus)
    return StoreResult(
        kind="HNSW" if index.approximate else "exact",
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        recall=recall(best, truth),
        exact_p50=percentile(exact_lat, 50),
        memory=memory,
        filled=filled,
        indexed=indexed,
        restart=reopened["seconds"],
        rss=rss,
        counted=counted,
        answer=answer,
        graphs_loaded=reopened["graphs_loaded"],
        restart_rss=reopened["rss"],
        restart_memory=reopened["memory"],
        restart_again=again["seconds"],
        sweep=sweep,
    )


def restart(folder: Path, now: float, encoding: Encoding) -> None:
    """Open the store written in ``folder`` and print how long it took (JSON)."""

    async def reopen() -> dict[str, float]:
        before = rss_bytes()
        started = time.perf_counter()
        store = await EmbeddedStore.open(
            folder / "cache.sqlite3",
            max_entries=10_000_000,
            now=now,
            index_checkpoint_s=None,
            index_options=IndexOptions(encoding=encoding),
        )
        seconds = time.perf_counter() - started
        entries = (await store.stats()).entries
        result = {
            "seconds": seconds,
            "entries": entries,
            "graphs_loaded": store.opening.graphs_loaded,
            "rss": rss_bytes(),
            "memory": (rss_bytes() - before) / max(1, entries),
        }
        store._closed = True  # leave the files as they are: no second write of the graph
        await store._disk.aclose()
        return result

    print(json.dumps(asyncio.run(reopen())))


@dataclass
class Data:
    questions: int
    source: str
    queries: np.ndarray
    real: np.ndarray
    real_questions: list[str]


def prepare(n_queries: int) -> Data:
    """The embedded questions, split at random (fixed seed) into held-out queries and the rest."""
    questions = load_questions()
    vectors, source = load_vectors(questions)
    order = np.random.default_rng(42).permutation(len(questions))
    held_out, kept = order[:n_queries], order[n_queries:]
    return Data(
        questions=len(questions),
        source=source,
        queries=vectors[held_out],
        real=vectors[kept],
        real_questions=[questions[i] for i in kept],
    )


def one_size(
    size: int, n_queries: int, answer_bytes: int, encoding: Encoding, keep: bool = False
) -> None:
    """Measure the store at ``size`` and print the result as JSON (run in a fresh process,
    so that the resident memory it measures is this store's alone); ``keep`` leaves the filled
    store's folder in place (to study a restart)."""
    data = prepare(n_queries)
    corpus = corpus_of(data.real, size, np.random.default_rng(size))
    note = ""
    if size > len(data.real):
        extra = corpus[len(data.real) :]
        nearest = float(np.mean(np.max(extra[:2000] @ data.real.T, axis=1)))
        note = (
            f"At {size:,} the {size - len(data.real):,} extra vectors are synthetic "
            f"(`extra_vectors`: a real vector + 0.25 x another real vector + isotropic noise of "
            f"norm 0.25, renormalised); an extra vector's nearest real vector has cosine "
            f"{nearest:.3f} on average."
        )
    gc.collect()
    folder = Path(tempfile.mkdtemp(dir=CACHE_DIR, prefix="store-"))
    try:
        result = asyncio.run(
            measure_store(corpus, data.real_questions, data.queries, folder, answer_bytes, encoding)
        )
    finally:
        if keep:
            print(f"the filled store is kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"note": note, **asdict(result)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few queries")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="default: the committed results (quick: scratch)")
    parser.add_argument("--answer-bytes", type=int, default=1024, help="each answer's content")
    parser.add_argument(
        "--encoding", choices=["float16", "float32"], default="float16", help="vectors held as"
    )
    parser.add_argument(
        "--keep-store", action="store_true", help="keep each filled store (to study a restart)"
    )
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--restart", type=Path, help=argparse.SUPPRESS)  # the restart's process
    parser.add_argument("--restart-now", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    n_queries = 200 if args.quick else args.queries
    if args.restart:
        restart(args.restart, args.restart_now, args.encoding)
        return
    if args.one_size:
        one_size(args.one_size, n_queries, args.answer_bytes, args.encoding, args.keep_store)
        return
    if args.out is None:
        args.out = CACHE_DIR / "store_lookup.quick.md" if args.quick else RESULTS
    sizes = [2_000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    switch_sizes = [1_000, 5_000] if args.quick else [1_000, 2_000, 5_000, 10_000, 20_000, 50_000]

    load_at_start = os.getloadavg()[0]
    data = prepare(n_queries)
    print(f"{data.questions:,} questions; {data.source}", flush=True)
    print("switch threshold:", flush=True)
    switch = switch_table(data.real, data.queries, switch_sizes, args.encoding)
    results: dict[int, StoreResult] = {}
    notes = []
    for size in sizes:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one-size",
                str(size),
                "--queries",
                str(n_queries),
                "--answer-bytes",
                str(args.answer_bytes),
                "--encoding",
                args.encoding,
                *(["--keep-store"] if args.keep_store else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        notes.append(measured.pop("note"))
        measured["sweep"] = [tuple(row) for row in measured["sweep"]]
        results[size] = r = StoreResult(**measured)
        print(
            f"{size:,}: {r.kind} p50 {ms(r.p50)} ms p99 {ms(r.p99)} ms recall {r.recall:.4f} "
            f"memory {r.memory:.0f} B/entry, RSS {r.rss / 2**20:.0f} MiB, counted "
            f"{r.counted:.0f} B/entry, fill {r.filled:.0f} s, indexed {r.indexed:.0f} s, "
            f"restart {r.restart:.1f} s ({r.graphs_loaded} graphs loaded)",
            flush=True,
        )
        for row in r.sweep:
            print("  ef", row, flush=True)
    command = (
        "python benchmarks/store_lookup.py"
        + (" --quick" if args.quick else f" --sizes {args.sizes}")
        + f" --answer-bytes {args.answer_bytes} --encoding {args.encoding}"
    )
    intro = [
        f"Load average at the start {load_at_start:.1f}: the machine is shared, and a busy core "
        "shows up in the p99 columns.",
        "",
        f"Data: {data.questions:,} distinct questions of `{shown(PAIRS)}`, embedded "
        f"with all-MiniLM-L6-v2 (384 dims) — {data.source}. {n_queries:,} questions held out at "
        "random are the queries (never in the store); the rest fill it. Each answer's content "
        f"is about {args.answer_bytes:,} bytes of real questions' text. "
        + " ".join(filter(None, notes)),
    ]
    write_report(
        args.out,
        title="Embedded store lookup: latency, memory, recall",
        command=command,
        lines=intro + report_lines(switch, results, args.encoding),
    )


def report_lines(
    switch: list[str], results: dict[int, StoreResult], encoding: Encoding
) -> list[str]:
    defaults = IndexOptions(encoding=encoding)
    kind = "IndexHNSWSQ (float16)" if encoding == "float16" else "IndexHNSWFlat (float32)"
    lines = [
        "",
        f"Index defaults: exact below {defaults.approximate_above:,} vectors, then faiss "
        f"`{kind}` (M={defaults.hnsw_m}, efConstruction={defaults.ef_construction}, "
        f"efSearch={defaults.ef_search}, inner product). Recall@1: the share of queries whose "
        f"top hit has the exact search's best similarity.",
        "",
        "## The store, all entries in one scope",
        "",
        "`search` is `EmbeddedStore.search(k=1)` including the re-check against the entries; "
        "recall@1 asks whether it found the entry exact float32 search ranks first. Memory is "
        "measured twice: while filling (the process's resident growth per entry, `put` by `put`; "
        "that process also holds the benchmark's own vectors and queries, in its RSS) and "
        "serving, in a fresh process that opens the closed store as a deploy would (its "
        "resident growth per entry while opening, and its RSS once open). Counted is what an "
        "entry counts toward `FRUGAL_CACHE_MAX_BYTES` (compressed answer, prompt, id, vector "
        "as held); fill is `put` of every entry, one by one, then waiting for the index build; "
        "restart is that fresh process's `EmbeddedStore.open` (SQLite rows, the index file), "
        "right after the fill wrote its gigabytes; restart again is a second fresh process "
        "opening it just after, with the files in the page cache, as a restart on the same "
        "host usually finds them.",
        "",
        "| entries | index | search p50 (ms) | search p99 (ms) | recall@1 | get_exact p50 (ms) "
        "| memory / entry filling | RSS filling (MiB) | counted / entry | fill (s) "
        "| fill + index (s) | restart (s) | restart again (s) | graphs loaded "
        "| memory / entry serving | RSS serving (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, r in results.items():
        lines.append(
            f"| {size:,} | {r.kind} | {ms(r.p50)} | {ms(r.p99)} | {r.recall:.4f} "
            f"| {ms(r.exact_p50)} | {r.memory / 1024:.2f} KiB | {r.rss / 2**20:.0f} "
            f"| {r.counted:,.0f} B | {r.filled:.0f} | {r.indexed:.0f} "
            f"| {'—' if r.restart is None else f'{r.restart:.1f}'} "
            f"| {'—' if r.restart_again is None else f'{r.restart_again:.1f}'} | {r.graphs_loaded} "
            f"| {r.restart_memory / 1024:.2f} KiB | {r.restart_rss / 2**20:.0f} |"
        )
    largest = max(results)
    top = results[largest]
    checks = [
        ("search p50 <= 1 ms", top.p50 <= 0.001, f"{ms(top.p50)} ms"),
        ("search p99 <= 5 ms", top.p99 <= 0.005, f"{ms(top.p99)} ms"),
        (
            "memory per entry beyond the compressed answer <= 2 KiB, filling",
            top.memory - top.answer <= 2048,
            f"{(top.memory - top.answer) / 1024:.2f} KiB (answer {top.answer:.0f} B)",
        ),
        (
            "memory per entry beyond the compressed answer <= 2 KiB, serving after a restart",
            top.restart_memory - top.answer <= 2048,
            f"{(top.restart_memory - top.answer) / 1024:.2f} KiB",
        ),
        ("recall@1 >= 0.99", top.recall >= 0.99, f"{top.recall:.4f}"),
        (
            "restart <= 15 s",
            top.restart is not None and top.restart <= 15,
            f"{top.restart:.1f} s; again, the files cached: {top.restart_again:.1f} s",
        ),
    ]
    if 100_000 in results:
        at_100k = results[100_000]
        checks.append(
            (
                "RSS at 100k <= 400 MiB, serving after a restart",
                at_100k.restart_rss <= 400 * 2**20,
                f"{at_100k.restart_rss / 2**20:.0f} MiB",
            )
        )
    lines += ["", f"Against the goals at {largest:,} entries:", ""]
    lines += [f"- {goal}: {'met' if ok else 'NOT met'} ({got})" for goal, ok, got in checks]
    lines += [
        "",
        f"Memory per entry, roughly: the vector, held once by the index "
        f"({defaults.bytes_per_dimension * DIMENSIONS:,} B), HNSW links (about "
        f"{8 * defaults.hnsw_m} B at the bottom layer), the compressed answer, the rest the "
        "entry table: number columns and codes (about 80 B), the prompt, the id and prompt hash "
        "as bytes, the id and prompt maps and the index's own key map.",
    ]
    lines += ["", "## efSearch: recall@1 and latency of the HNSW index", ""]
    for size, r in results.items():
        if not r.sweep:
            continue
        lines += [
            f"{size:,} entries:",
            "",
            "| efSearch | recall@1 | p50 (ms) | p99 (ms) |",
            "|---:|---:|---:|---:|",
        ]
        lines += [f"| {ef} | {rec:.4f} | {ms(p50)} | {ms(p99)} |" for ef, rec, p50, p99 in r.sweep]
        lines.append("")
    lines += [
        "## Switch threshold: exhaustive search vs HNSW by scope size",
        "",
        "Index-level search (`ScopeIndex.search`, k=1), same queries, HNSW at the default "
        "efSearch.",
        "",
        *switch,
    ]
    return lines


if __name__ == "__main__":
    main()
