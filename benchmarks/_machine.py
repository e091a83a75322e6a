"""Describe the machine a benchmark ran on, for the committed results."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    return (
        f"{now}; {os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}; load average {load:.1f} at the end"
    )


def write_report(path: Path, *, title: str, command: str, lines: list[str]) -> None:
    """Write a result as markdown (title, machine and date, exact command, then ``lines``)
    and print it."""
    text = "\n".join(
        [f"# {title}", "", f"Machine: {describe()}", "", f"Command: `{command}`", "", *lines, ""]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
