"""The training progress bar: pairs done of the plan, pairs per second, loss, time left."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn


class TrainingProgress:
    """A rich progress bar on stderr for ``total`` pairs, ``done`` of them already (a resumed
    run). The rate counts this run's pairs over this run's time; the time left is the sooner
    of the pairs left at that rate and what is left of ``budget_s`` (``None``: no budget).

    Use as a context manager; call `advance` after each step.
    """

    def __init__(self, *, total: int, done: int, budget_s: float | None, spent_s: float) -> None:
        self._total = total
        self._done = done
        self._budget_left_s = None if budget_s is None else budget_s - spent_s
        self._started = time.monotonic()
        self._pairs = 0
        self._progress = Progress(
            TextColumn("tuning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pairs  {task.fields[rate]}  loss {task.fields[loss]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        self._task = self._progress.add_task(
            "tuning", total=self._total, completed=self._done, rate="-", loss="-", eta="-"
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def advance(self, pairs: int, loss: float) -> None:
        """Count ``pairs`` more, with the smoothed ``loss`` after them."""
        assert self._task is not None, "advance is called inside the with block"
        self._pairs += pairs
        self._done += pairs
        elapsed = time.monotonic() - self._started
        rate = self._pairs / elapsed if elapsed > 0 else 0.0
        left = [(self._total - self._done) / rate] if rate > 0 else []
        if self._budget_left_s is not None:
            left.append(max(0.0, self._budget_left_s - elapsed))
        self._progress.update(
            self._task,
            completed=self._done,
            rate=f"{rate:.1f}/s",
            loss=f"{loss:.4f}",
            eta=_clock(min(left)) if left else "-",
        )


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
