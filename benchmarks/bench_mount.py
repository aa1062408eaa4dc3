"""The FUSE mount against the native filesystem it sits on, measured in the same run.

Sequential read of a large committed file (cold: page cache dropped; warm: second pass),
as written through the mount (one whole object) and as imported (chunks in packs),
sequential write into a head (write + fsync + close, i.e. acknowledged; native gets the
same fsync), eight readers at once (warm), creating 4 KiB files (a Python loop, then
``cp -r`` of the same tree; also on an in-memory filesystem on the same FUSE binding,
``bare-fuse``: what the binding alone allows), ``find`` with stat over a large tree,
first (cold) and second pass, a snapshot of a mounted 20,000-file head after 200
changes made through the mount, and reading every file of small-many v1 (cold) through
the mount against ``ds checkout`` of the same version and the native tree it was put
from. ``tool`` is ``ds-mount``, ``ds-checkout``, ``bare-fuse`` or ``native``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import workloads
from .measure import drop_caches, row

MiB = 1 << 20
BLOCK = MiB


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _read_time(path: Path, cold: bool) -> float:
    """Seconds to read a file whole; ``cold``: the page cache dropped first."""
    if cold:
        drop_caches()
    return _timed(lambda: read_file(path))


def write_file(path: Path, size: int) -> None:
    """1 MiB writes of non-repeating-looking data, then fsync: an acknowledged write."""
    block = bytearray(os.urandom(BLOCK))
    with open(path, "wb", buffering=0) as f:
        for i in range(size // BLOCK):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)
        os.fsync(f.fileno())


def read_file(path: Path) -> int:
    """dd-style sequential read with 1 MiB requests; returns bytes read."""
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := os.readv(fd, [view]):
            total += n
    finally:
        os.close(fd)
    return total


@contextlib.contextmanager
def bare_fuse(point: Path) -> Iterator[Path]:
    """An in-memory filesystem on the same FUSE binding as ds's mount
    (:mod:`benchmarks.barefs`), mounted at ``point`` while the block runs."""
    point.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.barefs", str(point)])
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(point):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare FUSE filesystem did not mount")
            time.sleep(0.05)
        yield point
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], capture_output=True, check=False)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def make_small_files(root: Path, count: int, size: int = 4096) -> None:
    """``count`` files of ``size`` bytes, 1,000 per directory, each different (identical
    files would measure deduplication, not creation)."""
    block = bytearray(os.urandom(size))
    for d in range(max(1, count // 1000)):
        (root / f"d{d:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        block[:8] = i.to_bytes(8, "little")
        with open(root / f"d{i // 1000:03d}" / f"f{i:06d}", "wb") as f:
            f.write(block)


def copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)


def parallel_read(paths: list[Path]) -> int:
    """Every file read at once, one thread each (reads release the GIL)."""
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        return sum(pool.map(read_file, paths))


def read_tree(root: Path) -> int:
    """Every file below ``root`` read once, as a job reading a whole version does."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                total += len(f.read())
    return total


def find_stat(root: Path) -> int:
    out = subprocess.run(
        ["find", str(root), "-printf", "%s %T@\n"], capture_output=True, check=True
    ).stdout
    return out.count(b"\n")


