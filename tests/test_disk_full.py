"""A full disk: the store on a small tmpfs. Every interface says the disk is full, nothing
is half-visible, what a failed write stored is gc's at once, fsck stays clean, and work
resumes once space is freed. Needs root to mount the tmpfs, which CI has."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from datastore.storage.content import AHEAD_MIN
from datastore.store import Store
from tests.conftest import DS_BIN, make_tree
from tests.httpapi.api_support import make_api

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs"
)

SIZE_MB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(point)], check=True
    )
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _free(point: Path) -> int:
    st = os.statvfs(point)
    return st.f_bavail * st.f_frsize


def _temps(store: Store) -> list[Path]:
    return list(store.objects.iter_temp())


def test_a_full_disk_is_a_clear_error_everywhere_and_gc_frees_it(
    small_disk: Path, tmp_path: Path
) -> None:
    root = small_disk / "store"
    store = Store.open(root)
    store.create_dataset("d")
    store.put_bytes("d", "kept.txt", b"acknowledged before the disk filled")
    empty = _free(small_disk)
    files = {f"f{i:02d}.bin": os.urandom(1 << 20) for i in range(SIZE_MB + 8)}
    src = make_tree(tmp_path / "src", files)

    env = {**os.environ, "DS_STORE": str(root)}
    proc = subprocess.run([DS_BIN, "put", "d", str(src)], capture_output=True, env=env)
    assert proc.returncode == 11, proc.stderr
    assert b"disk is full" in proc.stderr and b"[insufficient_storage]" in proc.stderr
    assert [e.path for e in store.ls("d", "", recursive=True)] == ["kept.txt"]
    assert _temps(store) == []

    api = make_api(store)
    try:
        r = api.put("/v1/datasets/d/files/huge.bin", data=os.urandom((SIZE_MB + 1) << 20))
        assert (r.status, r.code) == (507, "insufficient_storage"), r.body[:200]
        assert "disk is full" in r.json()["error"]["message"]
        assert api.get("/v1/datasets/d/files/huge.bin").status == 404
    finally:
        api.close()
    assert _temps(store) == []

    # the default grace period: what the failed put stored is taken at once
    store.gc()
    assert _free(small_disk) >= empty - (1 << 20)
    store.put_bytes("d", "after.txt", b"work resumes")
    assert store.read_bytes("d", "kept.txt") == b"acknowledged before the disk filled"
    assert store.fsck()["ok"]


def test_a_large_file_on_a_full_disk_fails_cleanly_on_the_chunk_pool(
    small_disk: Path, tmp_path: Path
) -> None:
    """A file large enough to be chunked on the chunk pool (content.AHEAD_MIN) fills the
    disk part-way: the put is insufficient_storage, nothing is staged, no chunk prepared
    ahead lands anywhere, and gc gives the space back."""
    root = small_disk / "store"
    store = Store.open(root)
    store.create_dataset("d")
    empty = _free(small_disk)
    src = make_tree(tmp_path / "src", {"big.bin": os.urandom(AHEAD_MIN + (8 << 20))})
    env = {**os.environ, "DS_STORE": str(root)}
    proc = subprocess.run([DS_BIN, "put", "d", str(src)], capture_output=True, env=env)
    assert proc.returncode == 11, proc.stderr
    assert b"disk is full" in proc.stderr and b"[insufficient_storage]" in proc.stderr
    assert store.ls("d", "", recursive=True) == []
    assert _temps(store) == [] and store.catalog.blob_count() == 0
    store.gc()
    assert _free(small_disk) >= empty - (1 << 20)
    store.put("d", [make_tree(tmp_path / "small", {"after.bin": os.urandom(1 << 20)})])
    assert store.fsck()["ok"]
