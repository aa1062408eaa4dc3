"""Symbolic links as entries of their own (store format 2): stored as text, never followed
by the store, and carried through snapshots, diffs, checkouts, put, gc and fsck."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from datastore.errors import Conflict, InvalidPath, StoreCorrupt
from datastore.store import Store
from tests.conftest import make_tree


def test_a_link_is_stored_as_its_target_and_never_followed(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "data/a.csv", b"x,y\n1,2\n")
    link = store.symlink("d", "latest/a.csv", "../data/a.csv", owner=(7, 8))
    assert (link.kind, link.target, link.size, link.mode) == ("symlink", "../data/a.csv", 13, 0o777)
    got = store.stat("d", "latest/a.csv")
    assert got.target == "../data/a.csv" and got.owner == (7, 8) and got.object is None
    assert store.stat("d", "latest").is_dir  # its directory was made, as for a file
    with pytest.raises(InvalidPath, match="symbolic link"):
        store.read_bytes("d", "latest/a.csv")
    # the store keeps any target POSIX allows: absolute, dangling, outside the dataset
    for i, target in enumerate(["/etc/passwd", "../../../../x", "no such", "é/ü"]):
        assert store.symlink("d", f"t{i}", target).target == target
    with pytest.raises(Conflict):
        store.symlink("d", "data/a.csv", "x")  # the path is taken
    with pytest.raises(Conflict):
        store.symlink("d", "latest/a.csv/below", "x")  # a link is not a directory
    for bad in ["", "a\x00b", "x" * 4096]:
        with pytest.raises(InvalidPath):
            store.symlink("d", "bad", bad)
    assert not any(e.path == "bad" for e in store.ls("d"))


def test_links_travel_through_snapshots_diffs_renames_and_removal(store: Store) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "a.txt", b"a")
    store.symlink("d", "cur", "a.txt")
    store.symlink("d", "gone", "a.txt")
    v1, _ = store.snapshot("d", "v1")
    assert v1.row.file_count == 1  # links are not files
    store.rm("d", ["cur"])
    store.symlink("d", "cur", "b.txt")  # retargeted
    store.rename("d", "gone", "moved")
    store.symlink("d", "new", "/abs")
    assert store.stat("d@v1", "cur").target == "a.txt"
    diff = store.diff("d@v1", "d")
    assert diff["modified"] == [
        {
            "path": "cur",
            "from_object": None,
            "to_object": None,
            "from_size": 5,
            "to_size": 5,
            "from_target": "a.txt",
            "to_target": "b.txt",
        }
    ]
    assert diff["renamed"] == [
        {"from": "gone", "to": "moved", "object": None, "size": 5, "target": "a.txt"}
    ]
    assert diff["added"] == [{"path": "new", "object": None, "size": 4, "target": "/abs"}]
    store.snapshot("d", "v2")
    assert store.diff("d@v2", "d")["summary"]["modified"] == 0
    # a file written over a link replaces it and keeps none of the link's info
    store.put_bytes("d", "new", b"now a file")
    replaced = store.stat("d", "new")
    assert replaced.is_file and replaced.target is None and "target" not in replaced.info
    assert store.gc(0)["objects_removed"] == 0
    assert store.fsck()["ok"]


def test_checkout_makes_links_after_everything_else(store: Store, tmp_path: Path) -> None:
    store.create_dataset("d")
    store.put_bytes("d", "lib/python/x.py", b"print(1)\n")
    store.symlink("d", "lib64", "lib")
    store.symlink("d", "escape", str(tmp_path / "outside"))
    store.snapshot("d", "v1")
    out = tmp_path / "co"
    store.checkout("d@v1", out)
    assert os.readlink(out / "lib64") == "lib"
    assert (out / "lib64" / "python" / "x.py").read_bytes() == b"print(1)\n"
    assert os.readlink(out / "escape") == str(tmp_path / "outside")
    assert not (tmp_path / "outside").exists()  # made, not written through


def test_put_round_trips_a_tree_of_links(store: Store, tmp_path: Path) -> None:
    """What put stores from a tree, checkout gives back: same links, same targets."""
    src = make_tree(tmp_path / "src", {"bin/tool": b"#!/bin/sh\n", "lib/a.so": b"\x7fELF"})
    (src / "lib64").symlink_to("lib")
    (src / "bin" / "t").symlink_to("tool")
    (src / "bin" / "dangling").symlink_to("../nowhere")
    store.create_dataset("d")
    result = store.put("d", [src])
    assert sorted(result.added) == ["bin/dangling", "bin/t", "bin/tool", "lib/a.so", "lib64"]
    store.snapshot("d", "v1")
    out = tmp_path / "co"
    store.checkout("d@v1", out)
    for rel in ("lib64", "bin/t", "bin/dangling"):
        assert os.readlink(out / rel) == os.readlink(src / rel)
    assert (out / "lib64" / "a.so").read_bytes() == b"\x7fELF"
    (src / "lib64").unlink()
    (src / "lib64").symlink_to("lib/")  # retargeted: a change put sees
    assert store.put("d", [src]).modified == ["lib64"]


def test_a_store_newer_than_this_code_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store.open(root).close()
    assert json.loads((root / "FORMAT").read_text())["version"] == 3  # new stores start at 3
    for version in (4, 0, "3"):
        (root / "FORMAT").write_text(json.dumps({"format": "ds-store", "version": version}))
        with pytest.raises(StoreCorrupt):
            Store.open(root)
