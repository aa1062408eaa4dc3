"""Format 3: small files imported into packs, read, deduplicated, checked and collected."""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from datastore import DatastoreError, HashCollision, Store
from datastore.storage import chunker, content
from datastore.storage.packs import read_header
from datastore.storage.reader import read_at
from tests.conftest import ConstantHash, make_tree


def _pack_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "packs").glob("??/*") if p.is_file())


def _tree(n: int = 40) -> dict[str, bytes]:
    files = {f"d/f{i:03}.csv": f"id,value\n{i},{i * i}\n".encode() * (i + 1) for i in range(n)}
    files["d/again.csv"] = files["d/f007.csv"]  # the same bytes twice: one blob
    files["text.txt"] = b"hello packs " * 1000  # compresses
    files["random.bin"] = os.urandom(200_000)  # does not
    return files


def test_an_import_packs_small_files_and_every_view_reads_them(
    store: Store, tmp_path: Path
) -> None:
    files = _tree()
    src = make_tree(tmp_path / "src", files)
    store.create_dataset("d")
    store.put("d", [src])
    assert json.loads((store.root / "FORMAT").read_text())["version"] == 3
    assert list(store.objects.iter_ids()) == []  # nothing loose
    packs = _pack_files(store.root)
    assert packs and store.catalog.blob_count() == len(files) - 1
    for rel, data in files.items():
        assert store.read_bytes("d", rel) == data
        oid = store.stat("d", rel).file_object()
        with store.open_object(oid) as reader:
            assert reader.size == len(data)
            view = memoryview(bytearray(7))
            n = reader.readinto(view, len(data) // 2)
            assert bytes(view[:n]) == data[len(data) // 2 :][:7]
    # the pack's own header agrees with the index, and the text blob was compressed
    indexed = {(r.id, r.pack, r.offset, r.length) for r in store.catalog.blob_refs()}
    listed = set()
    for p in packs:
        for blob, _, length, _, offset in read_header(p.read_bytes()):
            listed.add((blob, p.parent.name + p.name, offset, length))
    assert listed == indexed
    text = store.catalog.blob(store.stat("d", "text.txt").file_object())
    assert text is not None and text.codec == 1 and text.length < text.raw_length // 10
    rand = store.catalog.blob(store.stat("d", "random.bin").file_object())
    assert rand is not None and rand.codec == 0
    snap, _ = store.snapshot("d", tag="v1")
    out = tmp_path / "co"
    store.checkout("d@v1", out)
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    assert store.fsck()["ok"]


def test_checkout_reads_a_blob_again_when_its_pack_moved_after_the_lookup(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout looks up every packed blob first; a repack may move one before the
    copy reaches it, and that file is then read the ordinary way (looked up again)."""
    files = _tree(10)
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", files)])
    looked_up = store.content.packed_whole

    def stale(oids: list[str]) -> dict[str, object]:
        refs = looked_up(oids)
        moved = sorted(refs)[::2]  # half of them "moved" to a pack that is gone
        return {o: replace(r, pack="0" * 32) if o in moved else r for o, r in refs.items()}

    monkeypatch.setattr(store.content, "packed_whole", stale)
    out = tmp_path / "co"
    assert store.checkout("d", out) == len(files)
    assert {rel: (out / rel).read_bytes() for rel in files} == files


def test_a_second_import_of_the_same_bytes_stores_nothing_new(store: Store, tmp_path: Path) -> None:
    files = _tree(10)
    store.create_dataset("a")
    store.create_dataset("b")
    store.put("a", [make_tree(tmp_path / "one", files)])
    before = (_pack_files(store.root), store.catalog.blob_count())
    store.put("b", [make_tree(tmp_path / "two", files)])  # other paths, no import cache
    assert (_pack_files(store.root), store.catalog.blob_count()) == before


def test_a_forced_collision_with_a_packed_blob_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store", hasher=ConstantHash)
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "one", {"a.txt": b"first"})])
    with pytest.raises(HashCollision):
        store.put("d", [make_tree(tmp_path / "two", {"b.txt": b"second"})])
    with pytest.raises(HashCollision):  # within one import, against a blob not yet indexed
        store.put("d", [make_tree(tmp_path / "three", {"c.txt": b"x", "e.txt": b"y"})])
    assert store.read_bytes("d", "a.txt") == b"first"
    assert [e.path for e in store.entries("d") if not e.is_dir] == ["a.txt"]


def _damage(pack: Path, at: int, data: bytes | None = None, truncate: bool = False) -> None:
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        if truncate:
            f.truncate(at)
        else:
            f.seek(at)
            f.write(data or bytes([f.read(1)[0] ^ 0xFF]))


def _packed_store(store: Store, tmp_path: Path) -> dict[str, bytes]:
    files = {"a/one.csv": b"x,y\n1,2\n" * 50, "a/two.csv": b"x,y\n3,4\n" * 60}
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", files)])
    store.snapshot("d", tag="v1")
    return files


def _only_pack(store: Store) -> Path:
    packs = _pack_files(store.root)
    assert len(packs) == 1  # two small files, one import thread's pack
    return packs[0]


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing", "stale"])
def test_fsck_finds_a_damaged_pack_and_names_the_paths(
    store: Store, tmp_path: Path, damage: str
) -> None:
    _packed_store(store, tmp_path)
    pack = _only_pack(store)
    oid = store.stat("d", "a/one.csv").file_object()
    ref = store.catalog.blob(oid)
    assert ref is not None
    if damage == "flip":
        _damage(pack, ref.offset + 3)
    elif damage == "truncate":
        _damage(pack, ref.offset + ref.length + 10, truncate=True)
    elif damage == "missing":
        pack.unlink()
    else:  # the index places the blob where the pack has none
        with store.catalog.write() as db:
            db.execute("UPDATE blobs SET offset=offset+1 WHERE id=?", (oid,))
    report = store.fsck()
    assert not report["ok"]
    kinds = {(p["kind"], p["problem"]) for p in report["problems"]}
    expected = {
        "flip": "corrupt",
        "truncate": "corrupt",
        "missing": "missing",
        "stale": "stale_index",
    }[damage]
    assert ("pack", expected) in kinds
    paths = {
        (a["snapshot"] is None, a["path"])
        for p in report["problems"]
        if p["kind"] == "object" and p["id"] == oid
        for a in p["affected"]
    }
    assert (False, "a/one.csv") in paths  # v1 holds it


def test_an_intact_import_repairs_a_damaged_blob(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _packed_store(store, tmp_path)
    pack = _only_pack(store)
    oid = store.stat("d", "a/one.csv").file_object()
    ref = store.catalog.blob(oid)
    assert ref is not None
    _damage(pack, ref.offset)
    assert not store.fsck()["ok"]
    with caplog.at_level(logging.WARNING, "ds.content"):
        store.put("d", [make_tree(tmp_path / "again", {"copy.csv": files["a/one.csv"]})])
    assert "damaged" in caplog.text
    moved = store.catalog.blob(oid)
    assert moved is not None and moved.pack != ref.pack
    assert store.read_bytes("d@v1", "a/one.csv") == files["a/one.csv"]
    report = store.fsck()
    assert [p["kind"] for p in report["problems"]] == ["pack"]  # the old pack is still bad
    assert report["problems"][0]["affected"] == []  # but no one needs it any more


def test_gc_removes_packs_nothing_needs_and_keeps_the_rest(store: Store, tmp_path: Path) -> None:
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "one", {"old.csv": b"a,b\n1,2\n"})])
    store.snapshot("d", tag="v1")
    first = set(_pack_files(store.root))
    store.put("d", [make_tree(tmp_path / "two", {"new.csv": b"a,b\n3,4\n"})])
    store.rm("d", ["old.csv"])
    store.snapshot("d", tag="v2")
    both = set(_pack_files(store.root))
    assert len(both) == 2
    assert store.gc(0, dry_run=True)["packs_removed"] == 0  # v1 still holds old.csv
    store.forget("d", ["v1"])
    dry = store.gc(0, dry_run=True)
    assert dry["packs_removed"] == 1 and dry["bytes_freed"] == sum(p.stat().st_size for p in first)
    assert set(_pack_files(store.root)) == both
    done = store.gc(0)
    assert done["packs_removed"] == 1 and done["objects_removed"] == 1
    assert set(_pack_files(store.root)) == both - first
    assert store.read_bytes("d@v2", "new.csv") == b"a,b\n3,4\n"
    assert store.fsck()["ok"]


def test_a_pack_no_commit_names_goes_after_the_grace_period(store: Store, tmp_path: Path) -> None:
    """A writer killed between storing a pack and its commit leaves an orphan."""
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "one", {"a.csv": b"a\n1\n"})])
    (pack,) = _pack_files(store.root)
    orphan = pack.with_name("0" * 30)
    orphan.write_bytes(pack.read_bytes())
    assert store.gc(3600)["packs_removed"] == 0  # young: may be a commit in flight
    assert store.gc(0)["packs_removed"] == 1
    assert _pack_files(store.root) == [pack]


def test_a_failed_import_leaves_no_pack(store: Store, tmp_path: Path) -> None:
    """Extensions are checked after the files are stored, before the commit: the packs
    written meanwhile go (no index row can name them)."""
    store.create_dataset("d")
    store.update_dataset("d", rules={"allow_extensions": ["csv"]})
    src = make_tree(tmp_path / "src", {"ok.csv": b"a\n1\n", "later.csv": b"b\n2\n"})
    store.put("d", [src])
    packs = _pack_files(store.root)
    (src / "new.csv").write_bytes(b"c\n3\n")
    (src / "bad.bin").write_bytes(b"\x00\x01")
    with pytest.raises(DatastoreError):
        store.put("d", [src])
    assert _pack_files(store.root) == packs
    assert list((store.root / "packs" / "tmp").iterdir()) == []


def test_a_packed_table_answers_analytics(store: Store, tmp_path: Path) -> None:
    from datastore import Analytics

    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", {"t.csv": b"a,b\n1,x\n2,y\n3,z\n"})])
    stats = Analytics(store).stats("d", "t.csv")
    assert stats["row_count"] == 3


# chunked objects ------------------------------------------------------------------


def _stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in _pack_files(root))


def _rows(n: int, seed: int = 0) -> bytes:
    """CSV-like text that zstd cannot squeeze much (random digits)."""
    rnd = random.Random(seed)
    return b"".join(b"%d,%d,%d\n" % (i, rnd.getrandbits(60), rnd.getrandbits(60)) for i in range(n))


def test_a_large_file_is_cut_into_chunks_and_reads_back_anywhere(
    store: Store, tmp_path: Path
) -> None:
    data = _rows(200_000)  # ~8 MB
    assert len(data) > 4 * chunker.CHUNK_MAX // 2
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", {"big.csv": data})])
    oid = store.stat("d", "big.csv").file_object()
    listed = store.catalog.chunk_list(oid)
    assert listed is not None and listed[0] == len(data)
    chunks = chunker.decode(listed[1])
    assert len(chunks) > 2 and all(n <= chunker.CHUNK_MAX for _, n in chunks)
    assert list(store.objects.iter_ids()) == []
    rnd = random.Random(1)
    with store.open_object(oid) as reader:
        assert reader.size == len(data)
        for _ in range(200):
            at = rnd.randrange(len(data))
            n = rnd.choice([1, 4096, 131072, 1 << 20, 3 << 20])
            assert read_at(reader, n, at) == data[at : at + n]
    assert store.read_bytes("d", "big.csv") == data
    store.snapshot("d", tag="v1")
    store.checkout("d@v1", tmp_path / "co")
    assert (tmp_path / "co" / "big.csv").read_bytes() == data
    assert store.fsck()["ok"]


def test_appending_to_a_large_file_stores_about_the_appended_bytes(
    store: Store, tmp_path: Path
) -> None:
    """A table that grows by appending costs the appended bytes and the one chunk the
    old end sat in, not a second copy."""
    data = _rows(500_000)  # ~20 MB
    src = make_tree(tmp_path / "src", {"t.csv": data})
    store.create_dataset("d")
    store.put("d", [src])
    store.snapshot("d", tag="v1")
    before = _stored_bytes(store.root)
    more = _rows(5_000, seed=2)  # 1%
    (src / "t.csv").write_bytes(data + more)
    store.put("d", [src])
    store.snapshot("d", tag="v2")
    grown = _stored_bytes(store.root) - before
    assert grown <= len(more) + chunker.CHUNK_MAX + 4096
    assert store.read_bytes("d@v2", "t.csv") == data + more
    assert store.read_bytes("d@v1", "t.csv") == data


def test_an_insertion_in_a_large_file_stores_the_chunks_around_it(
    store: Store, tmp_path: Path
) -> None:
    data = os.urandom(12 << 20)
    src = make_tree(tmp_path / "src", {"blob.bin": data})
    store.create_dataset("d")
    store.put("d", [src])
    before = _stored_bytes(store.root)
    changed = data[: 5 << 20] + os.urandom(4096) + data[5 << 20 :]
    (src / "blob.bin").write_bytes(changed)
    store.put("d", [src])
    assert _stored_bytes(store.root) - before <= 4096 + 2 * chunker.CHUNK_MAX + 4096
    assert store.read_bytes("d", "blob.bin") == changed


@pytest.mark.parametrize("ahead_min", [0, content.AHEAD_MIN])
def test_a_large_file_that_repeats_itself_stores_its_chunks_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead_min: int
) -> None:
    """Chunks of a large file are prepared several at a time on the chunk pool: a chunk
    met again while its first copy is still on its way into the pack is stored once all
    the same (and so it is when each chunk is stored as it is cut)."""
    monkeypatch.setattr(content, "AHEAD_MIN", ahead_min)
    block = os.urandom(3 << 20)
    data = block * 6
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", {"same.bin": data})])
    assert _stored_bytes(store.root) <= len(block) + 2 * chunker.CHUNK_MAX
    assert store.read_bytes("d", "same.bin") == data
    assert store.fsck()["ok"]


def _damage_chunk(store: Store, path: str, n: int) -> str:
    """Flip a byte of the ``n``-th chunk of ``path`` in dataset d; the file's object id."""
    oid = store.stat("d", path).file_object()
    listed = store.catalog.chunk_list(oid)
    assert listed is not None
    chunk = store.catalog.blob(chunker.decode(listed[1])[n][0])
    assert chunk is not None
    _damage(store.root / "packs" / chunk.pack[:2] / chunk.pack[2:], chunk.offset + 1)
    return oid


def test_a_damaged_chunk_names_every_file_that_holds_it(store: Store, tmp_path: Path) -> None:
    data = _rows(150_000)
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", {"a.csv": data, "copy/a.csv": data})])
    store.snapshot("d", tag="v1")
    oid = _damage_chunk(store, "a.csv", 0)
    report = store.fsck()
    assert not report["ok"]
    (obj,) = [p for p in report["problems"] if p["kind"] == "object"]
    assert obj["id"] == oid and obj["problem"] == "corrupt"
    assert {a["path"] for a in obj["affected"]} == {"a.csv", "copy/a.csv"}
    (bad_pack,) = [p for p in report["problems"] if p["kind"] == "pack"]
    assert {a["path"] for a in bad_pack["affected"]} == {"a.csv", "copy/a.csv"}
    with pytest.raises(DatastoreError):
        store.read_bytes("d@v1", "a.csv")


def test_gc_keeps_chunks_a_live_version_shares(store: Store, tmp_path: Path) -> None:
    data = _rows(150_000)
    src = make_tree(tmp_path / "src", {"t.csv": data})
    store.create_dataset("d")
    store.put("d", [src])
    store.snapshot("d", tag="v1")
    (src / "t.csv").write_bytes(data + b"1,2,3\n")
    store.put("d", [src])
    store.snapshot("d", tag="v2")
    store.forget("d", ["v1"])
    report = store.gc(0)
    assert report["objects_removed"] >= 1  # v1's chunk list and its old last chunk
    assert store.catalog.chunk_list(store.stat("d@v2", "t.csv").file_object()) is not None
    assert store.read_bytes("d@v2", "t.csv") == data + b"1,2,3\n"
    assert store.fsck()["ok"]


# repacking ------------------------------------------------------------------------


def test_gc_merges_small_packs_and_readers_open_before_keep_reading(
    store: Store, tmp_path: Path
) -> None:
    big = _rows(120_000)
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "one", {"a.csv": b"a\n1\n", "big.csv": big})])
    store.put("d", [make_tree(tmp_path / "two", {"b.csv": b"b\n2\n"})])
    store.put("d", [make_tree(tmp_path / "three", {"c.csv": b"c\n3\n"})])
    store.snapshot("d", tag="v1")
    before = _pack_files(store.root)
    assert len(before) >= 3
    reader = store.open_object(store.stat("d", "big.csv").file_object())  # looked up now
    report = store.gc(0)
    assert report["packs_repacked"] == len(before)
    after = _pack_files(store.root)
    assert len(after) == 1 and not set(after) & set(before)
    assert read_at(reader, len(big), 0) == big  # its packs went: it looks again
    reader.close()
    for path, data in {"a.csv": b"a\n1\n", "b.csv": b"b\n2\n", "big.csv": big}.items():
        assert store.read_bytes("d@v1", path) == data
    assert store.fsck()["ok"]
    assert store.gc(0)["packs_repacked"] == 0  # one small pack has nothing to merge with


