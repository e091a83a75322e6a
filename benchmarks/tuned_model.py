"""Is a tuned embedding model better than the base one everywhere we can measure?

    python benchmarks/tuned_model.py --models base,quora

The first model of ``--models`` is the reference (the default, ``base``); each other one is
measured against it. Writes ``benchmarks/results/tuned_model.md`` and ``tuned_model.png``
(``--out`` elsewhere). A model becomes a candidate for the default only when it is better on
both counts:

1. Quora pairs it never saw: the question clusters of ``data/qqp/pairs.jsonl.gz`` that
   ``frugal model tune`` held out (`frugal.tuning.pairs.cluster_split`, with the seed and share
   the tuned model's manifest records). Precision, recall and wrong hits by threshold, and the
   headline at the threshold where a model's recall (its share of the duplicates served from
   the cache) reaches 0.40: its precision (goal: 0.89) and the share of its hits that are wrong
   (goal: half the reference's), so models are compared at the same savings.
2. CLINC150 (``data/clinc150/intents.jsonl.gz``, never trained on), replayed through a fresh
   cache per model (`frugal.analysis.replay`, in the order shuffled with seed 0, as
   ``benchmarks/threshold_tools.py`` replays it): for each reference threshold 0.85-0.95, the
   reference's hit rate and wrong-hit rate, and each other model's wrong-hit rate at the same
   hit rate (interpolated between its own thresholds). The verdict says whether it serves more
   wrong answers than the reference anywhere in that range.
3. A tuned model's int8 and fp32 graphs, when its directory has both, on the Quora pairs.

Only the held-out pairs' questions and the CLINC150 utterances are embedded, once per model and
graph; the vectors are kept under ``.frugal/bench/`` (checked against a fresh embedding of a
sample on every run).
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, PAIRS, ROOT, shown  # noqa: E402
from _machine import write_report  # noqa: E402

from frugal.analysis.embedding import embed_all  # noqa: E402
from frugal.analysis.models import Model, load_models, parse_models  # noqa: E402
from frugal.analysis.replay import Prompt, load_prompts, neighbours  # noqa: E402
from frugal.analysis.same_savings import (  # noqa: E402
    at_hit_rate,
    curve_spanning,
    replay_points,
)
from frugal.analysis.thresholds import Pair, evaluate  # noqa: E402
from frugal.bench.report import share  # noqa: E402
from frugal.cache.embedder import Embedder, OnnxEmbedder  # noqa: E402
from frugal.config import load_settings  # noqa: E402
from frugal.plots import pyplot, save  # noqa: E402
from frugal.tuning.calibration import RECALL_TARGET, at_recall, labels  # noqa: E402
from frugal.tuning.pairs import (  # noqa: E402
    DEFAULT_SEED,
    DEFAULT_VALIDATION_SHARE,
    cluster_split,
    read_pairs,
)

OUT = ROOT / "benchmarks" / "results" / "tuned_model.md"
CACHE_DIR = ROOT / ".frugal" / "bench"
# frugal model tune's defaults, for models whose manifest does not name this file's split.
PRECISION_GOAL = 0.89
TABLE_THRESHOLDS = (0.60, 0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)
REFERENCE_THRESHOLDS = tuple(round(0.85 + 0.01 * step, 2) for step in range(11))
CLINC_SHUFFLE = 0
SAMPLE = 32  # cached rows re-embedded to check the cache
COLOURS = ("#3d5afe", "#1f9d6b", "#d9822b", "#8e44ad")


def embed_cached(embedder: Embedder, key: str, texts: list[str]) -> tuple[np.ndarray, bool]:
    """Vectors of ``texts``, from ``.frugal/bench/`` when a sample re-embedded agrees with the
    cached rows (else computed again and kept); whether they came from the cache."""
    digest = hashlib.sha256("\n".join([key, *texts]).encode()).hexdigest()[:16]
    cached = CACHE_DIR / f"tuned-{digest}.npy"
    if cached.exists():
        vectors = np.load(cached)
        sample = np.random.default_rng(0).choice(len(texts), min(SAMPLE, len(texts)), replace=False)
        fresh = embedder.embed([texts[i] for i in sample])
        if vectors.shape[0] == len(texts) and np.abs(fresh - vectors[sample]).max() < 1e-4:
            return vectors, True
    vectors = embed_all(embedder, texts, label=f"embedding {len(texts):,} texts ({key})")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors, False


@dataclass
class Measured:
    """One model (or graph) on the held-out Quora pairs: ``sims`` pair by pair."""

    label: str
    sims: np.ndarray
    cached: bool


def pair_similarities(embedder: Embedder, key: str, pairs: list[Pair]) -> tuple[np.ndarray, bool]:
    texts = list(dict.fromkeys(text for pair in pairs for text in (pair.a, pair.b)))
    row = {text: i for i, text in enumerate(texts)}
    vectors, cached = embed_cached(embedder, key, texts)
    a = vectors[[row[pair.a] for pair in pairs]]
    b = vectors[[row[pair.b] for pair in pairs]]
    return np.einsum("ij,ij->i", a, b), cached


def model_key(model: Model, graph: str | None = None) -> str:
    return f"{model.spec.id}/{graph or model.spec.graph}"


def the_split(
    models: list[Model], data_sha256: str, args: argparse.Namespace
) -> tuple[int, float, str]:
    """The seed and share to hold out, and where they come from: the flags, else the tuned
    models' manifests (which must agree), else frugal model tune's defaults."""
    if args.seed is not None or args.validation_share is not None:
        seed = DEFAULT_SEED if args.seed is None else args.seed
        fraction = (
            DEFAULT_VALIDATION_SHARE if args.validation_share is None else args.validation_share
        )
        return seed, fraction, "as given"
    recorded = {
        (model.spec.manifest["seed"], model.spec.manifest["data"]["validation_share"])
        for model in models
        if model.spec.manifest is not None
        and model.spec.manifest.get("data", {}).get("sha256") == data_sha256
    }
    if len(recorded) > 1:
        sys.exit(f"the tuned models held out different splits {sorted(recorded)}: give --seed")
    if recorded:
        seed, fraction = recorded.pop()
        return seed, fraction, "the tuned model's own, from its manifest (never trained on)"
    return (
        DEFAULT_SEED,
        DEFAULT_VALIDATION_SHARE,
        "frugal model tune's defaults (no manifest names this file)",
    )


def operating_point(sims: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    """Where recall reaches the target: threshold, recall, precision, hits and wrong hits."""
    point = at_recall(sims, same, RECALL_TARGET)
    assert point is not None, "the held-out pairs hold duplicates"
    hit = sims >= point.threshold
    wrong = int((hit & ~same).sum())
    return {
        "threshold": point.threshold,
        "recall": point.recall,
        "precision": point.precision,
        "hits": int(hit.sum()),
        "wrong": wrong,
        "wrong_share": wrong / int(hit.sum()),
    }


def quora_section(
    models: list[Model], args: argparse.Namespace
) -> tuple[list[str], dict[str, Any]]:
    data = read_pairs(PAIRS)
    seed, fraction, why = the_split(models, data.sha256, args)
    held = cluster_split(data.pairs, share=fraction, seed=seed).validation
    same = labels(held)
    measured = []
    for model in models:
        sims, cached = pair_similarities(model.embedder, model_key(model), held)
        measured.append(Measured(model.label, sims, cached))
    points = [operating_point(m.sims, same) for m in measured]
    reference = points[0]
    lines = [
        "## Quora pairs the tuned model never saw",
        "",
        f"{len(held):,} pairs ({int(same.sum()):,} duplicates) of `{shown(PAIRS)}`: the question "
        f"clusters held out with seed {seed} and share {fraction}, {why}. A pair is a hit when "
        f"its cosine similarity is at or above the threshold.",
        "",
        f"At the same savings: the threshold where each model serves {RECALL_TARGET:.0%} of the "
        f"duplicates from the cache (recall ≥ {RECALL_TARGET}), and how many of its hits are "
        f"wrong there. Goals for a tuned model: precision ≥ {PRECISION_GOAL}, wrong hits at "
        f"most half the reference's ({share(reference['wrong_share'] / 2)}).",
        "",
        "| model | threshold | recall | precision | hits | wrong hits | wrong-hit share | goals |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for number, (m, point) in enumerate(zip(measured, points, strict=True)):
        goals = "reference"
        if number:
            met = [
                f"precision {'≥' if point['precision'] >= PRECISION_GOAL else '<'} "
                f"{PRECISION_GOAL}",
                "wrong hits "
                + ("≤" if point["wrong_share"] <= reference["wrong_share"] / 2 else ">")
                + " half",
            ]
            goals = "; ".join(met)
        lines.append(
            f"| {m.label} | {point['threshold']:.3f} | {point['recall']:.3f} "
            f"| {point['precision']:.3f} | {point['hits']:,} | {point['wrong']:,} "
            f"| {share(point['wrong_share'])} | {goals} |"
        )
    lines += recorded_lines(models, points, (seed, fraction), data.sha256)
    header = " | ".join(f"{m.label}: precision / recall / wrong hits" for m in measured)
    lines += ["", f"| threshold | {header} |", "|---:|" + "---:|" * len(measured)]
    tables = [evaluate(m.sims, same, TABLE_THRESHOLDS) for m in measured]
    for index, threshold in enumerate(TABLE_THRESHOLDS):
        cells = [
            f"{share(t[index].precision)} / {share(t[index].recall)} / {share(t[index].wrong_hit_rate)}"
            for t in tables
        ]
        lines.append(f"| {threshold:.2f} | " + " | ".join(cells) + " |")
    sources = ", ".join(f"{m.label}: {'cache' if m.cached else 'embedded now'}" for m in measured)
    lines += ["", f"Vectors: {sources}."]
    better = [p["precision"] > reference["precision"] for p in points[1:]]
    found = {"measured": measured, "pairs": held, "same": same, "points": points, "better": better}
    return lines, found


def recorded_lines(
    models: list[Model], points: list[dict[str, Any]], split: tuple[int, float], data: str
) -> list[str]:
    """Each tuned model's own figure at the same point, from its manifest, as a cross-check."""
    lines = []
    for model, point in zip(models, points, strict=True):
        manifest = model.spec.manifest
        if manifest is None or manifest.get("data", {}).get("sha256") != data:
            continue
        if (manifest.get("seed"), manifest["data"].get("validation_share")) != split:
            continue
        own = manifest["calibration"]["tuned"][model.spec.variant]["at_recall"]
        lines.append(
            f"\n{model.label}'s manifest recorded precision {own['precision']:.3f} at threshold "
            f"{own['threshold']:.3f} on the same pairs (measured here: {point['precision']:.3f})."
        )
    return lines


