"""The store core's workloads through the real CLI: import, re-import + snapshot, checkout,
diff, storage, peak RSS; and a 1,000,000-entry dataset for snapshot, diff, ls and lookup."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import workloads
from .measure import DS, drop_caches, row, run, tree_bytes

TOOL = "ds"


def run_files_workload(name: str, quick: bool, work: Path) -> list[dict[str, Any]]:
    """small-many or mixed: every figure through `ds` subprocesses, as a user would run it."""
    scale = 0.1 if quick else 1.0
    data = work / "data"
    data.mkdir()
    (workloads.small_many if name == "small-many" else workloads.mixed)(data, scale)
    env = {"DS_STORE": str(work / "store")}
    rss: list[float] = []

    def ds(*args: str) -> float:
        r = run([DS, *args], env=env)
        rss.append(r.peak_rss_mb)
        return r.seconds

    ds("create", "bench")
    drop_caches()
    copy_v1 = run(["cp", "-a", str(data), str(work / "copy")]).seconds
    shutil.rmtree(work / "copy")
    os.sync()
    drop_caches()
    import_v1 = ds("put", "bench", str(data)) + ds("snapshot", "bench", "--tag", "v1")
    workloads.mutate(data)
    snapshot_v2 = ds("put", "bench", str(data)) + ds("snapshot", "bench", "--tag", "v2")
    checkout_v1 = ds("checkout", "bench@v1", str(work / "checkout"))
    diff = ds("diff", "bench@v1", "bench@v2", "--json")
    apparent, disk = tree_bytes(work / "store")
    return [
        row(name, "cp -a", "import_v1_s", copy_v1, "s"),
        row(name, TOOL, "import_v1_s", import_v1, "s"),
        row(name, TOOL, "snapshot_v2_s", snapshot_v2, "s"),
        row(name, TOOL, "checkout_v1_s", checkout_v1, "s"),
        row(name, TOOL, "diff_s", diff, "s"),
        row(name, TOOL, "storage_after_v2_bytes", apparent, "B"),
        row(name, TOOL, "storage_after_v2_disk_bytes", disk, "B"),
        row(name, TOOL, "peak_rss_mb", max(rss), "MB"),
    ]


def scale_seed(root: str, entries: int, changes: int) -> None:
    """Build the 1M-entry dataset, snapshot v1 and stage the changes (setup, not measured)."""
    import random

    from datastore.store import Store

    store = Store.open(root)
    store.create_dataset("scale")
    _seed_entries(store, entries)
    store.snapshot("scale", tag="v1")
    for i in random.Random(1).sample(range(entries), changes):
        store.put_bytes("scale", _path(i), f"changed {i}".encode())


def scale_measure(root: str, entries: int, changes: int) -> None:
    """A fresh process, so its peak RSS is what the measured operations cost; prints JSON."""
    import random
    import resource

    from datastore.storage import arrow
    from datastore.store import Store

    store = Store.open(root)
    t = time.perf_counter()
    arrow.preload()  # a process's first Arrow use pays this once, whatever it then does
    arrow_s = time.perf_counter() - t
    t = time.perf_counter()
    store.snapshot("scale", tag="v2")
    snap_s = time.perf_counter() - t
    t = time.perf_counter()
    diff = store.diff("scale@v1", "scale@v2")
    diff_s = time.perf_counter() - t
    assert diff["summary"]["modified"] == changes
    fresh = Store.open(root)
    t = time.perf_counter()
    listing = fresh.ls("scale@v2", f"d{entries // 2000:04d}")
    ls_s = time.perf_counter() - t
    assert len(listing) == 1000
    t = time.perf_counter()
    for i in random.Random(2).sample(range(entries), 100):
        fresh.stat("scale@v2", _path(i))
    lookup_s = (time.perf_counter() - t) / 100
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "arrow_import_s": arrow_s,
                "snapshot_1000_changes_s": snap_s,
                "diff_s": diff_s,
                "ls_dir_s": ls_s,
                "lookup_s": lookup_s,
                "peak_rss_mb": peak,
            }
        )
    )


def _path(i: int) -> str:
    return f"d{i // 1000:04d}/f{i % 1000:03d}.txt"


def _seed_entries(store: Any, entries: int) -> None:
    """Stage one tiny shared object under many paths, as a big import would (setup only)."""
    from datastore.storage.manifest import Entry, split_path

    oid = store.objects.put_bytes(b"tiny shared content\n")
    row_ = store.dataset("scale")
    now = time.time_ns()
    dirs = {split_path(_path(i))[0] for i in range(0, entries, 1000)}
    rows = [
        {**Entry(d, "dir", None, 0, 0o755, now, "").row(), "deleted": False} for d in sorted(dirs)
    ]
    rows += [
        {**Entry(_path(i), "file", oid, 20, 0o644, now, "").row(), "deleted": False}
        for i in range(entries)
    ]
    with store.catalog.write() as db:
        store.catalog.stage(db, row_.id, rows)


def run_scale(quick: bool, work: Path) -> list[dict[str, Any]]:
    entries = 100_000 if quick else 1_000_000
    args = [str(work / "store"), str(entries), "1000"]
    here = Path(__file__).resolve().parent.parent
    run([sys.executable, "-m", "benchmarks.bench_store", "scale-seed", *args], cwd=here)
    drop_caches()
    r = run([sys.executable, "-m", "benchmarks.bench_store", "scale-measure", *args], cwd=here)
    figures = json.loads(r.stdout)
    units = {"peak_rss_mb": "MB"}
    return [row("scale", TOOL, k, v, units.get(k, "s")) for k, v in figures.items()]


def run_startup(quick: bool, work: Path) -> list[dict[str, Any]]:
    """`ds --version` and `ds ls` of an empty store against a bare interpreter start, warm
    (the median of several runs, after one that writes the bytecode caches)."""
    env = {"DS_STORE": str(work / "store")}
    commands = {
        "python": [sys.executable, "-c", "pass"],
        TOOL: [DS, "--version"],
        f"{TOOL} ls": [DS, "list"],
    }
    rows = []
    for label, cmd in commands.items():
        run(cmd, env=env)
        times = sorted(run(cmd, env=env).seconds for _ in range(3 if quick else 9))
        rows.append(row("startup", label, "cli_startup_s", times[len(times) // 2], "s"))
    return rows


def run_workload(name: str, quick: bool) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix=f"ds-bench-{name}-"))
    try:
        if name == "startup":
            return run_startup(quick, work)
        if name == "scale":
            return run_scale(quick, work)
        return run_files_workload(name, quick, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


WORKLOADS = ("startup", "small-many", "mixed", "scale")


def run_all(quick: bool) -> list[dict[str, Any]]:
    return [r for name in WORKLOADS for r in run_workload(name, quick)]


if __name__ == "__main__":
    step = {"scale-seed": scale_seed, "scale-measure": scale_measure}[sys.argv[1]]
    step(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
