"""The mount's overlay without FUSE: copy-up, commit on close/fsync, renames, unlinks, errnos."""

from __future__ import annotations

import errno
import os
import time

import pytest

from datastore.errors import ReadOnlyRef, all_error_classes
from datastore.store import Store
from mount.errors import ERRNO_BY_CODE, to_errno
from mount.overlay import Caller, Overlay

RW = os.O_RDWR


@pytest.fixture
def ov(store: Store) -> Overlay:
    store.create_dataset("sales")
    store.put_bytes("sales", "a/b.csv", b"x,y\n1,2\n")
    store.snapshot("sales", tag="v1.0")
    store.create_dataset("other")
    return Overlay(store)


def errno_of(exc: BaseException) -> int:
    return to_errno(exc)


def test_every_error_class_has_an_errno() -> None:
    for cls in all_error_classes():
        assert cls.code in ERRNO_BY_CODE, cls


def test_root_lists_datasets_and_refs_resolve(ov: Overlay) -> None:
    assert [n for n, _ in ov.readdir("/")] == ["other", "sales"]
    assert [n for n, _ in ov.readdir("/sales@v1.0/a")] == ["b.csv"]
    attrs = ov.getattr("/sales@v1.0/a/b.csv")
    assert attrs["st_size"] == 8 and not attrs["st_mode"] & 0o222


def test_write_is_invisible_until_close(ov: Overlay, store: Store) -> None:
    fh, _ = ov.open("/sales/a/b.csv", RW)
    ov.write(fh, b"9,9\n", 8)
    assert ov.getattr("/sales/a/b.csv")["st_size"] == 12
    assert store.read_bytes("sales", "a/b.csv") == b"x,y\n1,2\n"
    snap, _ = store.snapshot("sales")
    assert snap.row.id == store.resolve("sales@v1.0").snapshot  # nothing committed: clean
    ov.flush(fh)
    assert store.read_bytes("sales", "a/b.csv") == b"x,y\n1,2\n9,9\n"
    ov.release(fh)
    assert ov.read(ov.open("/sales/a/b.csv", os.O_RDONLY)[0], 100, 0) == b"x,y\n1,2\n9,9\n"


def test_fsync_commits_and_writing_continues(ov: Overlay, store: Store) -> None:
    fh = ov.create("/sales/new.txt", 0o640)
    ov.write(fh, b"one", 0)
    ov.fsync(fh)
    assert store.read_bytes("sales", "new.txt") == b"one"
    assert store.stat("sales", "new.txt").mode == 0o640
    ov.write(fh, b"two", 3)
    assert store.read_bytes("sales", "new.txt") == b"one"
    ov.release(fh)
    assert store.read_bytes("sales", "new.txt") == b"onetwo"
    assert not list(store.objects.iter_temp())


def test_truncate_and_append(ov: Overlay, store: Store) -> None:
    ov.truncate("/sales/a/b.csv", 4)
    assert store.read_bytes("sales", "a/b.csv") == b"x,y\n"
    a, _ = ov.open("/sales/a/b.csv", os.O_WRONLY | os.O_APPEND)
    b, _ = ov.open("/sales/a/b.csv", os.O_WRONLY | os.O_APPEND)
    ov.write(a, b"1\n", 0)
    ov.write(b, b"2\n", 0)
    ov.release(a)
    ov.release(b)
    assert store.read_bytes("sales", "a/b.csv") == b"x,y\n1\n2\n"
    fh, _ = ov.open("/sales/a/b.csv", os.O_WRONLY | os.O_TRUNC)
    ov.release(fh)
    assert store.read_bytes("sales", "a/b.csv") == b""


def test_unlinked_open_file_keeps_working(ov: Overlay, store: Store) -> None:
    fh, _ = ov.open("/sales/a/b.csv", RW)
    ov.unlink("/sales/a/b.csv")
    ov.write(fh, b"Z", 0)
    assert ov.read(fh, 100, 0) == b"Z,y\n1,2\n"
    ov.release(fh)
    with pytest.raises(Exception) as info:
        ov.getattr("/sales/a/b.csv")
    assert errno_of(info.value) == errno.ENOENT
    assert [n for n, _ in ov.readdir("/sales/a")] == []


