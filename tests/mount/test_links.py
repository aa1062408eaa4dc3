"""Symbolic links on the mount: ln -s, readlink, lstat, through snapshots and remounts, and
the tools that make them (cp -a, tar, python -m venv)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import mount
from datastore.store import Store
from tests.conftest import wait_until
from tests.mount.test_mount import (  # noqa: F401
    _force_unmount,
    ds,
    mnt,
    pytestmark,  # noqa: F401  (skips where FUSE is missing)
    sh,
)


def _tree_with_links(root: Path) -> Path:
    """Files, a relative and an absolute link, a dangling one, a link to a directory."""
    (root / "lib" / "pkg").mkdir(parents=True)
    (root / "lib" / "pkg" / "mod.py").write_text("VALUE = 42\n")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    os.chmod(root / "bin" / "tool", 0o755)
    (root / "lib64").symlink_to("lib")
    (root / "bin" / "alias").symlink_to("tool")
    (root / "bin" / "dangling").symlink_to("../nowhere/at/all")
    (root / "abs").symlink_to("/etc/hostname")
    return root


def _same_tree(a: Path, b: Path) -> None:
    """Same names, kinds, link targets and file bytes (links compared, never followed)."""
    for dirpath, dirnames, filenames in os.walk(a):
        rel = Path(dirpath).relative_to(a)
        for name in dirnames + filenames:
            x, y = Path(dirpath) / name, b / rel / name
            assert stat.S_IFMT(x.lstat().st_mode) == stat.S_IFMT(y.lstat().st_mode), y
            if x.is_symlink():
                assert os.readlink(x) == os.readlink(y), y
            elif x.is_file():
                assert x.read_bytes() == y.read_bytes(), y
        listed = sorted(os.listdir(b / rel))
        assert listed == sorted(dirnames + filenames), rel


def test_ln_readlink_lstat_and_follow(mnt: Path, store_root: Path) -> None:  # noqa: F811
    head = mnt / "sales"
    (head / "data").mkdir()
    (head / "data" / "a.csv").write_text("x\n1\n")
    os.symlink("data/a.csv", head / "current.csv")
    os.symlink("../elsewhere", head / "dangling")
    st = os.lstat(head / "current.csv")
    assert stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o777
    assert st.st_size == len("data/a.csv") and st.st_nlink == 1
    assert os.readlink(head / "current.csv") == "data/a.csv"
    assert (head / "current.csv").read_text() == "x\n1\n"  # the kernel follows it
    assert sh(f"ls -l {head}").count(" -> ") == 2
    assert not (head / "dangling").exists() and (head / "dangling").is_symlink()
    with pytest.raises(OSError) as info:
        os.symlink("x", head / "data" / "a.csv")
    assert info.value.errno == errno.EEXIST
    with pytest.raises(OSError) as info:
        os.readlink(head / "data" / "a.csv")
    assert info.value.errno == errno.EINVAL
    os.lchown(head / "dangling", 65534, 65534)
    os.utime(head / "dangling", ns=(10**9, 2 * 10**9), follow_symlinks=False)
    st = os.lstat(head / "dangling")
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (65534, 65534, 2 * 10**9)
    os.rename(head / "dangling", head / "data" / "moved")
    assert os.readlink(head / "data" / "moved") == "../elsewhere"
    # the snapshot holds the link; a version is read-only
    ds(store_root, "snapshot", "sales", "--tag", "v1")
    pinned = mnt / "sales@v1"
    assert os.readlink(pinned / "current.csv") == "data/a.csv"
    assert (pinned / "current.csv").read_text() == "x\n1\n"
    assert stat.S_IMODE(os.lstat(pinned / "current.csv").st_mode) == 0o777
    with pytest.raises(OSError) as info:
        os.symlink("x", pinned / "new")
    assert info.value.errno == errno.EROFS
    os.unlink(head / "current.csv")
    assert not os.path.lexists(head / "current.csv")
    assert (head / "data" / "a.csv").read_text() == "x\n1\n"  # unlinking a link keeps its target
    assert os.readlink(pinned / "current.csv") == "data/a.csv"
    ds(store_root, "fsck")


def test_cp_a_and_tar_of_a_tree_of_links_survive_a_remount(
    mnt: Path,  # noqa: F811
    tmp_path: Path,
    store_root: Path,
) -> None:
    src = _tree_with_links(tmp_path / "src")
    sh(f"cp -a {src} {mnt}/sales/copied")
    _same_tree(src, mnt / "sales" / "copied")
    archive = tmp_path / "src.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="t")
    (mnt / "sales" / "untar").mkdir()
    sh(f"tar -xf {archive} -C {mnt}/sales/untar")
    _same_tree(src, mnt / "sales" / "untar" / "t")
    sh(f"rsync -a {src}/ {mnt}/sales/synced/")
    _same_tree(src, mnt / "sales" / "synced")
    assert sh(f"{mnt}/sales/copied/bin/alias") == "tool\n"
    _force_unmount(mnt, None)
    handle = mount.start(store_root, mnt)
    try:
        _same_tree(src, mnt / "sales" / "copied")
    finally:
        _force_unmount(mnt, handle)
    # and the tree comes back out as links: ds get and ds checkout
    ds(store_root, "get", "sales/untar/t", str(tmp_path / "got"))
    _same_tree(src, tmp_path / "got")
    ds(store_root, "snapshot", "sales", "--tag", "v1")
    ds(store_root, "checkout", "sales@v1", str(tmp_path / "co"))
    _same_tree(src, tmp_path / "co" / "synced")


def test_python_venv_on_the_mount(mnt: Path) -> None:  # noqa: F811
    """``python -m venv`` makes ``lib64 -> lib`` and ``bin/python -> python3``; with pip
    (from the wheel Python bundles, no network) it writes ~1,600 files."""
    venv = mnt / "sales" / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    assert os.readlink(venv / "lib64") == "lib"
    assert (venv / "bin" / "python").is_symlink()
    script = mnt / "sales" / "job.py"
    script.write_text("import sys, pip\nprint(sys.prefix, pip.__name__)\n")
    run = subprocess.run(
        [str(venv / "bin" / "python"), str(script)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{venv} pip\n"


def test_links_made_by_the_store_show_on_the_mount(
    mnt: Path,  # noqa: F811
    store_root: Path,
) -> None:
    store = Store.open(store_root)
    try:
        store.symlink("sales", "made/by/api", "../../target")
    finally:
        store.close()
    link = mnt / "sales" / "made" / "by" / "api"
    wait_until(lambda: os.path.lexists(link), timeout=5)  # SPEC 4: within a second
    assert os.readlink(link) == "../../target"
