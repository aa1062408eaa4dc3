"""fsck finds a flipped byte, a truncated object, a missing object and a missing range,
and names the dataset, snapshot and path each one affects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datastore.errors import StoreCorrupt
from datastore.store import Store


def _setup(store: Store) -> dict[str, str]:
    store.create_dataset("d")
    for name in ("a.txt", "b.txt", "c.txt"):
        store.put_bytes("d", f"dir/{name}", f"content of {name}".encode() * 10)
    snap, _ = store.snapshot("d", tag="v1")
    assert store.fsck()["ok"]
    return {e.path: e.object for e in store.ls("d@v1", "dir")} | {"snapshot": snap.row.id}


def _damage(path: Path, how: str) -> None:
    os.chmod(path, 0o644)
    if how == "flip":
        data = bytearray(path.read_bytes())
        data[5] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:7])
    else:
        path.unlink()


@pytest.mark.parametrize(
    ("how", "problem"), [("flip", "corrupt"), ("truncate", "corrupt"), ("remove", "missing")]
)
def test_damaged_object_is_reported_with_its_place(store: Store, how: str, problem: str) -> None:
    ids = _setup(store)
    _damage(store.objects.path(ids["dir/b.txt"]), how)
    report = store.fsck()
    assert not report["ok"]
    [p] = report["problems"]
    assert (p["kind"], p["id"], p["problem"]) == ("object", ids["dir/b.txt"], problem)
    assert {"dataset": "d", "snapshot": ids["snapshot"], "path": "dir/b.txt"} in p["affected"]


def test_missing_range_is_reported_and_gc_refuses(store: Store) -> None:
    ids = _setup(store)
    [rng] = store.catalog.manifest(ids["snapshot"]).ranges
    os.unlink(store.ranges.place(rng.id))
    store.manifests.cache = type(store.manifests.cache)()
    report = store.fsck()
    assert not report["ok"]
    [p] = report["problems"]
    assert (p["kind"], p["problem"]) == ("range", "missing")
    assert p["affected"] == [{"dataset": "d", "snapshot": ids["snapshot"], "path": None}]
    with pytest.raises(StoreCorrupt):
        store.gc(grace_seconds=0)


def test_corrupt_range_is_reported(store: Store) -> None:
    ids = _setup(store)
    [rng] = store.catalog.manifest(ids["snapshot"]).ranges
    path = Path(store.ranges.place(rng.id))
    os.chmod(path, 0o644)
    path.write_bytes(b"PAR1 not really parquet PAR1")
    store.manifests.cache = type(store.manifests.cache)()
    report = store.fsck()
    assert [(p["kind"], p["problem"]) for p in report["problems"]] == [("range", "corrupt")]


def test_cli_fsck_exits_non_zero_on_damage(store: Store, cli) -> None:
    ids = _setup(store)
    assert cli("fsck").exit_code == 0
    _damage(store.objects.path(ids["dir/a.txt"]), "flip")
    result = cli("fsck")
    assert result.exit_code == 1
    assert "dir/a.txt" in result.output
