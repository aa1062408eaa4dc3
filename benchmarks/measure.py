"""Timing and memory measurement shared by the benchmark modules."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DS = str(Path(sys.executable).parent / "ds")
SPAWN = Path(__file__).resolve().parent / "spawn.py"


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: bytes


def run(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run a command to completion; wall time and the command's own peak RSS (see spawn.py).

    Every tool runs as it is installed, writing and reading bytecode caches, even where the
    environment says not to (PYTHONDONTWRITEBYTECODE would charge each Python tool a compile
    of every module it imports, on every run)."""
    with tempfile.NamedTemporaryFile(prefix="ds-bench-rss-") as rss_file:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-S", str(SPAWN), rss_file.name, *cmd],
            capture_output=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "", **(env or {})},
            cwd=cwd,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {tail}")
        peak_kib = int(Path(rss_file.name).read_text() or 0)
    return Run(elapsed, peak_kib / 1024, proc.stdout)


def tree_bytes(root: Path) -> tuple[int, int]:
    """(apparent bytes, on-disk bytes) of everything under root."""
    apparent = disk = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue
            apparent += st.st_size
            disk += st.st_blocks * 512
    return apparent, disk


def drop_caches() -> None:
    """Best effort: cold-cache figures need root; without it the figure is warm."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def row(workload: str, tool: str, metric: str, value: float, unit: str) -> dict[str, Any]:
    return {"workload": workload, "tool": tool, "metric": metric, "value": value, "unit": unit}