def test_rename_over_existing_and_open_file_follows(ov: Overlay, store: Store) -> None:
    store.put_bytes("sales", "c.txt", b"old")
    fh = ov.create("/sales/.c.txt.tmp", 0o644)
    ov.write(fh, b"new", 0)
    ov.rename("/sales/.c.txt.tmp", "/sales/c.txt")
    ov.release(fh)
    assert store.read_bytes("sales", "c.txt") == b"new"
    with pytest.raises(Exception) as info:
        ov.getattr("/sales/.c.txt.tmp")
    assert errno_of(info.value) == errno.ENOENT
    ov.rename("/sales/a", "/sales/z")
    assert store.read_bytes("sales", "z/b.csv") == b"x,y\n1,2\n"


def test_directories_and_attributes(ov: Overlay, store: Store) -> None:
    ov.mkdir("/sales/d", 0o750)
    assert store.stat("sales", "d").mode == 0o750
    fh = ov.create("/sales/d/f", 0o600)
    ov.release(fh)
    with pytest.raises(OSError) as info:
        ov.rmdir("/sales/d")
    assert info.value.errno == errno.ENOTEMPTY
    ov.chmod("/sales/d/f", 0o100444)
    ov.utimens("/sales/d/f", (0, 1_700_000_000_000_000_000))
    entry = store.stat("sales", "d/f")
    assert (entry.mode, entry.mtime_ns) == (0o444, 1_700_000_000_000_000_000)
    ov.unlink("/sales/d/f")
    ov.rmdir("/sales/d")
    ov.chmod("/sales", 0o700)
    assert ov.getattr("/sales")["st_mode"] & 0o777 == 0o700
    assert ov.statfs()["f_namemax"] == 255


ROOT = Caller(0, frozenset({0}))


def test_chown_is_stored_under_the_usual_rules(ov: Overlay, store: Store) -> None:
    """root gives anything away; an owner changes the group to one of its own groups and
    nothing else; -1 keeps a value; the dataset directory itself is stored too."""
    ov.chown("/sales/a/b.csv", 1000, 100, ROOT)
    assert store.stat("sales", "a/b.csv").owner == (1000, 100)
    assert (ov.getattr("/sales/a/b.csv")["st_uid"], ov.getattr("/sales/a/b.csv")["st_gid"]) == (
        1000,
        100,
    )
    owner = Caller(1000, frozenset({100, 200}))
    ov.chown("/sales/a/b.csv", -1, 200, owner)
    assert store.stat("sales", "a/b.csv").owner == (1000, 200)
    for who, uid, gid in (
        (owner, 1001, -1),  # giving the file away
        (owner, -1, 300),  # a group the owner is not in
        (Caller(1001, frozenset({200})), -1, 200),  # not the owner, even changing nothing
    ):
        with pytest.raises(OSError) as info:
            ov.chown("/sales/a/b.csv", uid, gid, who)
        assert info.value.errno == errno.EPERM
    ov.chown("/sales/a/b.csv", 1000, 200, Caller(1000, frozenset()))  # the owner, no change
    fh = ov.create("/sales/new.txt", 0o644)
    ov.write(fh, b"n", 0)
    ov.chown("/sales/new.txt", 7, 8, ROOT)  # cp -a: fchown before the first close
    assert ov.getattr("/sales/new.txt")["st_uid"] == 7
    ov.release(fh)
    assert store.stat("sales", "new.txt").owner == (7, 8)
    store.put_bytes("sales", "new.txt", b"rewritten")  # a new version keeps its owner
    assert store.stat("sales", "new.txt").owner == (7, 8)
    ov.chown("/sales", 42, 43, ROOT)
    ov.utimens("/sales", (0, 1_600_000_000_000_000_000))
    top = dict(ov.readdir("/"))  # the root listing shows the same
    attrs = ov.getattr("/sales")
    assert (attrs["st_uid"], attrs["st_gid"], attrs["st_mtime"]) == (
        42,
        43,
        1_600_000_000_000_000_000,
    )
    assert "sales" in top
    with pytest.raises(ReadOnlyRef) as ro:
        ov.chown("/sales@v1.0/a/b.csv", 1, 1, ROOT)
    assert errno_of(ro.value) == errno.EROFS


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda ov: ov.create("/sales@v1.0/x", 0o644), errno.EROFS),
        (lambda ov: ov.open("/sales@v1.0/a/b.csv", RW), errno.EROFS),
        (lambda ov: ov.chmod("/sales@v1.0/a/b.csv", 0o600), errno.EROFS),
        (lambda ov: ov.utimens("/sales@v1.0/a/b.csv", None), errno.EROFS),
        (lambda ov: ov.mkdir("/sales@v1.0/d", 0o755), errno.EROFS),
        (lambda ov: ov.unlink("/sales@v1.0/a/b.csv"), errno.EROFS),
        (lambda ov: ov.mkdir("/newset", 0o755), errno.EROFS),
        (lambda ov: ov.rename("/sales/a/b.csv", "/other/b.csv"), errno.EXDEV),
        (lambda ov: ov.link("/sales/a/b.csv", "/sales/l"), errno.ENOTSUP),
        (lambda ov: ov.getattr("/nosuch"), errno.ENOENT),
        (lambda ov: ov.getattr("/sales@nosuch"), errno.ENOENT),
        (lambda ov: ov.getattr("/sales/" + "x" * 256), errno.ENAMETOOLONG),
        (lambda ov: ov.create("/sales/..", 0o644), errno.EINVAL),
        (lambda ov: ov.open("/sales/missing", os.O_RDONLY), errno.ENOENT),
        (lambda ov: ov.mkdir("/sales/a", 0o755), errno.EEXIST),
    ],
)
def test_errnos(ov: Overlay, call: object, code: int) -> None:
    with pytest.raises(Exception) as info:
        call(ov)  # type: ignore[operator]
    assert errno_of(info.value) == code


