"""The Store facade's promises: snapshots, refs, tags, diff, checkout, gc, concurrency."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datastore.errors import (
    AmbiguousRef,
    Conflict,
    DatasetExists,
    DatasetNotFound,
    FileNotFound,
    InvalidName,
    InvalidRequest,
    PreconditionFailed,
    ReadOnlyRef,
    RefNotFound,
    TagExists,
)
from datastore.maintenance.retention import KeepRules
from datastore.storage import manifest
from datastore.store import Store
from tests.conftest import TEST_DATA, make_tree


def test_first_snapshot_of_an_empty_head_is_created(store: Store) -> None:
    store.create_dataset("d")
    snap, created = store.snapshot("d", tag="empty")
    assert created and snap.row.file_count == 0
    again, created = store.snapshot("d", tag="still-empty")
    assert not created and again.row.id == snap.row.id
    assert sorted(store.info("d").tags) == ["empty", "still-empty"]


def test_put_snapshot_and_pinned_reads(store: Store, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.csv": b"1,2\n", "sub/b.bin": b"\x00\x01"})
    store.create_dataset("sales")
    result = store.put("sales", [src])
    assert sorted(result.added) == ["a.csv", "sub/b.bin"]
    v1, _ = store.snapshot("sales", tag="v1.0", message="first")
    store.put_bytes("sales", "a.csv", b"changed")
    store.rm("sales", ["sub"])
    assert store.read_bytes("sales@v1.0", "a.csv") == b"1,2\n"
    assert store.read_bytes("sales", "a.csv") == b"changed"
    assert store.read_bytes(f"sales@{v1.row.id[:8]}", "sub/b.bin") == b"\x00\x01"
    with pytest.raises(FileNotFound):
        store.stat("sales", "sub/b.bin")
    v2, created = store.snapshot("sales", tag="v2")
    assert created and v2.row.parent == v1.row.id
    assert [e.path for e in store.ls("sales@v2", "", recursive=True)] == ["a.csv"]
    assert store.read_bytes("sales@v1.0", "a.csv") == b"1,2\n"
    info = store.info("sales")
    assert (info.file_count, info.size_bytes, info.dirty) == (1, 7, False)


def test_put_directory_semantics(store: Store, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "exports", {"x.txt": b"x", "deep/y.txt": b"y"})
    (src / "empty").mkdir()
    store.create_dataset("d")
    store.put("d", [src], to="raw/2026")
    store.put("d", [src / "x.txt"], to="single")
    paths = {e.path: e.kind for e in store.ls("d", "", recursive=True)}
    assert paths == {
        "raw": "dir",
        "single": "dir",
        "raw/2026": "dir",
        "raw/2026/empty": "dir",
        "raw/2026/x.txt": "file",
        "raw/2026/deep": "dir",
        "raw/2026/deep/y.txt": "file",
        "single/x.txt": "file",
    }


def test_reimport_reads_only_changed_files(store: Store, tmp_path: Path) -> None:
    files = {f"d{i % 5}/f{i}.txt": os.urandom(100) for i in range(100)}
    src = make_tree(tmp_path / "src", files)
    store.create_dataset("d")
    first = store.put("d", [src])
    assert first.bytes_hashed == 10_000
    (src / "d0/f0.txt").write_bytes(b"new content")
    second = store.put("d", [src])
    assert second.bytes_hashed == len(b"new content")
    assert second.modified == ["d0/f0.txt"] and second.unchanged == 99


def test_file_and_directory_shapes_conflict(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "a/b.txt", b"x")
    with pytest.raises(Conflict):
        store.put_bytes("d", "a", b"file over dir")
    with pytest.raises(Conflict):
        store.put_bytes("d", "a/b.txt/c", b"under a file")
    assert store.read_bytes("d", "a/b.txt") == b"x"


def test_if_absent_and_read_only_refs(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "f", b"1")
    with pytest.raises(PreconditionFailed):
        store.put_bytes("d", "f", b"2", if_absent=True)
    store.snapshot("d", tag="t")
    with pytest.raises(ReadOnlyRef):
        store.put_bytes("d@t", "g", b"x")
    with pytest.raises(ReadOnlyRef):
        store.rm("d@t", ["f"])
    assert store.read_bytes("d", "f") == b"1"


def test_ref_resolution_rules(store: Store) -> None:
    store.create_dataset("d")
    with pytest.raises(RefNotFound):
        store.resolve("d@latest")
    s1, _ = store.snapshot("d")
    time.sleep(0.01)
    store.put_bytes("d", "f", b"x")
    s2, _ = store.snapshot("d")
    assert store.resolve("d@latest").snapshot == s2.row.id
    assert store.resolve(f"d@{s1.row.id}").snapshot == s1.row.id
    with pytest.raises(RefNotFound):
        store.resolve(f"d@{s1.row.id[:7]}")
    created = datetime.strptime(s1.row.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    at_s1 = (created + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert store.resolve(f"d@{at_s1}").snapshot == s1.row.id
    with pytest.raises(RefNotFound):
        store.resolve("d@2000-01-01T00:00:00Z")
    # a tag wins over an id prefix that spells the same text
    store.tag("d", s1.row.id, s2.row.id[:8])
    assert store.resolve(f"d@{s2.row.id[:8]}").snapshot == s1.row.id


def test_ambiguous_prefix(store: Store) -> None:
    store.create_dataset("d")
    ids = []
    for i in range(40):
        store.put_bytes("d", "f", str(i).encode())
        ids.append(store.snapshot("d")[0].row.id)
    prefixes: dict[str, int] = {}
    for sid in ids:
        prefixes[sid[0]] = prefixes.get(sid[0], 0) + 1
    shared = next(p for p, n in prefixes.items() if n > 1)
    # 8 characters are needed before a prefix resolves; force ambiguity through the catalog rule
    with pytest.raises((AmbiguousRef, RefNotFound)):
        store.resolve(f"d@{shared * 8}")
    hits = store.catalog.snapshots_by_prefix(store.dataset("d").id, shared)
    assert len(hits) == 2


def test_tags_are_immutable_unless_forced_and_keep_history(store: Store) -> None:
    store.create_dataset("d")
    s1, _ = store.snapshot("d", tag="prod")
    store.put_bytes("d", "f", b"x")
    s2, _ = store.snapshot("d")
    with pytest.raises(TagExists):
        store.tag("d", s2.row.id, "prod")
    assert store.tag("d", s2.row.id, "prod", force=True, by="alice") == (s2.row.id, "moved")
    assert store.tag("d", s2.row.id, "prod", by="bob") == (s2.row.id, "unchanged")
    current, history = store.tag_history("d", "prod")
    assert current == s2.row.id
    assert [h.snapshot for h in history] == [s1.row.id, s2.row.id]
    assert history[1].by == "alice"
    store.untag("d", "prod")
    with pytest.raises(RefNotFound):
        store.untag("d", "prod")


def test_tag_on_snapshot_with_existing_tag_changes_nothing(store: Store) -> None:
    store.create_dataset("d")
    store.snapshot("d", tag="v1")
    store.put_bytes("d", "f", b"x")
    before = store.log("d")
    with pytest.raises(TagExists):
        store.snapshot("d", tag="v1")
    assert store.log("d") == before
    assert store.status("d")["dirty"]


def test_diff_reports_every_kind_of_change(store: Store) -> None:
    store.create_dataset("d")
    for name, data in {"keep": b"k", "mod": b"m1", "gone": b"g", "old-name": b"r"}.items():
        store.put_bytes("d", name, data)
    store.snapshot("d", tag="a")
    store.put_bytes("d", "mod", b"m2")
    store.rm("d", ["gone"])
    store.rename("d", "old-name", "new/name")
    store.put_bytes("d", "added", b"new")
    diff = store.diff("d@a")
    assert [e["path"] for e in diff["added"]] == ["added"]
    assert [e["path"] for e in diff["removed"]] == ["gone"]
    assert [e["path"] for e in diff["modified"]] == ["mod"]
    assert [(r["from"], r["to"]) for r in diff["renamed"]] == [("old-name", "new/name")]
    store.snapshot("d", tag="b")
    assert store.diff("d@a", "d@b")["summary"] == diff["summary"]
    assert store.diff("d@b", "d@b")["summary"]["modified"] == 0


def test_snapshot_rewrites_only_touched_ranges(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest, "TARGET_ROWS", 16)
    monkeypatch.setattr(manifest, "MAX_ROWS", 32)
    store.create_dataset("d")
    for i in range(20):
        for j in range(10):
            store.put_bytes("d", f"dir{i:02d}/f{j}", f"{i}-{j}".encode())
    s1, _ = store.snapshot("d")
    r1 = store.catalog.manifest(s1.row.id).ranges
    assert len(r1) > 5
    store.put_bytes("d", "dir07/f3", b"changed")
    s2, _ = store.snapshot("d")
    r2 = store.catalog.manifest(s2.row.id).ranges
    changed = {r.id for r in r2} - {r.id for r in r1}
    assert len(changed) == 1
    assert store.read_bytes("d@" + s2.row.id, "dir07/f3") == b"changed"
    assert len(store.ls("d@" + s2.row.id, "dir07")) == 10
    assert s2.row.file_count == 200


def test_checkout_materializes_exactly(store: Store, tmp_path: Path) -> None:
    files = {"a.txt": b"a", "x/y/z.bin": os.urandom(3000)}
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", files)])
    (tmp_path / "src" / "x" / "empty").mkdir()
    store.put("d", [tmp_path / "src"])
    store.snapshot("d", tag="v1")
    store.put_bytes("d", "a.txt", b"later")
    dest = tmp_path / "out"
    assert store.checkout("d@v1", dest) == 2
    assert (dest / "a.txt").read_bytes() == b"a"
    assert (dest / "x/y/z.bin").read_bytes() == files["x/y/z.bin"]
    assert (dest / "x/empty").is_dir()
    with pytest.raises(InvalidRequest):
        store.checkout("d@v1", dest)


def test_writing_to_a_checkout_never_changes_the_store(store: Store, tmp_path: Path) -> None:
    """Root ignores 0444: a checkout must not share inodes with the stored objects."""
    src = make_tree(tmp_path / "src", {"2026-10.csv": b"a,b\n1,2\n"})
    store.create_dataset("sales")
    store.put("sales", [src])
    store.snapshot("sales", tag="v1.0")
    dest = tmp_path / "co"
    store.checkout("sales@v1.0", dest)
    target = dest / "2026-10.csv"
    os.chmod(target, 0o644)
    with open(target, "ab") as f:
        f.write(b"x\n")
    assert store.read_bytes("sales@v1.0", "2026-10.csv") == b"a,b\n1,2\n"
    assert store.fsck()["ok"]


def test_put_of_intact_bytes_repairs_an_object_damaged_through_a_link(
    store: Store, tmp_path: Path
) -> None:
    """``--link`` checkouts are opt-in; damage done through one is repaired by the next put
    of the intact bytes, even when the import cache remembers the source unchanged. (Only
    a whole object stored as its own file can be linked: an upload's, here.)"""
    src = make_tree(tmp_path / "src", {"2026-10.csv": b"a,b\n1,2\n"})
    store.create_dataset("sales")
    store.put_bytes("sales", "2026-10.csv", b"a,b\n1,2\n")
    store.put("sales", [src])  # deduplicates against the upload; the import cache learns it
    store.snapshot("sales", tag="v1.0")
    dest = tmp_path / "co"
    store.checkout("sales@v1.0", dest, link=True)
    target = dest / "2026-10.csv"
    os.chmod(target, 0o644)  # what root gets without asking
    target.write_bytes(b"a,b\n9,9\n")  # same size: only the link count gives it away
    assert not store.fsck()["ok"]
    result = store.put("sales", [src])
    assert result.bytes_hashed > 0
    assert store.read_bytes("sales@v1.0", "2026-10.csv") == b"a,b\n1,2\n"
    assert store.fsck()["ok"]


def test_sources_on_a_clean_head_make_a_new_snapshot(store: Store) -> None:
    """The same content derived from a new upstream version is a new version of its
    lineage; without sources a clean head still makes none."""
    store.create_dataset("raw")
    up, _ = store.snapshot("raw", tag="r1")
    store.create_dataset("d")
    store.put_bytes("d", "a.txt", b"a")
    first, _ = store.snapshot("d")
    again, created = store.snapshot("d", sources=["raw@r1"], message="rebuilt")
    assert created and again.row.id != first.row.id and again.row.parent == first.row.id
    assert again.row.sources == [{"dataset": "raw", "snapshot": up.row.id}]
    assert again.row.file_count == 1
    same, created = store.snapshot("d")
    assert not created and same.row.id == again.row.id


def test_removing_what_no_snapshot_holds_leaves_no_row(store: Store) -> None:
    """status, info and the staged table agree: added then removed is no change."""
    store.create_dataset("d")
    store.put_bytes("d", "a.txt", b"a")
    store.put_bytes("d", "sub/b.txt", b"b")
    store.rm("d", ["a.txt", "sub"])
    assert not store.catalog.has_staged(store.dataset("d").id)
    assert store.status("d")["dirty"] is False and store.info("d").dirty is False
    store.put_bytes("d", "kept.txt", b"k")
    store.snapshot("d")
    store.put_bytes("d", "new.txt", b"n")
    store.rename("d", "new.txt", "moved.txt")
    store.rm("d", ["moved.txt"])
    assert not store.catalog.has_staged(store.dataset("d").id)
    assert store.status("d")["dirty"] is False and store.info("d").dirty is False
    store.rm("d", ["kept.txt"])  # held by the base: a real removal
    assert store.status("d")["staged"]["removed"] == ["kept.txt"]
    assert store.status("d")["dirty"] is True and store.info("d").dirty is True


def test_head_is_a_reserved_ref_meaning_the_head(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "a.txt", b"head bytes")
    snap, _ = store.snapshot("d", tag="v1")
    store.put_bytes("d@head", "a.txt", b"newer")  # NAME@head is NAME, writes included
    assert store.read_bytes("d@head", "a.txt") == b"newer"
    assert store.read_bytes("d@v1", "a.txt") == b"head bytes"
    for bad in ("head", "latest"):
        with pytest.raises(InvalidName):
            store.tag("d", "v1", bad)
        with pytest.raises(InvalidName):
            store.snapshot("d", tag=bad)
    assert store.info("d").tags == {"v1": snap.row.id}


def test_a_short_id_prefix_says_how_long_one_must_be(store: Store) -> None:
    store.create_dataset("d")
    snap, _ = store.snapshot("d")
    with pytest.raises(RefNotFound, match="at least 8 hex"):
        store.resolve(f"d@{snap.row.id[:4]}")
    with pytest.raises(RefNotFound) as info:
        store.resolve("d@nosuchtag")
    assert "8 hex" not in info.value.message


def test_gc_keeps_referenced_and_young(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "keep", b"kept")
    store.snapshot("d")
    store.put_bytes("d", "tmp", b"temporary")
    store.rm("d", ["tmp"])
    assert store.gc(grace_seconds=900)["objects_removed"] == 0
    dry = store.gc(grace_seconds=0, dry_run=True)
    assert dry["objects_removed"] == 1 and dry["bytes_freed"] == len(b"temporary")
    assert store.gc(grace_seconds=0)["objects_removed"] == 1
    assert store.read_bytes("d", "keep") == b"kept"
    assert store.fsck()["ok"]


def test_gc_after_delete_frees_everything(store: Store) -> None:
    store.create_dataset("a")
    store.create_dataset("b")
    store.put_bytes("a", "f", b"shared")
    store.put_bytes("b", "f", b"shared")
    store.snapshot("a")
    store.snapshot("b")
    assert len(list(store.objects.iter_ids())) == 1
    oid = store.stat("b", "f").object
    assert oid is not None
    store.catalog.cache_analysis(oid, "stats/v1", "", "{}")
    store.delete_dataset("a")
    assert store.gc(grace_seconds=0)["objects_removed"] == 0
    assert store.catalog.cached_analysis(oid, "stats/v1", "") == "{}"
    store.delete_dataset("b")
    report = store.gc(grace_seconds=0)
    assert report["objects_removed"] == 1 and report["ranges_removed"] >= 1
    assert store.catalog.cached_analysis(oid, "stats/v1", "") is None
    with pytest.raises(DatasetNotFound):
        store.info("a")


def test_dataset_lifecycle(store: Store) -> None:
    store.create_dataset("d", "desc", {"owner": "bi"})
    with pytest.raises(DatasetExists):
        store.create_dataset("d")
    info = store.update_dataset("d", description="new", metadata={"k": 1})
    assert (info.row.description, info.row.metadata) == ("new", {"k": 1})
    with pytest.raises(InvalidRequest):
        store.update_dataset("d", metadata=["not", "a", "dict"])  # type: ignore[arg-type]


def test_du_counts_logical_physical_exclusive(store: Store) -> None:
    store.create_dataset("a")
    store.create_dataset("b")
    store.put_bytes("a", "x", b"1" * 100)
    store.put_bytes("a", "y", b"2" * 10)
    store.put_bytes("b", "x", b"1" * 100)
    store.snapshot("a")
    store.snapshot("b")
    usage = {u["dataset"]: u for u in store.du()}
    assert usage["a"]["logical_bytes"] == 110
    assert usage["a"]["physical_bytes"] == 110
    assert usage["a"]["exclusive_bytes"] == 10
    assert usage["b"]["exclusive_bytes"] == 0
    assert usage["a"]["head"] == {
        "dirty": False,
        "logical_bytes": 110,
        "physical_bytes": 110,
        "exclusive_bytes": 0,  # the snapshot holds the same bytes
    }


def test_du_counts_heads_never_snapshotted_or_changed(store: Store) -> None:
    """A 3 GiB head with no snapshot showed 0 B; heads count as /v1/stats counts them."""
    store.create_dataset("fresh")
    store.put_bytes("fresh", "big", b"b" * 3000)
    store.create_dataset("moved")
    store.put_bytes("moved", "old", b"o" * 100)
    store.snapshot("moved")
    store.put_bytes("moved", "new", b"n" * 50)
    usage = {u["dataset"]: u for u in store.du()}
    fresh, moved = usage["fresh"], usage["moved"]
    assert (fresh["logical_bytes"], fresh["physical_bytes"], fresh["exclusive_bytes"]) == (
        3000,
        3000,
        3000,
    )
    assert fresh["head"]["dirty"] and fresh["snapshots"] == []
    assert moved["logical_bytes"] == 100 + 150 and moved["physical_bytes"] == 150
    assert moved["head"]["exclusive_bytes"] == 50  # "old" is in the snapshot too
    assert moved["snapshots"][0]["exclusive_bytes"] == 0


def test_changes_staged_during_a_snapshot_stay_staged(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "a", b"1")
    head, upto = store._head_manifest(store.dataset("d"))
    store.put_bytes("d", "b", b"2")
    row = store.dataset("d")
    with store.catalog.write() as db:
        store.catalog.clear_staged(db, row.id, upto)
    assert [r["name"] for r in store.catalog.staged(row.id)] == ["b"]
    assert len(head.ranges) == 1


def test_concurrent_writers_and_snapshots(store_root: Path) -> None:
    Store.open(store_root).create_dataset("d")
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            s = Store.open(store_root)
            for i in range(15):
                s.put_bytes("d", f"w{k}/f{i}", f"{k}-{i}".encode())
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    def snapshotter() -> None:
        try:
            s = Store.open(store_root)
            for _ in range(5):
                s.snapshot("d")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=snapshotter))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = Store.open(store_root)
    final, _ = s.snapshot("d")
    assert final.row.file_count == 60
    for k in range(4):
        for i in range(15):
            assert s.read_bytes("d@latest", f"w{k}/f{i}") == f"{k}-{i}".encode()
    assert s.fsck()["ok"]


