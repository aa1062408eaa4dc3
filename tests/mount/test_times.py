"""Times as POSIX has them on the mount: utimens sets atime and mtime apart; chmod, chown,
utimens, rename and writes move the ctime (writes the mtime too); all survive a remount."""

from __future__ import annotations

import os
import time
from pathlib import Path

import mount
from datastore.store import Store
from tests.conftest import wait_until
from tests.mount.test_mount import (  # noqa: F401
    _force_unmount,
    mnt,
    pytestmark,  # noqa: F401  (skips where FUSE is missing)
)

NS = 1_000_000_000


def _later(path: Path, before: int) -> int:
    """The file's ctime, asserted to have moved past ``before``."""
    ctime = os.stat(path).st_ctime_ns
    assert ctime > before, (path, ctime, before)
    return ctime


def test_atime_mtime_and_ctime_move_as_on_a_local_disk(
    mnt: Path,  # noqa: F811
    store_root: Path,
    tmp_path: Path,
) -> None:
    f = mnt / "sales" / "a.txt"
    f.write_text("one")
    os.utime(f, ns=(1 * NS, 2 * NS))
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1 * NS, 2 * NS)
    ctime = _later(f, 2 * NS)  # utimens is an attribute change: ctime is now
    assert ctime > time.time_ns() - 60 * NS

    time.sleep(0.01)
    os.chmod(f, 0o600)
    ctime = _later(f, ctime)
    assert os.stat(f).st_mtime_ns == 2 * NS  # chmod leaves the mtime alone
    time.sleep(0.01)
    os.chown(f, 1234, 5678)
    ctime = _later(f, ctime)
    time.sleep(0.01)
    os.rename(f, mnt / "sales" / "b.txt")
    f = mnt / "sales" / "b.txt"
    ctime = _later(f, ctime)
    os.utime(f, ns=(3 * NS, 4 * NS))
    time.sleep(0.01)
    with open(f, "a") as out:
        out.write(" two")
    st = os.stat(f)
    assert st.st_mtime_ns > 4 * NS and st.st_ctime_ns >= st.st_mtime_ns
    assert st.st_atime_ns == 3 * NS  # reads and writes leave it (noatime)

    os.utime(f, ns=(5 * NS, 6 * NS))
    want = os.stat(f)
    _force_unmount(mnt, None)
    handle = mount.start(store_root, mnt)
    try:
        got = os.stat(f)
        assert (got.st_atime_ns, got.st_mtime_ns, got.st_ctime_ns) == (
            want.st_atime_ns,
            want.st_mtime_ns,
            want.st_ctime_ns,
        )
        assert (got.st_uid, got.st_gid) == (1234, 5678)
    finally:
        _force_unmount(mnt, handle)
    entry = Store.open(store_root).stat("sales", "b.txt")
    assert entry.times == (5 * NS, want.st_ctime_ns)


def test_a_directory_moves_its_times_when_its_entries_change(mnt: Path) -> None:  # noqa: F811
    """Creating, removing or renaming an entry moves its directory's mtime and ctime, the
    dataset directory included; an explicit utimens of the directory stands."""
    d, other = mnt / "sales" / "d", mnt / "sales" / "other"
    d.mkdir()
    other.mkdir()
    os.utime(d, ns=(NS, NS))
    os.utime(other, ns=(NS, NS))
    changes = [
        (d, lambda: (d / "f").write_text("x")),
        (d, lambda: os.symlink("f", d / "link")),
        (d, lambda: os.mkdir(d / "sub")),
        (d, lambda: os.rmdir(d / "sub")),
        (d, lambda: os.unlink(d / "link")),
        (other, lambda: os.rename(d / "f", other / "f")),
        (mnt / "sales", lambda: (mnt / "sales" / "top").write_text("y")),
    ]
    for directory, change in changes:
        before = os.stat(directory)
        time.sleep(0.01)
        change()
        after = os.stat(directory)
        assert after.st_mtime_ns > before.st_mtime_ns, (directory, change)
        assert after.st_ctime_ns >= after.st_mtime_ns
    assert os.stat(d).st_mtime_ns > NS  # the rename out of d moved d too
    os.utime(d, ns=(7 * NS, 8 * NS))  # what rsync and tar do last
    assert (os.stat(d).st_atime_ns, os.stat(d).st_mtime_ns) == (7 * NS, 8 * NS)


def test_times_set_on_a_file_still_open_for_writing_stand_after_its_close(
    mnt: Path,  # noqa: F811
    store_root: Path,
) -> None:
    """tar and rsync set times on what they wrote; a file still open (or whose release the
    kernel has not sent yet) keeps them, atime included, through its commit."""
    f = mnt / "sales" / "open.txt"
    with open(f, "w") as out:
        out.write("written")
        out.flush()
        os.utime(f, ns=(7 * NS, 8 * NS))
        st = os.stat(f)
        assert (st.st_atime_ns, st.st_mtime_ns) == (7 * NS, 8 * NS)
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (7 * NS, 8 * NS)
    entry = Store.open(store_root).stat("sales", "open.txt")
    assert entry.mtime_ns == 8 * NS and entry.info.get("atime_ns") == 7 * NS


def test_a_directory_links_count_its_subdirectories(
    mnt: Path,  # noqa: F811
    store_root: Path,
    tmp_path: Path,
) -> None:
    """A directory's st_nlink is 2 plus its subdirectories, as on a local disk: mkdir,
    rmdir and renames move it, in the head and under ``@REF``, and a directory the CLI
    adds shows in its parent's count within the mount's propagation delay."""
    top = mnt / "sales"
    assert os.stat(top).st_nlink == 2
    (top / "a").mkdir()
    (top / "b").mkdir()
    (top / "a" / "x").mkdir()
    (top / "file").write_text("not a directory")
    os.symlink("a", top / "link")
    assert [os.stat(top / p).st_nlink for p in ("", "a", "b", "a/x")] == [4, 3, 2, 2]
    assert os.lstat(top / "file").st_nlink == 1
    os.rename(top / "a" / "x", top / "b" / "x")
    assert (os.stat(top / "a").st_nlink, os.stat(top / "b").st_nlink) == (2, 3)
    os.rmdir(top / "b" / "x")
    assert os.stat(top / "b").st_nlink == 2
    assert os.stat(mnt).st_nlink == 3  # the root: one dataset

    store = Store.open(store_root)
    store.snapshot("sales", tag="v1")
    pinned = mnt / "sales@v1"
    assert [os.stat(pinned / p).st_nlink for p in ("", "a", "b")] == [4, 2, 2]
    assert sorted(
        (e.name, e.stat().st_nlink) for e in os.scandir(pinned) if e.is_dir(follow_symlinks=False)
    ) == [
        ("a", 2),
        ("b", 2),
    ]
    new = tmp_path / "new" / "c"
    new.mkdir(parents=True)
    (new / "f").write_text("from the CLI side")
    store.put("sales", [tmp_path / "new"])
    store.close()
    wait_until(lambda: os.stat(top).st_nlink == 5, timeout=5)
    assert os.stat(top / "c").st_nlink == 2
