"""The int8 variant of a tuned graph, and whether to recommend it over fp32.

ONNX Runtime's dynamic quantisation stores the weights as int8, per output channel (per
tensor lost too much: mean cosine to the fp32 vectors 0.967 on Quora questions, against
0.994), and quantises activations on the fly. It is recommended only when it keeps the
precision of fp32 at the same recall (within `PRECISION_TOLERANCE`) and embeds faster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from itertools import cycle, islice
from pathlib import Path

from frugal.cache.embedder import Embedder
from frugal.tuning.calibration import AtRecall

INT8_FILENAME = "all-MiniLM-L6-v2.int8.onnx"
PRECISION_TOLERANCE = 0.005
SPEED_TEXTS = 1000
SPEED_BATCH = 32  # the serving micro-batcher's largest call
QUANTISATION = {"method": "onnxruntime.quantize_dynamic", "weights": "int8", "per_channel": True}


def quantize_int8(source: Path, destination: Path) -> None:
    """Write the int8 variant of the fp32 graph ``source`` to ``destination``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs a suggestion to pre-process the graph on the root logger; that pre-processing
    # (symbolic shape inference) fails on this graph, and the advice is noise here.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(source, destination, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def texts_per_second(
    embedders: dict[str, Embedder], texts: Sequence[str], *, count: int = SPEED_TEXTS
) -> dict[str, float]:
    """Each embedder's speed on ``count`` texts (``texts`` repeated as needed) in calls of
    `SPEED_BATCH`; the best of two rounds, taken in turns so a busy moment of the machine
    does not fall on one of them only."""
    sample = list(islice(cycle(texts), count))
    best = dict.fromkeys(embedders, 0.0)
    for _ in range(2):
        for name, embedder in embedders.items():
            embedder.embed(sample[:SPEED_BATCH])  # warm-up: the first call allocates
            started = time.perf_counter()
            for start in range(0, count, SPEED_BATCH):
                embedder.embed(sample[start : start + SPEED_BATCH])
            best[name] = max(best[name], count / (time.perf_counter() - started))
    return best


def recommend_int8(
    fp32: AtRecall | None, int8: AtRecall | None, *, fp32_speed: float, int8_speed: float
) -> bool:
    """Whether int8 keeps fp32's precision at the same recall (within the tolerance) and is
    faster."""
    if fp32 is None or int8 is None:
        return False
    return int8.precision >= fp32.precision - PRECISION_TOLERANCE and int8_speed > fp32_speed
