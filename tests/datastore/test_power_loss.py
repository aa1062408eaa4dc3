"""Power loss, emulated: a store on ext4 on a loop device, read back with O_DIRECT (what
had reached the disk) right after an operation was acknowledged, then mounted again
(journal replayed) and opened. Needs root, losetup and mkfs.ext4, which CI has."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from datastore.store import Store

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("losetup", "mkfs.ext4", "mount")),
    reason="needs root, losetup, mkfs.ext4 and mount",
)


def _sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout


@contextmanager
def _mounted(image: Path, point: Path) -> Iterator[str]:
    """``image`` on a loop device mounted at ``point``; yields the device."""
    dev = _sh("losetup", "--find", "--show", str(image)).strip()
    try:
        point.mkdir(exist_ok=True)
        _sh("mount", "-t", "ext4", dev, str(point))
        try:
            yield dev
        finally:
            subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


def _capture(dev: str, out: Path) -> None:
    """What the disk holds now: the page cache not yet written back is what a power cut
    loses."""
    _sh("dd", f"if={dev}", f"of={out}", "bs=1M", "iflag=direct", "status=none")


def test_a_young_store_survives_a_power_cut(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(128 << 20)
    _sh("mkfs.ext4", "-q", "-F", str(image))
    capture = tmp_path / "after-cut.img"
    data = os.urandom(50_000)
    with _mounted(image, tmp_path / "live") as dev:
        store = Store.open(tmp_path / "live" / "store")
        store.create_dataset("sales")
        store.put_bytes("sales", "q1.csv", data)  # acknowledged: durable from here on
        store.put_bytes("sales", "copy.csv", data)  # acknowledged by deduplication
        store.close()
        _capture(dev, capture)
    with _mounted(capture, tmp_path / "back"):
        store = Store.open(tmp_path / "back" / "store")
        assert store.read_bytes("sales", "q1.csv") == data
        assert store.read_bytes("sales", "copy.csv") == data
        assert store.fsck()["ok"]
        store.close()