def clinc_section(models: list[Model]) -> tuple[list[str], dict[str, Any]]:
    prompts = load_prompts(INTENTS, shuffle_seed=CLINC_SHUFFLE)
    table, found = same_hit_rate(prompts, models)
    lines = [
        "## CLINC150, never trained on",
        "",
        f"{len(prompts):,} utterances of `{shown(INTENTS)}` (all splits), replayed in an order "
        f"shuffled with seed {CLINC_SHUFFLE} through a fresh, unbounded cache per model. A hit is "
        f"wrong when the cached utterance has another intent, or either is `oos`. For each "
        f"threshold of {models[0].label}, every other model at the same hit rate (the same "
        f"savings): its threshold and wrong-hit share, interpolated between two of its own, and "
        f"that share of {models[0].label}'s hits as a count, with the difference.",
        "",
        *table,
    ]
    return lines, found


def same_hit_rate(prompts: list[Prompt], models: list[Model]) -> tuple[list[str], dict[str, Any]]:
    """``prompts`` (with intents) replayed through each model's fresh cache: the table of the
    reference's thresholds with every other model at the same hit rate, and the verdicts."""
    texts = [prompt.text for prompt in prompts]
    embedded = [embed_cached(model.embedder, model_key(model), texts) for model in models]
    vectors = [found for found, _ in embedded]
    near = neighbours(vectors[0], [p.scope for p in prompts], floor=min(REFERENCE_THRESHOLDS))
    reference = replay_points(prompts, near, list(REFERENCE_THRESHOLDS))
    rates = [point.hit_rate for point in reference]
    curves = [
        curve_spanning(prompts, v, low=min(rates), high=max(rates), include=REFERENCE_THRESHOLDS)
        for v in vectors[1:]
    ]
    header = "".join(f" {m.label}: threshold, wrong hits |" for m in models[1:])
    lines = [
        f"| {models[0].label}: threshold | hit rate | wrong hits |{header}",
        "|---:|---:|---:|" + "---:|" * len(curves),
    ]
    worse: list[list[str]] = [[] for _ in curves]
    for point in reference:
        cells = []
        for number, curve in enumerate(curves):
            found = at_hit_rate(curve, point.hit_rate)
            if found is None:
                cells.append("out of its range")
                continue
            threshold, wrong_rate = found
            if wrong_rate > point.wrong_rate + 1e-9:
                worse[number].append(f"{point.threshold:.2f}")
            estimate = wrong_rate * point.hits  # its wrong hits, were it to serve as many
            cells.append(
                f"{threshold:.3f}, {share(wrong_rate)} (≈{estimate:.0f}, "
                f"{estimate - point.wrong_hits:+.0f})"
            )
        lines.append(
            f"| {point.threshold:.2f} | {share(point.hit_rate)} "
            f"| {share(point.wrong_rate)} ({point.wrong_hits:,}) | " + " | ".join(cells) + " |"
        )
    sources = ", ".join(
        f"{m.label}: {'cache' if cached else 'embedded now'}"
        for m, (_, cached) in zip(models, embedded, strict=True)
    )
    lines += ["", f"Vectors: {sources}.", ""]
    for model, where in zip(models[1:], worse, strict=True):
        lines.append(
            f"**{model.label} serves more wrong answers than {models[0].label} at the same hit "
            f"rate at {len(where)} of {len(reference)} thresholds** ({', '.join(where)})."
            if where
            else f"**{model.label} serves no more wrong answers than {models[0].label} anywhere "
            f"in {REFERENCE_THRESHOLDS[0]:.2f}-{REFERENCE_THRESHOLDS[-1]:.2f}** at the same hit "
            f"rate."
        )
    return lines, {"reference": reference, "curves": curves, "worse": worse}


