"""Timing and memory measurement shared by the benchmark modules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DS = str(Path(sys.executable).parent / "ds")


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: bytes


def run(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run a command to completion; wall time and the child's own peak RSS (wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    out, err = _communicate(proc)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return Run(elapsed, _child_peak_rss_mb(proc), out)


_peaks: dict[int, float] = {}


def _communicate(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """communicate(), but reap with wait4 so the child's own rusage is kept."""
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    threads = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _peaks[proc.pid] = usage.ru_maxrss / 1024
    return chunks.get("out", b""), chunks.get("err", b"")


def _child_peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    return _peaks.pop(proc.pid, 0.0)


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