def test_gc_repacks_a_mostly_dead_pack(store: Store, tmp_path: Path) -> None:
    files = {f"f{i}.bin": os.urandom(300_000) for i in range(20)}  # ~6 MB, one pack
    store.create_dataset("d")
    store.put("d", [make_tree(tmp_path / "src", files)])
    store.snapshot("d", tag="v1")
    store.rm("d", [f"f{i}.bin" for i in range(15)])
    store.snapshot("d", tag="v2")
    store.forget("d", ["v1"])
    dry = store.gc(0, dry_run=True)
    assert dry["packs_repacked"] >= 1 and dry["bytes_reclaimed"] >= 14 * 300_000
    held = _stored_bytes(store.root)
    done = store.gc(0)
    assert done["bytes_reclaimed"] == dry["bytes_reclaimed"]
    assert _stored_bytes(store.root) <= held - done["bytes_reclaimed"] + 4096
    for i in range(15, 20):
        assert store.read_bytes("d@v2", f"f{i}.bin") == files[f"f{i}.bin"]
    assert store.fsck()["ok"]


def test_gc_packs_loose_objects_once_past_the_grace_period(store: Store) -> None:
    """Uploads (and the mount's closes) store each file whole; gc packs them later."""
    store.create_dataset("d")
    data = _rows(60_000)
    store.put_bytes("d", "up.csv", data)
    store.put_bytes("d", "small.txt", b"tiny upload")
    store.snapshot("d", tag="v1")
    assert len(list(store.objects.iter_ids())) == 2
    assert store.gc(3600)["objects_packed"] == 0  # young
    report = store.gc(0)
    assert report["objects_packed"] == 2 and report["bytes_packed"] == len(data) + 11
    assert list(store.objects.iter_ids()) == []
    assert store.read_bytes("d@v1", "up.csv") == data
    assert store.catalog.chunk_list(store.stat("d", "up.csv").file_object()) is not None
    assert store.fsck()["ok"]


