"""The ds:// protocol: pandas, pyarrow and duckdb read through it; writes land in the head."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from datastore.present.fsspec_ds import DatasetFileSystem
from datastore.store import Store
from tests.conftest import gc_running, make_tree, wait_until

pd = pytest.importorskip("pandas")


@pytest.fixture
def fs(store: Store, store_root: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetFileSystem:
    monkeypatch.setenv("DS_STORE", str(store_root))
    store.create_dataset("sales")
    store.put_bytes("sales", "q1.csv", b"region,amount\nnorth,10\nsouth,20\n")
    store.snapshot("sales", tag="v1.0")
    store.put_bytes("sales", "q1.csv", b"region,amount\nnorth,11\n")
    return fsspec.filesystem("ds", store=str(store_root), skip_instance_cache=True)


def test_registered_by_entry_point(fs: DatasetFileSystem) -> None:
    assert isinstance(fs, DatasetFileSystem)
    assert fsspec.get_filesystem_class("ds") is DatasetFileSystem


def test_pandas_reads_head_and_ref(fs: DatasetFileSystem, store_root: Path) -> None:
    opts = {"store": str(store_root)}
    assert pd.read_csv("ds://sales/q1.csv", storage_options=opts)["amount"].tolist() == [11]
    old = pd.read_csv("ds://sales@v1.0/q1.csv", storage_options=opts)
    assert old["amount"].tolist() == [10, 20]
    assert pd.read_csv("ds://sales@latest/q1.csv")["amount"].sum() == 30  # DS_STORE


def test_pandas_writes_parquet_to_head(fs: DatasetFileSystem, store: Store) -> None:
    df = pd.DataFrame({"a": list(range(100)), "b": ["x"] * 100})
    df.to_parquet("ds://sales/out/t.parquet", storage_options={"store": str(store.root)})
    assert store.stat("sales", "out/t.parquet").size > 0
    back = pd.read_parquet("ds://sales/out/t.parquet", storage_options={"store": str(store.root)})
    assert back.equals(df)


def test_pyarrow_reads(fs: DatasetFileSystem) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    pd.DataFrame({"v": [1, 2, 3]}).to_parquet(fs.open("sales/t.parquet", "wb"))
    assert pq.read_table("sales/t.parquet", filesystem=fs).column("v").to_pylist() == [1, 2, 3]
    with fs.open("sales@v1.0/q1.csv") as f:
        assert pcsv.read_csv(f).num_rows == 2


def test_duckdb_reads(fs: DatasetFileSystem) -> None:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register_filesystem(fs)
    total = con.execute("select sum(amount) from read_csv('ds://sales@v1.0/q1.csv')").fetchone()
    assert total == (30,)


def test_ls_info_and_errors(fs: DatasetFileSystem) -> None:
    assert fs.ls("", detail=False) == ["sales"]
    assert fs.ls("sales@v1.0", detail=False) == ["sales@v1.0/q1.csv"]
    assert fs.info("ds://sales/q1.csv")["size"] == 23
    assert fs.cat_file("sales/q1.csv", start=7, end=13) == b"amount"
    with pytest.raises(FileNotFoundError):
        fs.info("sales/none.csv")
    with pytest.raises(FileNotFoundError):
        fs.info("nosuch/x")
    with pytest.raises(PermissionError):
        fs.open("sales@v1.0/q1.csv", "wb")
    fs.mv("sales/q1.csv", "sales/q2.csv")
    assert fs.exists("sales/q2.csv") and not fs.exists("sales/q1.csv")
    fs.rm("sales/q2.csv")
    assert not fs.exists("sales/q2.csv")
    assert fs.exists("sales@v1.0/q1.csv")


def test_failed_write_stages_nothing(fs: DatasetFileSystem, store: Store) -> None:
    with pytest.raises(RuntimeError), fs.open("sales/half.bin", "wb") as f:
        f.write(b"partial")
        raise RuntimeError("writer died")
    assert not fs.exists("sales/half.bin")


def test_gc_beside_fsspec_writes_and_imports_loses_nothing(
    fs: DatasetFileSystem, store: Store, store_root: Path, tmp_path: Path
) -> None:
    """Promise 7 for the other writers: a ``ds://`` file open across gc runs, and imports
    (``ds put``, which the inbox uses too) racing gc."""
    src = make_tree(tmp_path / "src", {f"f{i:03d}.csv": f"a\n{i}\n".encode() for i in range(200)})
    with gc_running(store_root) as runs:
        with fs.open("sales/open.bin", "wb") as f:
            f.write(b"first half ")
            seen = len(runs)
            wait_until(lambda: len(runs) >= seen + 2)
            f.write(b"second half")
        for i in range(5):
            store.put("sales", [src], to=f"batch{i}")
    assert store.read_bytes("sales", "open.bin") == b"first half second half"
    assert store.read_bytes("sales", "batch4/f199.csv") == b"a\n199\n"
    assert store.fsck()["ok"]


def test_duckdb_reads_through_a_registered_ds_filesystem(fs: DatasetFileSystem) -> None:
    import duckdb

    con = duckdb.connect()
    con.register_filesystem(fs)
    rows = con.execute("SELECT region, amount FROM read_csv('ds://sales@v1.0/q1.csv')").fetchall()
    assert rows == [("north", 10), ("south", 20)]
    assert fs.modified("sales/q1.csv").tzinfo is not None


def test_copy_and_mkdir(fs: DatasetFileSystem, store: Store) -> None:
    fs.copy("sales@v1.0/q1.csv", "sales/old/q1.csv")  # from a version into the head
    assert store.read_bytes("sales", "old/q1.csv") == store.read_bytes("sales@v1.0", "q1.csv")
    fs.copy("sales/q1.csv", "sales/q1-copy.csv")
    assert fs.cat_file("sales/q1-copy.csv") == fs.cat_file("sales/q1.csv")
    fs.mkdir("ds://newds")  # a new dataset, as users expect
    assert "newds" in {d.name for d in store.list_datasets()}
    fs.mkdir("newds/sub")
    assert fs.isdir("newds/sub")
    with pytest.raises(FileExistsError):
        fs.mkdir("newds")
    with pytest.raises(PermissionError):
        fs.mkdir("sales@v1.0/nope")
    with pytest.raises(PermissionError):
        fs.copy("sales/q1.csv", "sales@v1.0/x.csv")


def test_polars_reads_and_writes_through_ds(fs: DatasetFileSystem, store: Store) -> None:
    """polars 1.x and later take no fsspec URL of a scheme they do not know (they read it
    as a local path), so their users hand them ``fsspec.open`` file objects: both ways."""
    pl = pytest.importorskip("polars")
    opts = {"store": str(store.root)}
    with fsspec.open("ds://sales@v1.0/q1.csv", **opts) as f:
        assert pl.read_csv(f)["amount"].to_list() == [10, 20]
    frame = pl.DataFrame({"k": [1, 2, 3], "s": ["a", "b", "c"]})
    with fsspec.open("ds://sales/pl/t.parquet", "wb", **opts) as f:
        frame.write_parquet(f)
    with fs.open("sales/pl/t.parquet") as f:
        assert pl.read_parquet(f).equals(frame)
    with fs.open("sales/pl/t.parquet") as f:
        assert pl.scan_parquet(f).select(pl.col("k").sum()).collect().item() == 6


def test_links_are_described_not_followed_and_copied_as_links(
    fs: DatasetFileSystem, store: Store
) -> None:
    store.symlink("sales", "current.csv", "2026-11.csv")
    info = fs.info("ds://sales/current.csv")
    assert (info["type"], info["islink"], info["destination"]) == ("other", True, "2026-11.csv")
    with pytest.raises(OSError, match="symbolic link"):
        fs.cat_file("ds://sales/current.csv")
    fs.copy("ds://sales/current.csv", "ds://sales/copy.csv")
    assert store.stat("sales", "copy.csv").target == "2026-11.csv"