def variants_section(models: list[Model], pairs: list[Pair], same: np.ndarray) -> list[str]:
    """fp32 against int8 for each tuned model whose manifest names both files, both there."""
    lines: list[str] = []
    for model in models:
        manifest = model.spec.manifest
        variants = {} if manifest is None else manifest.get("variants", {})
        files = {name: variants[name]["file"] for name in ("fp32", "int8") if name in variants}
        if len(files) < 2 or not all((model.spec.directory / f).is_file() for f in files.values()):
            continue
        if not lines:
            lines = [
                "## int8 against fp32",
                "",
                f"| model | graph | served | texts/s (manifest) | threshold at recall {RECALL_TARGET} "
                "| precision | wrong-hit share |",
                "|---|---|---|---:|---:|---:|---:|",
            ]
        sims = {}
        for name, graph in files.items():
            embedder = OnnxEmbedder(model.spec.directory, graph=graph)
            sims[name] = pair_similarities(embedder, model_key(model, graph), pairs)[0]
            point = operating_point(sims[name], same)
            lines.append(
                f"| {model.label} | {name} | {'yes' if name == model.spec.variant else 'no'} "
                f"| {variants[name].get('texts_per_s', '–')} | {point['threshold']:.3f} "
                f"| {point['precision']:.3f} | {share(point['wrong_share'])} |"
            )
        gap = float(np.abs(sims["fp32"] - sims["int8"]).max())
        lines += ["", f"{model.label}: the two graphs' similarities differ by at most {gap:.4f}."]
    return lines


