"""Crash tests: a writer doing put, import (packs, chunks), symlink, snapshot and gc (which
packs and repacks) is SIGKILLed at random moments (60 times); afterwards fsck passes, every
snapshot is complete, every acknowledged put and link is there."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from datastore.store import Store
from tests.conftest import REPO

KILLS = 60


def _run_and_kill(root: Path, seed: int, delay: float) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.datastore.crash_worker", str(root), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return out.decode().splitlines()


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store.open(root).create_dataset("c")
    rng = random.Random(7)
    acked: dict[str, str] = {}
    links: dict[str, str] = {}
    snaps: dict[str, int] = {}
    for k in range(KILLS):
        for line in _run_and_kill(root, k, rng.uniform(0.3, 0.9)):
            parts = line.split()
            if parts[0] == "PUT":
                acked[parts[1]] = parts[2]
            elif parts[0] == "LINK":
                links[parts[1]] = parts[2]
            elif parts[0] == "SNAP":
                snaps[parts[1]] = int(parts[2])
    store = Store.open(root)
    assert len(acked) > KILLS, "the writer should have acknowledged work before most kills"
    report = store.fsck()
    assert report["ok"], report["problems"]
    head = {e.path: e for e in store.ls("c", "", recursive=True)}
    for path, oid in acked.items():
        assert head[path].object == oid, path
        assert store.objects.hash_bytes(store.read_bytes("c", path)) == oid
    assert links, "the writer should have made links before some kills"
    for path, target in links.items():
        assert head[path].target == target, path
    for sid, count in snaps.items():
        snap = store.get_snapshot("c", sid)
        listed = [e for e in store.ls(f"c@{sid}", "", recursive=True) if e.is_file]
        assert len(listed) == snap.row.file_count == count
    # every committed snapshot is complete: its entries all read back
    for snap in store.log("c"):
        for e in store.ls(f"c@{snap.row.id}", "", recursive=True):
            if e.is_file:
                with store.open_object(e.file_object()) as reader:
                    assert reader.size == e.size
    store.gc(grace_seconds=0)
    assert store.fsck()["ok"]
    assert list(store.objects.iter_ids()) == []  # gc packed every live object
