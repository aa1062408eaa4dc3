"""Inbox ingest rate next to ``ds put`` of the same files, in the same run.

For each workload (small-many, mixed) the files are generated once; ``ds put`` imports
them into a fresh store (timed as a command, start-up included), then a hard-linked copy
is renamed into the inbox of a running ``ds watch`` on another fresh store, timed from the
rename until the watcher has reported every file ingested (each batch is durable and its
inbox files removed before it reports). Both read the same inodes from a warm page cache.
The pair runs five times, alternating, and the best time of each counts: the machines
this runs on are shared, and the best run is the one least disturbed. ``ds put`` pays a
command start-up the running watcher does not, so the rate without it is reported too
(``put_net_files_per_s``, ``ingest_vs_put_net_rate``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import measure, workloads
from .measure import DS, row, tree_bytes

TOOL = "ds"
INGEST = "ds watch"
REPEAT = 5


def _count(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _startup(store: Path) -> float:
    """What any ``ds`` command costs before work (interpreter, imports, store open)."""
    return min(measure.run([DS, "list", "--store", str(store)]).seconds for _ in range(3))


def _put(data: Path, store: Path) -> float:
    measure.run([DS, "create", "bench", "--store", str(store)])
    return measure.run([DS, "put", "bench", str(data), "--store", str(store)]).seconds


def _ingest(data: Path, work: Path, store: Path, files: int) -> float:
    """Seconds from dropping every file into the inbox until the watcher has taken all."""
    work.mkdir()
    inbox = work / "inbox"
    staging = work / "staging"
    subprocess.run(["cp", "-al", str(data), str(staging)], check=True)
    measure.run([DS, "create", "bench", "--store", str(store)])
    inbox.mkdir()
    proc = subprocess.Popen(
        [DS, "watch", str(inbox), "--json", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    done = threading.Event()
    seen = [0]

    def follow() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("event") == "ingested":
                seen[0] += len(event["files"])
                if seen[0] >= files:
                    done.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        time.sleep(1.5)  # the watcher is up (imports, observer) before the clock starts
        start = time.perf_counter()
        os.rename(staging, inbox / "bench")
        if not done.wait(3600):
            raise RuntimeError(f"ingest stalled at {seen[0]} of {files} files")
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(60)
    left = _count(inbox / "bench")
    if left:
        raise RuntimeError(f"{left} files left in the inbox")
    return elapsed


def run_workload(name: str, quick: bool) -> list[dict[str, Any]]:
    scale = (0.05 if quick else 0.5) if name == "small-many" else (0.02 if quick else 0.2)
    work = Path(tempfile.mkdtemp(prefix=f"ds-bench-ingest-{name}-"))
    try:
        data = work / "data"
        data.mkdir()
        (workloads.small_many if name == "small-many" else workloads.mixed)(data, scale)
        files = _count(data)
        size_mb = tree_bytes(data)[0] / 1e6
        put_runs, ingest_runs, startup_runs = [], [], []
        for i in range(1 if quick else REPEAT):  # alternate, keep the best of each
            startup_runs.append(_startup(work / "store-empty"))
            put_runs.append(_put(data, work / f"store-put-{i}"))
            shutil.rmtree(work / f"store-put-{i}")
            ingest_runs.append(_ingest(data, work / f"in-{i}", work / f"store-inbox-{i}", files))
            shutil.rmtree(work / f"in-{i}")
            shutil.rmtree(work / f"store-inbox-{i}")
        put_s, ingest_s, startup_s = min(put_runs), min(ingest_runs), min(startup_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = put_s / ingest_s
    net_put_s = max(put_s - startup_s, 1e-6)
    return [
        row(name, TOOL, "files", files, "files"),
        row(name, TOOL, "put_files_per_s", files / put_s, "files/s"),
        row(name, TOOL, "put_mb_per_s", size_mb / put_s, "MB/s"),
        row(name, INGEST, "ingest_files_per_s", files / ingest_s, "files/s"),
        row(name, INGEST, "ingest_mb_per_s", size_mb / ingest_s, "MB/s"),
        row(name, INGEST, "ingest_vs_put_rate", ratio, "x"),
        row(name, TOOL, "cli_startup_s", startup_s, "s"),
        row(name, TOOL, "put_net_files_per_s", files / net_put_s, "files/s"),
        row(name, INGEST, "ingest_vs_put_net_rate", net_put_s / ingest_s, "x"),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    return [r for name in ("small-many", "mixed") for r in run_workload(name, quick)]


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(
            f"{r['workload']:<11} {r['tool']:<9} {r['metric']:<20} {r['value']:>10.2f} {r['unit']}"
        )
