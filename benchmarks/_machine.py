"""Describe the machine a benchmark ran on, for the committed results."""

from __future__ import annotations

import datetime as dt
import os
import platform


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
    return (
        f"{now}; {os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )
