"""Manifests as a base and a delta: what each version reads, totals, diffs, folds, and
what gc, fsck and du count when a delta supersedes base entries."""

from __future__ import annotations

import random

import pytest

from datastore.storage import delta, manifest
from datastore.store import Store


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 16-32 rows and deltas of up to max(4, base / 16) rows, so a few hundred
    files exercise bases of many ranges, deltas and folds."""
    monkeypatch.setattr(manifest, "TARGET_ROWS", 16)
    monkeypatch.setattr(manifest, "MAX_ROWS", 32)
    monkeypatch.setattr(delta, "DELTA_MIN_ROWS", 4)


def _seed(store: Store, files: int = 300) -> dict[str, bytes]:
    store.create_dataset("d")
    model = {f"d{i // 30:02d}/f{i % 30:02d}.txt": f"v0 {i}".encode() for i in range(files)}
    for path, data in model.items():
        store.put_bytes("d", path, data)
    return model


def _reads(store: Store, spec: str) -> dict[str, bytes]:
    return {e.path: store.read_bytes(spec, e.path) for e in store.entries(spec) if e.is_file}


@pytest.mark.usefixtures("small_ranges")
def test_small_snapshots_add_a_delta_over_the_same_base_until_it_is_folded(
    store: Store,
) -> None:
    model = _seed(store)
    first, _ = store.snapshot("d", tag="v0")
    base = store.catalog.manifest(first.row.id)
    assert not base.delta and len(base.base) > 5
    rng = random.Random(7)
    versions: list[tuple[str, dict[str, bytes]]] = [("d@v0", dict(model))]
    folded = False
    for n in range(1, 12):
        for path in rng.sample(sorted(model), 3):
            model[path] = f"v{n} {path}".encode()
            store.put_bytes("d", path, model[path])
        gone = rng.choice(sorted(model))
        del model[gone]
        store.rm("d", [gone])
        model[f"new/{n}.txt"] = b"added"
        store.put_bytes("d", f"new/{n}.txt", b"added")
        snap, _ = store.snapshot("d", tag=f"v{n}")
        m = store.catalog.manifest(snap.row.id)
        if m.delta:
            assert [r.id for r in m.base] == [r.id for r in base.base]  # base untouched
        else:
            folded = True
            assert len({r.id for r in m.base} - {r.id for r in base.base}) < len(m.base)
            base = m
        assert snap.row.file_count == len(model)
        assert snap.row.size_bytes == sum(map(len, model.values()))
        versions.append((f"d@v{n}", dict(model)))
    assert folded
    for spec, expected in versions:
        assert _reads(store, spec) == expected
        assert store.info(spec).file_count == len(expected)
    for (a, ma), (b, mb) in zip(versions, versions[3:], strict=False):
        summary = store.diff(a, b)["summary"]
        common = ma.keys() & mb.keys()
        assert summary["modified"] == sum(ma[p] != mb[p] for p in common)
        assert summary["added"] + summary["renamed"] == len(mb.keys() - ma.keys())


@pytest.mark.usefixtures("small_ranges")
def test_lookups_and_listings_read_through_the_delta(store: Store) -> None:
    _seed(store)
    store.snapshot("d", tag="v0")
    store.put_bytes("d", "d03/f05.txt", b"changed")
    store.rm("d", ["d04/f00.txt"])
    store.put_bytes("d", "d04/zz.txt", b"new")
    snap, _ = store.snapshot("d", tag="v1")
    assert store.catalog.manifest(snap.row.id).delta
    assert store.read_bytes("d@v1", "d03/f05.txt") == b"changed"
    names = [e.path for e in store.ls("d@v1", "d04")]
    assert "d04/f00.txt" not in names and "d04/zz.txt" in names and len(names) == 30
    assert len(store.ls("d@v1", "d04", recursive=True)) == 30
    assert [e.path for e in store.ls("d@v1")][:2] == ["d00", "d01"]
    with pytest.raises(Exception, match="not found"):
        store.stat("d@v1", "d04/f00.txt")


@pytest.mark.usefixtures("small_ranges")
def test_a_head_that_restores_its_base_is_clean(store: Store) -> None:
    _seed(store)
    store.snapshot("d", tag="v0")
    entry = store.stat("d", "d01/f01.txt")
    store.put_bytes("d", "d01/f01.txt", b"other")
    assert store.status("d")["dirty"]
    store.put_bytes("d", "d01/f01.txt", b"v0 31", mtime_ns=entry.mtime_ns)
    assert not store.status("d")["dirty"]
    assert store.snapshot("d")[1] is False


@pytest.mark.usefixtures("small_ranges")
def test_gc_frees_what_only_a_superseded_base_entry_held(store: Store) -> None:
    _seed(store)
    v0, _ = store.snapshot("d", tag="v0")
    old = store.stat("d", "d02/f02.txt").object
    store.put_bytes("d", "d02/f02.txt", b"replaced in a delta")
    v1, _ = store.snapshot("d", tag="v1")
    assert store.catalog.manifest(v1.row.id).delta
    assert store.gc(grace_seconds=0, dry_run=True)["objects_removed"] == 0
    assert store.read_bytes("d@v0", "d02/f02.txt") == b"v0 62"
    store.forget("d", [v0.row.id])
    du_before = store.du("d")[0]["physical_bytes"]
    report = store.gc(grace_seconds=0)
    assert report["objects_removed"] >= 1 and not store.content.has({old: len(b"v0 62")})
    assert store.fsck()["ok"]
    assert store.read_bytes("d@v1", "d02/f02.txt") == b"replaced in a delta"
    assert store.du("d")[0]["physical_bytes"] == du_before
    assert _reads(store, "d@v1") == _reads(store, "d")


@pytest.mark.usefixtures("small_ranges")
def test_fsck_names_the_paths_a_delta_references(store: Store) -> None:
    _seed(store)
    store.snapshot("d", tag="v0")
    store.put_bytes("d", "d05/f05.txt", b"only in the delta " * 100)
    v1, _ = store.snapshot("d", tag="v1")
    oid = store.stat("d@v1", "d05/f05.txt").object
    assert store.content.has({oid: 1800}) == {oid}
    store.gc(grace_seconds=0)  # packs it
    report = store.fsck()
    assert report["ok"]
    store.catalog.db.execute("DELETE FROM blobs WHERE id=?", (oid,))
    store.objects.path(oid).unlink(missing_ok=True)
    report = store.fsck()
    [problem] = [p for p in report["problems"] if p["kind"] == "object"]
    assert problem["affected"] == [{"dataset": "d", "snapshot": v1.row.id, "path": "d05/f05.txt"}]


@pytest.mark.usefixtures("small_ranges")
def test_a_snapshot_of_noted_changes_looks_up_nothing_in_the_base(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(store)
    store.snapshot("d", tag="v0")
    store.put_bytes("d", "d01/f01.txt", b"changed")
    store.rm("d", ["d02/f02.txt"])
    store.mkdir("d", "d03/sub")
    store.put_bytes("d", "d04/new.txt", b"new")
    asked: list[object] = []
    looked_up = store.manifests._entries
    monkeypatch.setattr(
        store.manifests,
        "_entries",
        lambda ranges, keys: asked.extend(keys) or looked_up(ranges, keys),
    )
    snap, _ = store.snapshot("d", tag="v1")
    assert asked == []
    assert snap.row.file_count == 300
    assert store.diff("d@v0", "d@v1")["summary"]["modified"] == 1


@pytest.mark.usefixtures("small_ranges")
def test_a_note_made_against_another_base_is_looked_up_again(store: Store) -> None:
    _seed(store)
    v0, _ = store.snapshot("d", tag="v0")
    store.put_bytes("d", "d00/f00.txt", b"changed")
    store.snapshot("d", tag="v1")
    row = store.dataset("d")
    gone = store.stat("d", "d00/f01.txt")
    stale = {**gone.row(), "deleted": True, "prev_base": v0.row.id, **delta.prev_columns(None)}
    with store.catalog.write() as db:  # as if staged against v0 while v1 was being taken
        store.catalog.stage(db, row.id, [stale])
    snap, created = store.snapshot("d", tag="v2")
    assert created and snap.row.file_count == 299
    assert store.diff("d@v1", "d@v2")["summary"]["removed"] == 1
