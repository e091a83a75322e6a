"""`frugal demo` prints its report and leaves no process behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from frugal.demo import load_workload


def processes_with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_demo_prints_its_report_draws_it_and_stops_everything_it_started(tmp_path: Path) -> None:
    chart = tmp_path / "report.png"
    marker = f"FRUGAL_TEST_MARKER={uuid.uuid4().hex}"
    name, value = marker.split("=")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugal",
            "demo",
            "--call-latency-ms",
            "5",
            "--item-latency-ms",
            "1",
            "--chart",
            str(chart),
        ],
        env={**os.environ, name: value, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    requests = len(load_workload())
    assert "requests sent" in result.stdout and str(requests) in result.stdout
    assert "upstream calls" in result.stdout and "p95 latency" in result.stdout
    assert "money saved" in result.stdout and "cache hit rate" in result.stdout
    batch = len(load_workload(bundled="demo_batch.jsonl"))
    row = rf"a batch of work that can wait \(lines\)\s*│\s*{batch} \(completed\)"
    assert re.search(row, result.stdout), result.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert processes_with_marker(marker) == []


def test_bundled_workload_has_repeats_and_paraphrases() -> None:
    prompts = load_workload()
    assert len(prompts) > 40
    assert len(set(prompts)) < len(prompts)


def test_the_bundled_batch_repeats_itself_and_the_live_workload() -> None:
    batch, live = load_workload(bundled="demo_batch.jsonl"), set(load_workload())
    assert len(set(batch)) < len(batch)
    assert 0 < len(live.intersection(batch)) < len(batch)