def test_processes_put_snapshot_and_gc_at_once(ds_run, store_root: Path, tmp_path: Path) -> None:
    """Two `ds put`, a `ds snapshot` and a `ds gc` as separate processes on one store."""
    import os as _os
    import subprocess

    from tests.conftest import DS_BIN

    ds_run("create", "d")
    srcs = []
    for k in range(2):
        srcs.append(
            make_tree(tmp_path / f"src{k}", {f"p{k}/f{i}": _os.urandom(2000) for i in range(300)})
        )
    env = {**_os.environ, "DS_STORE": str(store_root)}
    procs = [subprocess.Popen([DS_BIN, "put", "d", str(s)], env=env) for s in srcs]
    procs.append(subprocess.Popen([DS_BIN, "snapshot", "d"], env=env))
    procs.append(subprocess.Popen([DS_BIN, "gc", "--grace", "0"], env=env))
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = Store.open(store_root)
    store.snapshot("d", tag="all")
    for k, src in enumerate(srcs):
        for i in range(300):
            assert store.read_bytes("d@all", f"p{k}/f{i}") == (src / f"p{k}/f{i}").read_bytes()
    assert store.fsck()["ok"]


def test_a_version_1_catalog_migrates_keeping_staged_rows_and_the_import_cache(
    tmp_path: Path,
) -> None:
    import sqlite3

    from datastore.catalog.core import MIGRATIONS, SCHEMA_VERSION

    old = Store.open(tmp_path / "store")
    old.create_dataset("d")
    old.put_bytes("d", "a.txt", b"staged before the upgrade")
    # uploaded first, so the import finds it stored as its own file (as format 1 stored
    # every object) and packs nothing: the pack index is dropped below
    old.put_bytes("d", "b.txt", b"imported")
    make_tree(tmp_path / "src", {"b.txt": b"imported"})
    old.put("d", [tmp_path / "src"])
    old.catalog.close()
    db = sqlite3.connect(tmp_path / "store" / "catalog.db", isolation_level=None)
    staged = [r[:11] for r in db.execute("SELECT * FROM staged ORDER BY dir, name")]
    cached = db.execute("SELECT * FROM import_cache").fetchall()
    # rebuild the two tables as version 1 made them
    db.execute("BEGIN")
    dropped = ("staged", "import_cache", "unstaged", "forgotten", "unsynced", "blobs", "packs")
    for table in (*dropped, "chunked"):  # 3, 4, 6, 7, 8 (9 below)
        db.execute(f"DROP TABLE IF EXISTS {table}")
    for column in ("root_meta", "root_mtime_ns"):  # 5
        db.execute(f"ALTER TABLE datasets DROP COLUMN {column}")
    db.execute("ALTER TABLE snapshot_ranges DROP COLUMN delta")  # 9
    v1 = MIGRATIONS[1]
    for create in [s for s in v1.split(";") if "CREATE TABLE staged" in s or "import_cache (" in s]:
        db.execute(create)
    db.executemany("INSERT INTO staged VALUES (?,?,?,?,?,?,?,?,?,?,?)", staged)
    db.executemany("INSERT INTO import_cache VALUES (?,?,?,?,?,?)", cached)
    db.execute("PRAGMA user_version=1")
    db.execute("COMMIT")
    db.close()

    upgraded = Store.open(tmp_path / "store")
    version = upgraded.catalog.db.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    assert upgraded.read_bytes("d", "a.txt") == b"staged before the upgrade"
    assert upgraded.put("d", [tmp_path / "src"]).bytes_hashed == 0  # the import cache survived
    upgraded.snapshot("d", tag="v1")
    assert sorted(e.path for e in upgraded.ls("d@v1", "")) == ["a.txt", "b.txt"]


