"""Files staged without a flush (the mount's close, SPEC promise 4): visible and kept across
a kill, flushed by settle, a snapshot, a rename or an fsync, and after a power cut either
whole or gone, with the path back at its base version, never a row naming a lost object.

A power cut is emulated here by removing the object a note names (what a cut does to a
file renamed in before its bytes were written back); tests/mount/test_power_loss.py cuts
the power under a real mount."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datastore.errors import FileNotFound
from datastore.store import Store


def _close(store: Store, path: str, data: bytes) -> str:
    """What the mount does when a writer closes a file: adopt its temp, flush nothing."""
    temp = store.open_temp()
    os.write(temp.fd, data)
    entry = store.put_file_at("sales", path, temp.path, adopt=True, durable=False)
    temp.close()
    assert entry.object is not None
    return entry.object


def _cut_power(store_root: Path, *objects: str) -> Store:
    """The objects never reached the disk; the store is opened again as after a reboot."""
    for oid in objects:
        os.unlink(Store.open(store_root).object_path(oid))
    return Store.open(store_root)


def _notes(store: Store) -> set[str]:
    return {f["name"] for f in store.catalog.unsynced_files()}


@pytest.fixture
def sales(store: Store) -> Store:
    store.create_dataset("sales")
    store.put_bytes("sales", "kept.csv", b"in the base\n")
    store.snapshot("sales", tag="v1")
    return store


def test_a_lost_unflushed_close_leaves_the_base_version(sales: Store, store_root: Path) -> None:
    changed = _close(sales, "kept.csv", b"changed, never flushed\n")
    new = _close(sales, "new.csv", b"new, never flushed\n")
    assert sales.read_bytes("sales", "new.csv") == b"new, never flushed\n"
    assert _notes(sales) == {"kept.csv", "new.csv"}
    assert _notes(Store.open(store_root)) == {"kept.csv", "new.csv"}  # a live write stays

    back = _cut_power(store_root, changed, new)
    assert back.read_bytes("sales", "kept.csv") == b"in the base\n"
    with pytest.raises(FileNotFound):
        back.read_bytes("sales", "new.csv")
    assert _notes(back) == set()
    assert not back.info("sales").dirty
    assert back.fsck()["ok"]


def test_settle_and_snapshot_flush_every_close(sales: Store, store_root: Path) -> None:
    first = _close(sales, "a.csv", b"a\n")
    assert sales.settle()
    assert not sales.settle()  # nothing left to flush
    second = _close(sales, "b.csv", b"b\n")
    sales.snapshot("sales", tag="v2")
    assert _notes(sales) == set()
    back = Store.open(store_root)
    assert back.read_bytes("sales", "a.csv") == b"a\n"
    assert back.read_bytes("sales@v2", "b.csv") == b"b\n"
    assert back.objects.has_size(first, 2) and back.objects.has_size(second, 2)


def test_an_unflushed_close_never_replaces_a_durable_version(
    sales: Store, store_root: Path
) -> None:
    """A staged version written durably (a put, an fsync) is flushed over, not noted:
    otherwise a cut could lose both it and the new one (the path would fall back to v1)."""
    sales.put_bytes("sales", "kept.csv", b"durable head version\n")
    _close(sales, "kept.csv", b"newer\n")
    assert _notes(sales) == set()
    sales.rm("sales", ["kept.csv"])  # a durable removal is a version too
    _close(sales, "kept.csv", b"back again\n")
    assert _notes(sales) == set()
    _close(sales, "other.csv", b"1\n")
    _close(sales, "other.csv", b"2\n")  # over an unflushed version: noted again
    assert _notes(sales) == {"other.csv"}


def test_a_rename_flushes_the_file_it_moves(sales: Store, store_root: Path) -> None:
    """The save-by-rename pattern (write a temp, rename it over the file) keeps the old or
    the new content across a cut, never neither."""
    oid = _close(sales, ".kept.csv.swp", b"saved\n")
    sales.rename("sales", ".kept.csv.swp", "kept.csv")
    assert _notes(sales) == set()
    back = Store.open(store_root)
    assert back.read_bytes("sales", "kept.csv") == b"saved\n"
    assert back.objects.has_size(oid, len(b"saved\n"))


def test_a_directory_rename_flushes_every_file_it_moves(sales: Store, store_root: Path) -> None:
    objects = [_close(sales, f"tmp/part{i:02d}.csv", f"{i}\n".encode()) for i in range(40)]
    sales.rename("sales", "tmp", "done")  # more than a few: one syncfs covers them
    assert _notes(sales) == set()
    back = Store.open(store_root)
    assert [back.read_bytes("sales", f"done/part{i:02d}.csv") for i in range(40)] == [
        f"{i}\n".encode() for i in range(40)
    ]
    assert all(back.objects.has_size(o, len(f"{i}\n")) for i, o in enumerate(objects))