def seed_tree(store: Any, name: str, count: int) -> None:
    """Stage ``count`` small files in one transaction (setup, not measured)."""
    from datastore.storage.manifest import Entry

    oid = store.objects.put_bytes(b"x" * 100)
    row_ = store.dataset(name)
    now = time.time_ns()
    rows = [
        {**Entry(f"tree/d{d:03d}", "dir", None, 0, 0o755, now, "").row(), "deleted": False}
        for d in range(max(1, count // 1000))
    ]
    rows.append({**Entry("tree", "dir", None, 0, 0o755, now, "").row(), "deleted": False})
    rows += [
        {
            **Entry(f"tree/d{i // 1000:03d}/f{i:06d}", "file", oid, 100, 0o644, now, "").row(),
            "deleted": False,
        }
        for i in range(count)
    ]
    with store.catalog.write() as db:
        store.catalog.stage(db, row_.id, rows)


def run(quick: bool) -> list[dict[str, Any]]:
    import mount
    from datastore.store import Store

    size = (64 if quick else 1024) * MiB
    small = 500 if quick else 10_000
    tree = 5_000 if quick else 100_000
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="ds-bench-mount-", dir=os.environ.get("DS_BENCH_DIR")))
    native = work / "native"
    native.mkdir()
    point = work / "mnt"
    point.mkdir()
    store = Store.open(work / "store")
    store.create_dataset("bench")
    seed_tree(store, "bench", tree)
    store.create_dataset("snap")
    seed_tree(store, "snap", 20_000)
    store.snapshot("snap")
    many = workloads.small_many(work / "small-many", 0.1 if quick else 1.0)
    store.create_dataset("many")
    store.put("many", [many])
    store.snapshot("many", tag="v1")
    store.close()
    handle = mount.start(work / "store", point)
    try:
        head = point / "bench"
        gib = size / 1e9

        def both(metric: str, unit: str, native_v: float, mount_v: float, wl: str) -> None:
            rows.append(row(wl, "native", metric, native_v, unit))
            rows.append(row(wl, "ds-mount", metric, mount_v, unit))

        wl = f"seq-{size // MiB}MiB"
        t_native = _timed(lambda: write_file(native / "big.bin", size))
        t_mount = _timed(lambda: write_file(head / "big.bin", size))
        both("write_GBps", "GB/s", gib / t_native, gib / t_mount, wl)
        Store.open(work / "store").snapshot("bench", tag="v1")

        def cold_and_warm(mounted: Path, wl: str) -> None:
            """Read the native file and ``mounted`` (the same bytes), cold then warm."""
            for metric, cold in (("read_cold_GBps", True), ("read_warm_GBps", False)):
                t_native = _read_time(native / "big.bin", cold)
                t_mount = _read_time(mounted, cold)
                both(metric, "GB/s", gib / t_native, gib / t_mount, wl)

        cold_and_warm(point / "bench@v1" / "big.bin", wl)

        wl = f"seq-{size // MiB}MiB-chunked"  # the same bytes imported: chunks in packs
        importer = Store.open(work / "store")
        importer.put("bench", [native / "big.bin"], "imported")
        importer.snapshot("bench", tag="chunked")
        importer.close()
        cold_and_warm(point / "bench@chunked" / "imported" / "big.bin", wl)

        wl = f"readers-8x{size // 8 // MiB}MiB"
        for i in range(8):
            write_file(native / f"part{i}.bin", size // 8)
            write_file(head / f"part{i}.bin", size // 8)
        Store.open(work / "store").snapshot("bench", tag="parts")
        parts = [point / "bench@parts" / f"part{i}.bin" for i in range(8)]
        natives = [native / f"part{i}.bin" for i in range(8)]
        parallel_read(natives)
        parallel_read(parts)  # both warm: the aggregate the readers get, not the disk's
        t_native = _timed(lambda: parallel_read(natives))
        t_mount = _timed(lambda: parallel_read(parts))
        both("read_warm_GBps", "GB/s", gib / t_native, gib / t_mount, wl)

        wl = f"create-{small}x4KiB"
        t_native = _timed(lambda: make_small_files(native / "small", small))
        t_mount = _timed(lambda: make_small_files(head / "small", small))
        both("files_per_s", "files/s", small / t_native, small / t_mount, wl)
        wl = f"cp-r-{small}x4KiB"
        t_native = _timed(lambda: copy_tree(native / "small", native / "copied"))
        t_mount = _timed(lambda: copy_tree(native / "small", head / "copied"))
        both("files_per_s", "files/s", small / t_native, small / t_mount, wl)
        with bare_fuse(work / "bare") as bare:  # what the FUSE binding alone allows
            t_bare = _timed(lambda: make_small_files(bare / "small", small))
            rows.append(
                row(f"create-{small}x4KiB", "bare-fuse", "files_per_s", small / t_bare, "files/s")
            )
            t_bare = _timed(lambda: copy_tree(native / "small", bare / "copied"))
            rows.append(row(wl, "bare-fuse", "files_per_s", small / t_bare, "files/s"))

        wl = "snapshot-20000-files-200-changes"
        for i in range(200):
            (point / "snap" / "tree" / f"d{i % 20:03d}" / f"f{i * 97:06d}").write_bytes(b"new")
        fresh = Store.open(work / "store")
        rows.append(row(wl, "ds-mount", "snapshot_s", _timed(lambda: fresh.snapshot("snap")), "s"))

        wl = f"find-{tree}"
        Store.open(work / "store").snapshot("bench", tag="v2")
        make_small_files(native / "tree", tree, size=100)
        for label, root in (("native", native / "tree"), ("ds-mount", point / "bench@v2/tree")):
            drop_caches()
            first = _timed(functools.partial(find_stat, root))
            second = _timed(functools.partial(find_stat, root))
            rows.append(row(wl, label, "first_pass_s", first, "s"))
            rows.append(row(wl, label, "second_pass_s", second, "s"))

        files = sum(len(f) for _, _, f in os.walk(many))
        wl = f"read-small-many-{files}"
        drop_caches()
        rows.append(row(wl, "native", "read_all_s", _timed(lambda: read_tree(many)), "s"))
        drop_caches()
        checkout = Store.open(work / "store")
        out = work / "checkout"
        rows.append(
            row(
                wl,
                "ds-checkout",
                "read_all_s",
                _timed(lambda: checkout.checkout("many@v1", out)),
                "s",
            )
        )
        drop_caches()
        t_mount = _timed(lambda: read_tree(point / "many@v1"))
        rows.append(row(wl, "ds-mount", "read_all_s", t_mount, "s"))
    finally:
        handle.stop()
        subprocess.run(["fusermount3", "-uz", str(point)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return rows
