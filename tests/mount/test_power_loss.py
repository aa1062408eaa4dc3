"""Power loss under a live mount (SPEC promise 4): the store on ext4 on a loop device, read
back with O_DIRECT right after the writes returned (what a cut would leave), then opened.
A file fsynced and every file a snapshot holds are there; a file only closed is whole or
absent; fsck passes."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

import mount
from datastore.errors import FileNotFound
from datastore.store import Store
from tests.datastore.test_power_loss import _capture, _mounted, _sh
from tests.mount.test_mount import _force_unmount

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not all(shutil.which(t) for t in ("losetup", "mkfs.ext4", "mount", "fusermount3"))
    or not os.path.exists("/dev/fuse"),
    reason="needs root, losetup, mkfs.ext4, mount and FUSE",
)


def _write(path: Path, data: bytes, fsync: bool = False) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def test_a_power_cut_under_the_mount_keeps_what_was_flushed(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(256 << 20)
    _sh("mkfs.ext4", "-q", "-F", str(image))
    files = {name: os.urandom(200_000 + i) for i, name in enumerate(("snap", "synced", "closed"))}
    capture = tmp_path / "after-cut.img"
    point = tmp_path / "mnt"
    point.mkdir()
    with _mounted(image, tmp_path / "live") as dev:
        root = tmp_path / "live" / "store"
        Store.open(root).create_dataset("sales")
        handle = mount.start(root, point)
        try:
            head = point / "sales"
            _write(head / "snap.bin", files["snap"])
            Store.open(root).snapshot("sales", tag="v1")  # flushes what it holds
            _write(head / "synced.bin", files["synced"], fsync=True)
            _write(head / "closed.bin", files["closed"])  # acknowledged against a kill only
            (head / "after").mkdir()  # a flushed commit after it: its row reaches the disk
            _capture(dev, capture)
        finally:
            _force_unmount(point, handle)
    with _mounted(capture, tmp_path / "back"):
        store = Store.open(tmp_path / "back" / "store")
        assert store.read_bytes("sales@v1", "snap.bin") == files["snap"]
        assert store.read_bytes("sales", "snap.bin") == files["snap"]
        assert store.read_bytes("sales", "synced.bin") == files["synced"]
        assert store.stat("sales", "after").is_dir
        with contextlib.suppress(FileNotFound):  # never flushed: may go with the power
            assert store.read_bytes("sales", "closed.bin") == files["closed"]
        report = store.fsck()
        assert report["ok"], report
        store.close()
