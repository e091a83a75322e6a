"""Does tuning on a deployment's own labels make its cache serve fewer wrong answers?

    python benchmarks/feedback_loop.py

The loop frugal offers an operator, measured on CLINC150 (``data/clinc150/intents.jsonl.gz``),
in the order shuffled with seed 0, cut in two parts that share no utterance:

1. **Operation.** The first part goes through a fresh cache with the base model, and each
   pair (the asked utterance, the cached one it was compared with) is labelled as operation
   labels it, by whether the two have the same intent (and neither is `oos`):
   - ``--first-pass shadow`` (the default): shadow mode, which serves nothing from the cache
     and compares every request's answer with the nearest entry's at or above its floor
     (0.70): agreeing answers are positives, diverged ones negatives;
   - ``--first-pass serving``: the cache serving at ``--first-threshold``; a wrong hit is what
     ``POST /admin/cache/feedback`` records as a negative, and the hits nobody reported are
     taken as positives.
2. **Tuning.** ``frugal model tune --pairs <those pairs> --balance`` from the base model
   (resumable: run this again after an interruption and it goes on). ``--balance`` weighs
   the two labels equally: operation's labels are mostly agreeing pairs, and unweighted they
   teach the model that everything is the same (``--no-balance`` shows it).
3. **The next part of the stream.** The second part, never trained on, is replayed through a
   fresh cache per model; for each base threshold 0.85-0.95 the tuned model is read at the same
   hit rate (`frugal.analysis.same_savings`), so the two are compared at the same savings.

Writes ``benchmarks/results/feedback_loop.md`` (``--out``) and the labels and model under
``.frugal/feedback/<first pass>/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _data import INTENTS, ROOT, shown  # noqa: E402
from _machine import write_report  # noqa: E402
from tuned_model import CLINC_SHUFFLE, embed_cached, model_key, same_hit_rate  # noqa: E402

from frugal.analysis.models import Model, load_models  # noqa: E402
from frugal.analysis.replay import Prompt, load_prompts, neighbours, replay_semantic, wrong  # noqa: E402
from frugal.cache.scope import normalise  # noqa: E402
from frugal.cache.shadow import FLOOR as SHADOW_FLOOR  # noqa: E402
from frugal.config import load_settings  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "feedback_loop.md"
WORK = ROOT / ".frugal" / "feedback"


def split_stream(prompts: list[Prompt], share: float) -> tuple[list[Prompt], list[Prompt]]:
    """The first ``share`` of the stream, and the rest less every utterance (normalised) that
    the first part holds, so that nothing tuned on is measured."""
    cut = int(len(prompts) * share)
    first = prompts[:cut]
    seen = {normalise(prompt.text) for prompt in first}
    return first, [prompt for prompt in prompts[cut:] if normalise(prompt.text) not in seen]


def operation_labels(
    first: list[Prompt], base: Model, first_pass: str, threshold: float, path: Path
) -> tuple[int, int]:
    """Label the pairs of ``first``'s first pass (see the module's docstring) and write them
    to ``path``; the counts of agreeing and diverging pairs."""
    vectors, _ = embed_cached(base.embedder, model_key(base), [p.text for p in first])
    floor = SHADOW_FLOOR if first_pass == "shadow" else threshold
    near = neighbours(vectors, [p.scope for p in first], floor=floor)
    if first_pass == "shadow":  # every answer is stored; each is compared with its nearest
        compared = [int(n.indices[0]) if len(n.indices) else -1 for n in near]
    else:
        compared = replay_semantic(first, near, threshold).answered_by
    right = wrong_hits = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for asked, cached in enumerate(compared):
            if cached < 0:
                continue
            same = not wrong(first[asked], first[cached])
            right += same
            wrong_hits += not same
            pair = {"a": first[asked].text, "b": first[cached].text, "label": int(same)}
            out.write(json.dumps(pair) + "\n")
    return right, wrong_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-share", type=float, default=0.5, help="the first part's share")
    parser.add_argument("--first-pass", choices=("shadow", "serving"), default="shadow")
    parser.add_argument("--first-threshold", type=float, default=0.85, help="when serving")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    prompts = load_prompts(INTENTS, shuffle_seed=CLINC_SHUFFLE)
    first, second = split_stream(prompts, args.first_share)
    settings = load_settings()
    (base,) = load_models(["base"], backend="onnx", model_dir=settings.models_path)
    work = WORK / args.first_pass
    labels = work / "pairs.jsonl"
    right, wrong_hits = operation_labels(first, base, args.first_pass, args.first_threshold, labels)
    print(f"operation: {right} agreeing and {wrong_hits} diverging pairs labelled in {labels}")
    model_dir = work / ("model" if args.balance else "model-unbalanced")
    tune = [
        sys.executable, "-m", "frugal", "model", "tune", "--pairs", str(labels),
        "--out", str(model_dir), "--epochs", str(args.epochs),
        "--balance" if args.balance else "--no-balance",
    ]  # fmt: skip
    tune_started = time.perf_counter()
    subprocess.run(tune, check=True)
    tune_seconds = time.perf_counter() - tune_started
    # Labelled as the results name paths: from the repository root, where this runs.
    choices = ["base", shown(model_dir)]
    models = load_models(choices, backend="onnx", model_dir=settings.models_path)
    table, _ = same_hit_rate(second, models)
    lines = [
        f"CLINC150 (`{shown(INTENTS)}`, {len(prompts):,} utterances, shuffled with seed "
        f"{CLINC_SHUFFLE}), cut in two: the first {len(first):,} are operation, the other "
        f"{len(second):,} (less {len(prompts) - len(first) - len(second)} that repeat an "
        f"utterance of the first part) the stream that follows.",
        "",
        "## 1. Labels from operation",
        "",
        (
            f"The first part in shadow mode with base (floor {SHADOW_FLOOR:.2f}): "
            f"{right + wrong_hits:,} comparisons with the nearest entry, {right:,} agreeing "
            f"(positives) and {wrong_hits:,} diverging (negatives)."
            if args.first_pass == "shadow"
            else f"The first part served with base at {args.first_threshold:.2f}: "
            f"{right + wrong_hits:,} hits, {wrong_hits:,} of them wrong (reported as feedback: "
            f"negatives) and {right:,} not reported (positives)."
        ),
        "",
        "## 2. Tuned on them",
        "",
        f"`{shlex.join(['frugal', *tune[3:]]).replace(str(ROOT) + '/', '')}` "
        f"(`{shown(model_dir)}`, not committed): "
        f"{tune_seconds / 60:.1f} min on this machine (the tune holds out a tenth of the pairs' "
        f"question clusters to validate itself).",
        "",
        "## 3. The rest of the stream, never trained on",
        "",
        "Replayed through a fresh cache per model. For each threshold of base, the tuned model "
        "at the same hit rate: its threshold and wrong-hit share, and that share of base's "
        "hits as a count, with the difference.",
        "",
        *table,
        "",
        f"The run took {time.perf_counter() - started:.0f} s.",
    ]
    command = "python benchmarks/feedback_loop.py " + shlex.join(sys.argv[1:])
    write_report(
        args.out,
        title="The feedback loop: tuned on operation's labels, measured on the rest of the stream",
        command=command,
        lines=lines,
    )


if __name__ == "__main__":
    main()