# forgetting -------------------------------------------------------------------------


def _dated_history(store: Store, monkeypatch: pytest.MonkeyPatch, times: list[str]) -> list[str]:
    """Snapshots of dataset ``d`` taken at ``times`` (UTC), each with a file of its own;
    returns their ids oldest first."""
    import datastore.store as store_module

    store.create_dataset("d")
    ids = []
    for i, at in enumerate(times):
        monkeypatch.setattr(store_module, "utc_now", lambda at=at: at)
        store.put_bytes("d", f"f{i}.txt", f"only in {i} ".encode() * 100)
        if i:
            store.rm("d", [f"f{i - 1}.txt"])
        ids.append(store.snapshot("d")[0].row.id)
    monkeypatch.undo()
    return ids


TIMES = [
    "2026-11-01T10:00:00.000000Z",
    "2026-11-01T12:00:00.000000Z",
    "2026-11-02T09:00:00.000000Z",
    "2026-11-03T08:00:00.000000Z",
    "2026-11-03T20:00:00.000000Z",
    "2026-11-04T07:00:00.000000Z",
]


def test_forget_keep_rules_spare_tags_and_the_base(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _dated_history(store, monkeypatch, TIMES)
    store.tag("d", ids[0], "v1")
    newest_first = ids[::-1]
    dry = store.forget("d", rules=KeepRules(last=2), dry_run=True)
    assert dry.dry_run and dry.forgotten == newest_first[2:5]
    assert dry.kept == [*newest_first[:2], ids[0]]
    assert len(store.log("d")) == 6  # a dry run changes nothing
    daily = store.forget("d", rules=KeepRules(daily=2), dry_run=True)
    assert set(daily.kept) == {ids[5], ids[4], ids[0]}  # newest of 11-04, of 11-03; tagged
    within = store.forget("d", rules=KeepRules(within=86400 * 1.5), dry_run=True)
    assert set(within.kept) == {ids[5], ids[4], ids[3], ids[0]}
    # rules and names together: named ones go even when a rule or a tag would keep them
    done = store.forget("d", ["v1", ids[4]], KeepRules(last=3))
    assert done.forgotten == [ids[4], ids[2], ids[1], ids[0]]
    assert [s.row.id for s in store.log("d")] == [ids[5], ids[3]]
    current, history = store.tag_history("d", "v1")
    assert current is None and [h.snapshot for h in history] == [ids[0], None]
    assert store.read_bytes("d@" + ids[3], "f3.txt").startswith(b"only in 3")
    with pytest.raises(RefNotFound, match="forgotten"):
        store.resolve(f"d@{ids[1][:10]}")
    with pytest.raises(Conflict, match="base"):
        store.forget("d", [ids[5]])
    # the base survives every rule, even one that keeps nothing
    assert store.forget("d", rules=KeepRules(last=0)).forgotten == [ids[3]]
    assert [s.row.id for s in store.log("d")] == [ids[5]]


def test_forget_refuses_what_it_cannot_mean(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "a.txt", b"a")
    store.snapshot("d")
    for bad in ([], ["head"], ["nope"], ["d@x"]):
        with pytest.raises((InvalidRequest, RefNotFound, InvalidName)):
            store.forget("d", bad)
    with pytest.raises(InvalidRequest):
        KeepRules(last=-1)
    with pytest.raises(DatasetNotFound):
        store.forget("nope", rules=KeepRules(last=1))
    assert len(store.log("d")) == 1


def test_gc_reclaims_what_only_forgotten_snapshots_held(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _dated_history(store, monkeypatch, TIMES[:3])
    before = store.gc(0, dry_run=True)["objects_removed"]
    assert before == 0
    store.forget("d", [ids[0]])
    report = store.gc(0)
    assert report["objects_removed"] == 1 and report["bytes_freed"] == len(b"only in 0 ") * 100
    assert store.fsck()["ok"]
    assert store.read_bytes(f"d@{ids[1]}", "f1.txt").startswith(b"only in 1")


def test_lineage_names_a_forgotten_snapshot_instead_of_failing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _dated_history(store, monkeypatch, TIMES[:3])
    store.create_dataset("derived")
    store.put_bytes("derived", "x.txt", b"x")
    store.snapshot("derived", sources=[f"d@{ids[1]}"])
    store.forget("d", [ids[1]])
    own = store.lineage("d")
    assert [p["id"] for p in own["parents"]] == ids[::-1]
    assert [p.get("forgotten", False) for p in own["parents"]] == [False, True, False]
    assert own["consumers"][0]["forgotten"] is True
    down = store.lineage("derived")
    assert down["sources"][0]["snapshot"] == ids[1] and down["sources"][0]["forgotten"]


# older stores ---------------------------------------------------------------------

FORMAT1_STORE = TEST_DATA / "format1-store"


def test_a_store_written_by_format_1_code_opens_reads_writes_and_checks(tmp_path: Path) -> None:
    """tests/data/format1-store was written by the code of commit b7fbb46 (store format
    1, catalog schema 3; tests/data/make_format1_store.sh). Today's ds reads every
    version, its tags and their history, the head's staged changes and lineage as they
    were, migrates the catalog, writes, and fsck finds nothing wrong."""
    import shutil
    import sqlite3

    from datastore.catalog.core import SCHEMA_VERSION

    root = tmp_path / "store"
    shutil.copytree(FORMAT1_STORE, root)
    before = sqlite3.connect(root / "catalog.db").execute("PRAGMA user_version").fetchone()
    assert before == (3,)
    store = Store.open(root)
    assert store.catalog.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.fsck()["ok"]
    v10 = {e.path: (e.size, e.mode) for e in store.entries("sales@v1.0") if not e.is_dir}
    assert v10 == {
        "2026-10.csv": (32, 0o644),
        "sub/readme.txt": (6, 0o600),
        "sub/big.txt": (3000, 0o644),
    }
    assert store.read_bytes("sales@v1.0", "sub/big.txt") == b"x" * 3000
    v11 = {e.path for e in store.entries("sales@v1.1") if not e.is_dir}
    assert v11 == {"2026-10.csv", "2026-11.csv", "sub/readme.txt"}
    status = store.status("sales")
    assert status["dirty"] and status["staged"]["added"] == ["staged/late.txt"]
    assert status["staged"]["removed"] == ["2026-10.csv"]
    assert store.read_bytes("sales", "staged/late.txt") == b"late\n"
    ids = {s.row.message: s.row.id for s in store.log("sales")}
    current, history = store.tag_history("sales", "prod")
    assert current == ids["November"] and [h.snapshot for h in history] == [
        ids["October"],
        ids["November"],
    ]
    assert [h.snapshot for h in store.tag_history("sales", "rc")[1]] == [ids["October"], None]
    assert store.lineage("derived")["sources"][0]["snapshot"] == ids["November"]
    assert store.dataset("sales").description == "monthly sales"
    # and it takes writes of every kind today's code makes
    store.put_bytes("sales", "2026-12.csv", b"region,amount\nnorth,12\n")
    snap, _ = store.snapshot("sales", "v1.2", "December")
    store.set_attrs("sales", "2026-12.csv", owner=(1, 2))
    store.set_attrs("sales", "", mtime_ns=1)
    assert store.forget("sales", ["v1.0"]).forgotten == [ids["October"]]
    # none of that needed a newer format: a ds that knows only format 1 still opens it
    assert json.loads((root / "FORMAT").read_text())["version"] == 1
    store.symlink("sales", "current.csv", "2026-12.csv")  # the first link: the current format
    assert json.loads((root / "FORMAT").read_text()) == {"format": "ds-store", "version": 3}
    assert not list(root.glob("FORMAT.*"))
    report = store.gc(0)
    assert report["objects_removed"] == 1  # big.txt lived only in v1.0
    assert report["objects_packed"] > 0
    assert list(store.objects.iter_ids()) == []  # gc packed every live object
    assert store.fsck()["ok"]
    assert store.read_bytes("sales@v1.2", "2026-11.csv") == b"region,amount\nnorth,11\n"
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.csv").write_bytes(b"region,amount\nsouth,1\n")
    store.put("sales", [src], "imported")  # an import packs small files
    assert store.catalog.packs()
    store.close()
    reopened = Store.open(root)
    assert reopened.stat("sales", "current.csv").target == "2026-12.csv"
    assert reopened.read_bytes("sales", "imported/small.csv") == b"region,amount\nsouth,1\n"
    assert reopened.read_bytes("sales@v1.2", "2026-11.csv") == b"region,amount\nnorth,11\n"
    assert reopened.fsck()["ok"]


def test_every_handle_sees_every_dataset_change_at_once(store_root: Path) -> None:
    """Dataset rows are reused between commits (the mount asks for one several times per
    file); a commit through another handle, or this one, is seen on the next call."""
    a, b = Store.open(store_root), Store.open(store_root)
    a.create_dataset("d")
    assert b.dataset("d").base is None
    b.put_bytes("d", "x.txt", b"1")
    snap, _ = b.snapshot("d", tag="v1")
    assert a.dataset("d").base == snap.row.id
    assert a.read_bytes("d@v1", "x.txt") == b"1"
    a.update_dataset("d", description="seen by b")
    assert b.dataset("d").description == "seen by b"
    b.delete_dataset("d")
    with pytest.raises(DatasetNotFound):
        a.dataset("d")
    a.create_dataset("d")
    assert b.dataset("d").base is None
