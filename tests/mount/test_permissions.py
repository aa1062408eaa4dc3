"""Another user on a mount made with --allow-other is held to mode bits and owners, as on a
local filesystem: what POSIX refuses is refused, and what that user makes is theirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mount
from datastore.store import Store
from tests.mount.test_mount import _force_unmount

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None or os.getuid() != 0,
    reason="needs /dev/fuse, fusermount3 and root (to act as another user)",
)

NOBODY = 65534


@pytest.fixture
def shared_mount(store_root: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A mount with --allow-other at a place every user can reach (pytest's own temp
    directories are private to root); yields it and a function that remounts it."""
    store = Store.open(store_root)
    store.create_dataset("sales")
    store.close()
    outer = Path(tempfile.mkdtemp(prefix="ds-perm-", dir="/tmp"))
    outer.chmod(0o755)
    point = outer / "mnt"
    point.mkdir()
    handles = [mount.start(store_root, point, allow_other=True)]

    def remount() -> None:
        _force_unmount(point, handles[-1])
        handles.append(mount.start(store_root, point, allow_other=True))

    try:
        yield point, remount
    finally:
        _force_unmount(point, handles[-1])
        shutil.rmtree(outer, ignore_errors=True)


def nobody(cmd: str) -> subprocess.CompletedProcess[str]:
    """``cmd`` in a shell run as uid/gid 65534 with no other groups."""
    return subprocess.run(
        ["sh", "-c", cmd],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


def owner(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def test_another_user_is_held_to_modes_and_owns_what_it_makes(shared_mount) -> None:
    point, remount = shared_mount
    ds = point / "sales"
    (ds / "public.txt").write_text("for all\n")
    (ds / "secret.txt").write_text("root only\n")
    (ds / "secret.txt").chmod(0o600)
    (ds / "private").mkdir(mode=0o700)
    (ds / "private" / "inside.txt").write_text("x")
    (ds / "shared").mkdir()
    (ds / "shared").chmod(0o777)

    assert nobody(f"cat {ds}/public.txt").stdout == "for all\n"
    refused = {
        "read a 0600 file": f"cat {ds}/secret.txt",
        "write a 0644 file": f"echo more >> {ds}/public.txt",
        "truncate a 0644 file": f": > {ds}/public.txt",
        "unlink in a 0755 directory": f"rm -f {ds}/public.txt",
        "create in a 0755 directory": f"touch {ds}/new.txt",
        "list a 0700 directory": f"ls {ds}/private",
        "reach through a 0700 directory": f"cat {ds}/private/inside.txt",
        "chmod another's file": f"chmod 666 {ds}/public.txt",
        "give a file away": f"chown {NOBODY} {ds}/public.txt",
        "rename out of a 0755 directory": f"mv {ds}/public.txt {ds}/shared/p.txt",
    }
    for what, cmd in refused.items():
        proc = nobody(cmd)
        assert proc.returncode != 0, what
        assert "denied" in proc.stderr or "not permitted" in proc.stderr, (what, proc.stderr)
    assert (ds / "public.txt").read_text() == "for all\n"
    assert (ds / "secret.txt").read_text() == "root only\n"  # root is not held to modes
    assert sorted(p.name for p in ds.iterdir()) == ["private", "public.txt", "secret.txt", "shared"]

    made = nobody(
        f"echo mine > {ds}/shared/mine.txt && mkdir {ds}/shared/mydir"
        f" && chmod 600 {ds}/shared/mine.txt && cat {ds}/shared/mine.txt"
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout == "mine\n"
    assert owner(ds / "shared" / "mine.txt") == (NOBODY, NOBODY)
    assert owner(ds / "shared" / "mydir") == (NOBODY, NOBODY)
    assert (ds / "shared" / "mine.txt").stat().st_mode & 0o777 == 0o600

    remount()
    assert owner(ds / "shared" / "mine.txt") == (NOBODY, NOBODY)
    assert owner(ds / "shared" / "mydir") == (NOBODY, NOBODY)
    assert nobody(f"cat {ds}/shared/mine.txt").stdout == "mine\n"
    assert nobody(f"cat {ds}/secret.txt").returncode != 0


def test_sticky_and_set_group_id_directories(shared_mount) -> None:
    point, _ = shared_mount
    ds = point / "sales"
    (ds / "tmp").mkdir()
    (ds / "tmp").chmod(0o1777)
    (ds / "tmp" / "roots.txt").write_text("r")
    (ds / "team").mkdir()
    os.chown(ds / "team", 0, 100)
    (ds / "team").chmod(0o2777)

    proc = nobody(f"rm -f {ds}/tmp/roots.txt")
    assert proc.returncode != 0 and (ds / "tmp" / "roots.txt").exists()
    assert nobody(f"touch {ds}/tmp/own.txt && rm {ds}/tmp/own.txt").returncode == 0

    made = nobody(f"touch {ds}/team/f.txt && mkdir {ds}/team/sub")
    assert made.returncode == 0, made.stderr
    assert owner(ds / "team" / "f.txt") == (NOBODY, 100)
    assert owner(ds / "team" / "sub") == (NOBODY, 100)
    assert (ds / "team" / "sub").stat().st_mode & 0o2000
