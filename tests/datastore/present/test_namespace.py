"""The tree the mount and ds:// show, resolved without FUSE."""

from __future__ import annotations

import pytest

from datastore.errors import (
    DatasetNotFound,
    FileNotFound,
    InvalidName,
    ReadOnlyRef,
    RefNotFound,
)
from datastore.present.namespace import Namespace, locate
from datastore.store import Store


@pytest.fixture
def ns(store: Store) -> Namespace:
    store.create_dataset("sales")
    store.put_bytes("sales", "a/b.csv", b"x,y\n1,2\n")
    store.snapshot("sales", tag="v1.0")
    store.put_bytes("sales", "a/b.csv", b"x,y\n3,4\n5,6\n")
    store.create_dataset("empty")
    return Namespace(store)


def test_locate_splits_spec_and_path() -> None:
    assert locate("/").is_root
    loc = locate("/sales@v1.0/a/b.csv")
    assert (loc.spec, loc.name, loc.ref, loc.path, loc.read_only) == (
        "sales@v1.0",
        "sales",
        "v1.0",
        "a/b.csv",
        True,
    )
    head = locate("sales/a")
    assert (head.spec, head.path, head.read_only) == ("sales", "a", False)
    assert str(head.child("b.csv")) == "/sales/a/b.csv"
    assert locate("/").child("sales@latest").ref == "latest"


def test_locate_refuses_what_cannot_exist() -> None:
    with pytest.raises(DatasetNotFound):
        locate("/.git")
    with pytest.raises(InvalidName):
        locate("/sales@bad ref!")


def test_root_lists_heads_only(ns: Namespace) -> None:
    names = [n for n, _ in ns.listdir(locate("/"))]
    assert names == ["empty", "sales"]
    root = ns.stat(locate("/"))
    assert root.is_dir and root.read_only and root.mode & 0o222 == 0


def test_head_and_ref_resolve_to_their_content(ns: Namespace) -> None:
    head = ns.stat(locate("/sales/a/b.csv"))
    pinned = ns.stat(locate("/sales@v1.0/a/b.csv"))
    assert head.size == 12 and pinned.size == 8
    with ns.open(locate("/sales@v1.0/a/b.csv")) as f:
        assert f.read() == b"x,y\n1,2\n"
    assert not head.read_only and head.mode & 0o200
    assert pinned.read_only and pinned.mode & 0o222 == 0
    snap = ns.store.log("sales")[0].row.id
    by_id = ns.stat(locate(f"/sales@{snap[:8]}/a/b.csv"))
    assert by_id.object == pinned.object
    assert ns.pin(locate("/sales@v1.0/a")).spec == f"sales@{snap}"


def test_listdir_of_a_version(ns: Namespace) -> None:
    assert [n for n, _ in ns.listdir(locate("/sales@v1.0"))] == ["a"]
    ((name, node),) = ns.listdir(locate("/sales/a"))
    assert name == "b.csv" and not node.is_dir and node.size == 12


def test_errors_are_store_errors(ns: Namespace) -> None:
    with pytest.raises(DatasetNotFound):
        ns.stat(locate("/nosuch/x"))
    with pytest.raises(RefNotFound):
        ns.stat(locate("/sales@v9/a"))
    with pytest.raises(FileNotFound):
        ns.stat(locate("/sales/a/none"))
    with pytest.raises(ReadOnlyRef):
        ns.writable(locate("/sales@v1.0/a"))
    with pytest.raises(ReadOnlyRef):
        ns.writable(locate("/"))
    assert ns.writable(locate("/sales/a/b.csv")) == "sales"


def test_namespace_imports_no_view() -> None:
    import subprocess
    import sys

    code = (
        "import sys, datastore.present.namespace, datastore.present.fsspec_ds;"
        "bad=[m for m in sys.modules if m.split('.')[0] in"
        " ('mount','cli','httpapi','pyfuse3','mfusepy','click','aiohttp')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