def test_du_counts_a_chunk_two_versions_share_once(store: Store, tmp_path: Path) -> None:
    data = _rows(300_000)  # ~12 MB
    more = b"9,9,9\n" * 1000
    src = make_tree(tmp_path / "src", {"t.csv": data})
    store.create_dataset("d")
    store.put("d", [src])
    store.snapshot("d", tag="v1")
    (src / "t.csv").write_bytes(data + more)
    store.put("d", [src])
    store.snapshot("d", tag="v2")
    (usage,) = store.du("d")
    assert usage["logical_bytes"] == 2 * len(data) + len(more)
    assert (
        len(data) + len(more)
        <= usage["physical_bytes"]
        <= len(data) + len(more) + 2 * chunker.CHUNK_MAX
    )
    v1, v2 = usage["snapshots"]
    assert v1["physical_bytes"] == len(data) and v2["physical_bytes"] == len(data) + len(more)
    # what forgetting one version would free: the chunks only it holds
    assert v1["exclusive_bytes"] <= chunker.CHUNK_MAX
    assert v2["exclusive_bytes"] <= chunker.CHUNK_MAX + len(more)


@pytest.mark.parametrize("ahead_min", [0, content.AHEAD_MIN])
def test_a_forced_chunk_collision_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead_min: int
) -> None:
    """Under a hasher that maps everything to one id, the second chunk of a large file
    collides with the first: refused, nothing staged, whether chunks are prepared on the
    chunk pool or one by one."""
    monkeypatch.setattr(content, "AHEAD_MIN", ahead_min)
    store = Store.open(tmp_path / "store", hasher=ConstantHash)
    store.create_dataset("d")
    with pytest.raises(HashCollision):
        store.put("d", [make_tree(tmp_path / "src", {"big.bin": os.urandom(6 << 20)})])
    assert [e.path for e in store.entries("d") if not e.is_dir] == []
    assert _pack_files(store.root) == []


def test_an_intact_import_repairs_a_damaged_chunk(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _rows(150_000)
    src = make_tree(tmp_path / "src", {"t.csv": data})
    store.create_dataset("d")
    store.put("d", [src])
    store.snapshot("d", tag="v1")
    _damage_chunk(store, "t.csv", 1)
    with pytest.raises(DatastoreError):
        store.read_bytes("d@v1", "t.csv")
    store.update_dataset("d", description="re-import without the cache")
    with caplog.at_level(logging.WARNING, "ds.content"):
        store.put("d", [make_tree(tmp_path / "again", {"t.csv": data})], "copy")
    assert "damaged" in caplog.text
    assert store.read_bytes("d@v1", "t.csv") == data
    report = store.fsck()
    assert all(p["kind"] == "pack" and not p["affected"] for p in report["problems"])