def test_read_only_overlay_refuses_head_writes(store: Store) -> None:
    store.create_dataset("sales")
    store.put_bytes("sales", "f", b"x")
    ov = Overlay(store, read_only=True)
    with pytest.raises(Exception) as info:
        ov.open("/sales/f", RW)
    assert errno_of(info.value) == errno.EROFS
    assert ov.getattr("/sales/f")["st_mode"] & 0o222 == 0


def test_gc_leaves_the_temp_of_an_idle_open_file_alone(ov: Overlay, store: Store) -> None:
    fh = ov.create("/sales/slow.txt", 0o644)
    ov.write(fh, b"written long ago", 0)
    temps = list(store.objects.tmp.iterdir())
    for temp in temps:
        os.utime(temp, (time.time() - 86400,) * 2)  # idle for a day
    assert store.gc(grace_seconds=0)["temp_files_removed"] == 0
    assert all(t.exists() for t in temps)
    ov.release(fh)
    assert store.read_bytes("sales", "slow.txt") == b"written long ago"
    assert list(store.objects.tmp.iterdir()) == []


def test_create_of_an_existing_file_keeps_its_bytes(ov: Overlay, store: Store) -> None:
    fh = ov.create("/sales/a/b.csv", 0o644, os.O_WRONLY)
    ov.release(fh)
    assert store.read_bytes("sales", "a/b.csv") == b"x,y\n1,2\n"
    with pytest.raises(OSError) as info:
        ov.create("/sales/a/b.csv", 0o644, os.O_WRONLY | os.O_EXCL)
    assert info.value.errno == errno.EEXIST


def test_watch_names_what_changed_outside(ov: Overlay, store: Store) -> None:
    assert ov.watch.poll() == []
    store.put_bytes("sales", "a/new.csv", b"1")
    assert "/sales/a/new.csv" in ov.watch.poll()
    store.put_bytes("sales", "a/brief.csv", b"0")
    ov.watch.poll()
    store.rm("sales", ["a/brief.csv"])  # never snapshotted: no row is left, the poll still says
    assert "/sales/a/brief.csv" in ov.watch.poll()
    # staged and snapshotted between two polls: the moved base is diffed
    store.put_bytes("sales", "a/quick.csv", b"2")
    ov.watch.seq = store.head_changes(1 << 62)[0]  # as if the poll missed the row
    store.snapshot("sales")
    assert "/sales/a/quick.csv" in ov.watch.poll()
    # a ref the mount resolved, then moved
    assert [n for n, _ in ov.readdir("/sales@v1.0/a")] == ["b.csv"]
    ov.getattr("/sales@v1.0/a/b.csv")
    store.tag("sales", "latest", "v1.0", force=True)
    moved = ov.watch.poll()
    assert moved[-3:] == ["/sales@v1.0/a/b.csv", "/sales@v1.0/a", "/sales@v1.0"]
    assert [n for n, _ in ov.readdir("/sales@v1.0/a")] == ["b.csv", "new.csv", "quick.csv"]
    store.delete_dataset("other")
    assert "/other" in ov.watch.poll()