def plot(path: Path, quora: dict[str, Any], clinc: dict[str, Any], models: list[Model]) -> Path:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    same = quora["same"]
    for number, measured in enumerate(quora["measured"]):
        order = np.argsort(-measured.sims)
        right_hits = np.cumsum(same[order])
        recall = right_hits / same.sum()
        precision = right_hits / np.arange(1, len(order) + 1)
        left.plot(recall, precision, color=COLOURS[number % len(COLOURS)], label=measured.label)
    left.axvline(RECALL_TARGET, color="#8a93a6", linestyle=":", linewidth=1)
    left.axhline(PRECISION_GOAL, color="#c0392b", linestyle=":", linewidth=1, label="goal")
    left.set(xlabel="recall (duplicates served)", ylabel="precision", ylim=(0.5, 1.0))
    left.set_title("Quora pairs held out from tuning")
    curves = [clinc["reference"], *clinc["curves"]]
    for number, (model, points) in enumerate(zip(models, curves, strict=True)):
        x = [point.hit_rate for point in points]
        colour = COLOURS[number % len(COLOURS)]
        wrong = [point.wrong_rate for point in points]
        right.plot(x, wrong, "o-", markersize=3, color=colour, label=model.label)
    right.set(xlabel="hit rate (calls saved)", ylabel="wrong hits (share of hits)")
    right.set_title("CLINC150 replayed, at the same hit rate")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
    return save(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="base,quora", help="the reference first")
    parser.add_argument("--seed", type=int, help="the split's seed (default: the manifest's)")
    parser.add_argument("--validation-share", type=float, help="the split's share (likewise)")
    parser.add_argument("--out", type=Path, default=OUT, help="the markdown; the PNG beside it")
    args = parser.parse_args()
    started = time.perf_counter()
    chosen = load_settings()
    models = load_models(parse_models(args.models), backend="onnx", model_dir=chosen.models_path)
    if len(models) < 2:
        sys.exit("--models needs the reference and at least one model to compare")
    quora_lines, quora = quora_section(models, args)
    clinc_lines, clinc = clinc_section(models)
    served = ", ".join(f"`{m.label}` ({m.spec.id}, {m.spec.graph})" for m in models)
    verdicts = []
    for number, model in enumerate(models[1:]):
        everywhere = quora["better"][number] and not clinc["worse"][number]
        verdicts.append(
            f"**{model.label} is better than {models[0].label} everywhere measured here**"
            if everywhere
            else f"**{models[0].label} stays the default**: {model.label} is not better "
            f"everywhere measured here"
            + ("" if quora["better"][number] else " (not more precise on held-out Quora pairs)")
            + ("" if not clinc["worse"][number] else " (more wrong hits on CLINC150)")
        )
    variants = variants_section(models, quora["pairs"], quora["same"])
    picture = args.out.with_suffix(".png")
    plot(picture, quora, clinc, models)
    lines = [
        f"Models: {served}; the first is the reference.",
        "",
        *verdicts,
        "",
        *quora_lines,
        "",
        *clinc_lines,
        "",
        *variants,
        *([""] if variants else []),
        f"![tuned model]({picture.name})",
        "",
        f"The run took {time.perf_counter() - started:.0f} s.",
    ]
    command = "python benchmarks/tuned_model.py " + shlex.join(sys.argv[1:])
    write_report(
        args.out, title="A tuned embedding model against the base one", command=command, lines=lines
    )


if __name__ == "__main__":
    main()
