"""The files an offline tool leaves behind: ``NAME.json`` (its table) and ``NAME.png`` (a chart
by threshold), side by side in one folder, written the same way by `frugal tune` and
`frugal analyze`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugal.plots import pyplot, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def write_json_and_png(
    out: Path, name: str, table: dict[str, Any], draw: Callable[[Axes], None]
) -> tuple[Path, Path]:
    """Write ``out/NAME.json`` (``table``, indented) and ``out/NAME.png``, creating ``out``.

    The chart is one axis with thresholds (cosine similarity) along x and a grid; ``draw``
    adds the series, the y range, the title and the legend. Returns the JSON's path, then the
    PNG's. Example: ``write_json_and_png(Path("out"), "tune", {...}, draw)`` writes
    ``out/tune.json`` and ``out/tune.png``.
    """
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = out / f"{name}.json"
    written.write_text(json.dumps(table, indent=2))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    draw(axis)
    axis.set_xlabel("threshold (cosine similarity)")
    axis.grid(alpha=0.3)
    return written, save(figure, out / f"{name}.png")
