"""A job that forks with the store open: the child's imports and reads must not wait on
thread pools it inherited without their threads."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from datastore import Store
from datastore.storage import content
from tests.conftest import make_tree


def _wait(pid: int, timeout: float) -> int:
    """The child's exit code; the test fails (and the child is killed) if it hangs."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)


def test_a_forked_child_imports_and_reads_through_the_pools(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content, "AHEAD_MIN", 0)  # every chunked file on the chunk pool
    big = os.urandom(6 << 20)
    files = {f"t/f{i:05}.txt": b"%d\n" % i for i in range(5000)}  # five manifest ranges
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", {**files, "big.bin": big})])
    store.snapshot("d", tag="v1")
    assert len(store.ls("d@v1", "t")) == len(files)  # both pools have threads now
    child_src = make_tree(tmp_path / "child", {"big2.bin": big[::-1]})
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            store.put("d", [child_src])  # the chunk pool, inherited
            fresh = Store.open(store.root)  # no cached ranges: the range pool, inherited
            listed = fresh.ls("d@v1", "t")
            code = 0 if len(listed) == len(files) else 3
        finally:
            os._exit(code)
    assert _wait(pid, timeout=120) == 0
    assert store.read_bytes("d", "big2.bin") == big[::-1]


def test_a_forked_child_leaves_its_parents_connections_alone(store: Store, tmp_path: Path) -> None:
    """The child opens its own catalog connections (SQLite forbids using a parent's) and
    many threads in it do not close the inherited ones (which would drop the child's own
    locks on the database); parent and child both keep writing."""
    store.create_dataset("d")
    readers = [threading.Thread(target=store.list_datasets) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert store.catalog._threads  # the parent holds connections at the fork
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if store.catalog._threads:
                os._exit(2)  # an inherited connection could be used or closed here
            many = [threading.Thread(target=store.list_datasets) for _ in range(40)]
            for t in many:
                t.start()
            for t in many:
                t.join()
            store.put("d", [make_tree(tmp_path / "child", {"child.txt": b"child"})])
            code = 0 if store.read_bytes("d", "child.txt") == b"child" else 3
        finally:
            os._exit(code)
    assert _wait(pid, timeout=120) == 0
    store.put("d", [make_tree(tmp_path / "parent", {"parent.txt": b"parent"})])
    assert store.read_bytes("d", "child.txt") == b"child"
    assert store.read_bytes("d", "parent.txt") == b"parent"
    assert store.fsck()["ok"]
