"""The mount on real FUSE: everyday tools in a head, pinned reads, snapshots never torn,
SIGKILL of the mount process, stale mountpoints. Skipped only where FUSE is missing."""

from __future__ import annotations

import errno
import json
import mmap
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mount
from datastore.errors import FileNotFound
from datastore.store import Store
from tests.conftest import DS_BIN, gc_running, wait_until

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
    reason="needs /dev/fuse and fusermount3",
)


@pytest.fixture
def mnt(tmp_path: Path, store_root: Path) -> Iterator[Path]:
    """A live mount of a store holding an empty dataset ``sales``; always unmounted."""
    store = Store.open(store_root)
    store.create_dataset("sales")
    store.close()
    point = tmp_path / "mnt"
    point.mkdir()
    handle = mount.start(store_root, point)
    try:
        yield point
    finally:
        _force_unmount(point, handle)


def _force_unmount(point: Path, handle: mount.MountHandle | None) -> None:
    subprocess.run(["fusermount3", "-uz", str(point)], capture_output=True, check=False)
    if handle is not None and handle.process is not None:
        try:
            handle.process.wait(20)
        except subprocess.TimeoutExpired:
            handle.process.kill()
            handle.process.wait(5)


def ds(store_root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DS_STORE": str(store_root)}
    proc = subprocess.run([DS_BIN, *args], capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"ds {' '.join(args)} failed: {proc.stderr}")
    return proc


def sh(cmd: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def make_source(root: Path) -> Path:
    for i in range(30):
        p = root / f"d{i % 4}" / f"sub{i % 3}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(100 + i * 997))
    (root / "empty").mkdir()
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    os.chmod(root / "d0" / "sub0" / "f0.txt", 0o600)
    return root


# everyday tools ------------------------------------------------------------------


def test_cp_rsync_tar(mnt: Path, tmp_path: Path, store_root: Path) -> None:
    src = make_source(tmp_path / "src")
    sh(f"cp -r {src} {mnt}/sales/copy")
    sh(f"diff -r {src} {mnt}/sales/copy")
    sh(f"rsync -a {src}/ {mnt}/sales/synced/")
    sh(f"diff -r {src} {mnt}/sales/synced")
    assert (os.stat(mnt / "sales/synced/d0/sub0/f0.txt").st_mode & 0o777) == 0o600
    assert int(os.stat(mnt / "sales/synced/big.bin").st_mtime) == int(
        os.stat(src / "big.bin").st_mtime
    )
    # rsync again after a change: rewrites through temp files renamed over the old ones
    (src / "d1" / "sub1" / "f1.txt").write_bytes(b"changed")
    sh(f"rsync -a {src}/ {mnt}/sales/synced/")
    sh(f"diff -r {src} {mnt}/sales/synced")
    archive = tmp_path / "src.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="t")
    (mnt / "sales" / "untar").mkdir()
    sh(f"tar -xf {archive} -C {mnt}/sales/untar")
    sh(f"diff -r {src} {mnt}/sales/untar/t")
    assert ds(store_root, "cat", "sales/untar/t/d1/sub1/f1.txt").stdout == "changed"
    ds(store_root, "snapshot", "sales")
    ds(store_root, "fsck")


def test_ownership_and_the_dataset_directory_time_survive_a_remount(
    tmp_path: Path, store_root: Path
) -> None:
    """As root (jobs often are), cp -a and rsync -a keep other users' ownership, and a
    second rsync -a finds nothing to send, not even ``./``: chown and the utime of
    MOUNT/NAME itself are stored (SPEC 11), across a remount."""
    Store.open(store_root).create_dataset("sales")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    os.chown(src / "sub" / "a.txt", 1234, 4321)
    os.chown(src / "b.txt", 2345, 5432)
    os.utime(src, (1_600_000_000, 1_600_000_000))
    point = tmp_path / "mnt"
    point.mkdir()
    handle = mount.start(store_root, point)
    try:
        sh(f"cp -a {src}/sub {point}/sales/copied")
        sh(f"rsync -a {src}/ {point}/sales/")
        assert os.stat(point / "sales/copied/a.txt")[4:6] == (1234, 4321)
        os.chown(point / "sales/copied", 77, 88)
    finally:
        _force_unmount(point, handle)
    handle = mount.start(store_root, point)
    try:
        for path, owner in (
            ("sales/copied/a.txt", (1234, 4321)),
            ("sales/sub/a.txt", (1234, 4321)),
            ("sales/b.txt", (2345, 5432)),
            ("sales/copied", (77, 88)),
        ):
            assert os.stat(point / path)[4:6] == owner, path
        assert int(os.stat(point / "sales").st_mtime) == 1_600_000_000
        again = sh(f"rsync -a --itemize-changes {src}/ {point}/sales/")
        assert again == "", again
    finally:
        _force_unmount(point, handle)


def test_git_repository(mnt: Path) -> None:
    repo = mnt / "sales" / "repo"
    repo.mkdir()
    git = "git -c user.name=t -c user.email=t@e -c init.defaultBranch=main"
    sh(f"{git} init -q .", cwd=repo)
    (repo / "a.txt").write_text("one\n")
    sh(f"{git} add a.txt && {git} commit -qm first", cwd=repo)
    (repo / "a.txt").write_text("two\n")
    sh(f"{git} commit -qam second", cwd=repo)
    assert sh(f"{git} log --format=%s", cwd=repo).split() == ["second", "first"]
    sh(f"{git} fsck --no-progress", cwd=repo)
    assert sh(f"{git} status --porcelain", cwd=repo) == ""


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_database(mnt: Path, store_root: Path, journal: str) -> None:
    """Rollback journal (a -journal file made and unlinked per transaction) and WAL (a
    -wal file and a -shm file shared by mmap between two connections)."""
    path = mnt / "sales" / "db.sqlite"
    db = sqlite3.connect(path)
    assert db.execute(f"PRAGMA journal_mode={journal}").fetchone()[0] == journal
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(20):
        with db:
            db.executemany("INSERT INTO t (v) VALUES (?)", [(f"r{i}-{j}",) for j in range(50)])
    reader = sqlite3.connect(path)  # a second connection while the first is open
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 1000
    assert reader.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reader.close()
    db.close()  # the last WAL connection checkpoints into the database file
    out = sh(f"sqlite3 {path} 'SELECT v FROM t WHERE id=1000'")
    assert out.strip() == "r19-49"
    # the committed file is the same database
    copy = store_root.parent / "copy.sqlite"
    copy.write_bytes(Store.open(store_root).read_bytes("sales", "db.sqlite"))
    assert sqlite3.connect(copy).execute("SELECT count(*) FROM t").fetchone()[0] == 1000


def test_mmap_writes(mnt: Path, store_root: Path) -> None:
    """Stores through a shared writable mapping reach the file, and its commit."""
    path = mnt / "sales" / "mapped.bin"
    path.write_bytes(bytes(3 * 4096) + b"tail")
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        mm[0:5] = b"hello"
        mm[8192:8197] = b"world"
        mm.flush()
    data = path.read_bytes()
    assert (data[:5], data[8192:8197], data[-4:], len(data)) == (
        b"hello",
        b"world",
        b"tail",
        3 * 4096 + 4,
    )
    assert Store.open(store_root).read_bytes("sales", "mapped.bin") == data


def test_pandas_parquet(mnt: Path, store_root: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"a": range(10_000), "b": [f"s{i}" for i in range(10_000)]})
    df.to_parquet(mnt / "sales" / "t.parquet")
    back = pd.read_parquet(mnt / "sales" / "t.parquet")
    assert back.equals(df)
    ds(store_root, "snapshot", "sales", "--tag", "p")
    assert pd.read_parquet(mnt / "sales@p" / "t.parquet").equals(df)


APPENDER = """
import sys
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    with open(path, "a") as f:
        f.write(f"{tag} {i:05d}\\n")
"""


def test_appends_from_two_processes(mnt: Path, store_root: Path) -> None:
    path = mnt / "sales" / "log.txt"
    path.write_text("")
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), tag, "200"])
        for tag in ("A", "B")
    ]
    for p in procs:
        assert p.wait(120) == 0
    lines = path.read_text().splitlines()
    assert sorted(lines) == sorted([f"{t} {i:05d}" for t in "AB" for i in range(200)])
    assert ds(store_root, "cat", "sales/log.txt").stdout.splitlines() == lines


def test_one_open_file_appended_by_two_writers(mnt: Path) -> None:
    path = mnt / "sales" / "shared.txt"
    with open(path, "ab", buffering=0) as a, open(path, "ab", buffering=0) as b:
        for _ in range(50):
            a.write(b"a" * 10 + b"\n")
            b.write(b"b" * 10 + b"\n")
    data = path.read_bytes()
    assert len(data) == 100 * 11 and data.count(b"a" * 10) == 50


# visibility ------------------------------------------------------------------------


def test_cli_changes_show_within_a_second(mnt: Path, store_root: Path, tmp_path: Path) -> None:
    f = mnt / "sales" / "x.txt"
    f.write_text("mount")
    assert ds(store_root, "cat", "sales/x.txt").stdout == "mount"  # closed = visible at once
    assert f.read_text() == "mount"
    src = tmp_path / "x.txt"
    src.write_text("from the cli")
    ds(store_root, "put", "sales", str(src))
    ds(store_root, "put", "sales", str(src), "--to", "new")
    time.sleep(1.0)
    assert f.read_text() == "from the cli"
    assert (mnt / "sales" / "new" / "x.txt").read_text() == "from the cli"
    ds(store_root, "rm", "sales/x.txt")
    time.sleep(1.0)
    assert not f.exists()
    ds(store_root, "create", "later")
    assert "later" in os.listdir(mnt)


def test_moved_tag_and_latest_show_the_new_snapshot(mnt: Path, store_root: Path) -> None:
    (mnt / "sales" / "d").mkdir()
    f = mnt / "sales" / "d" / "f.txt"
    f.write_text("one")
    ds(store_root, "snapshot", "sales", "--tag", "t")
    for ref in ("t", "latest"):
        assert (mnt / f"sales@{ref}" / "d" / "f.txt").read_text() == "one"
        assert os.listdir(mnt / f"sales@{ref}" / "d") == ["f.txt"]
    f.write_text("two, longer")
    (mnt / "sales" / "d" / "g.txt").write_text("g")
    ds(store_root, "snapshot", "sales")
    ds(store_root, "tag", "sales", "latest", "t", "--force")
    time.sleep(1.0)
    for ref in ("t", "latest"):
        assert (mnt / f"sales@{ref}" / "d" / "f.txt").read_text() == "two, longer"
        assert sorted(os.listdir(mnt / f"sales@{ref}" / "d")) == ["f.txt", "g.txt"]


# pinned reads ----------------------------------------------------------------------


def test_a_missing_object_reads_as_eio(mnt: Path, store_root: Path) -> None:
    (mnt / "sales" / "gone.txt").write_text("soon missing")
    store = Store.open(store_root)
    entry = store.stat("sales", "gone.txt")
    assert entry.object is not None
    os.unlink(store.object_path(entry.object))  # damage, as fsck would report it
    with pytest.raises(OSError) as info:
        (mnt / "sales" / "gone.txt").read_text()
    assert info.value.errno == errno.EIO
    assert (store_root / "logs" / "mount.log").exists()  # the mount logs with its store


def test_mounting_over_a_non_empty_directory_is_refused(tmp_path: Path, store_root: Path) -> None:
    Store.open(store_root).close()
    point = tmp_path / "busy"
    point.mkdir()
    (point / "precious.txt").write_text("hidden if mounted over")
    with pytest.raises(mount.MountError, match="not empty"):
        mount.start(store_root, point)
    assert (point / "precious.txt").read_text() == "hidden if mounted over"
    proc = ds(store_root, "mount", str(point), check=False)
    assert proc.returncode == 2 and "not empty" in proc.stderr


def test_name_at_head_is_the_head(mnt: Path, store_root: Path) -> None:
    (mnt / "sales" / "h.txt").write_text("one")
    assert (mnt / "sales@head" / "h.txt").read_text() == "one"
    (mnt / "sales@head" / "h.txt").write_text("two")
    assert Store.open(store_root).read_bytes("sales", "h.txt") == b"two"
    assert "sales@head" not in os.listdir(mnt)


def test_pinned_reads_by_tag_and_id(mnt: Path, store_root: Path) -> None:
    f = mnt / "sales" / "data.csv"
    f.write_text("version 1\n")
    ds(store_root, "snapshot", "sales", "--tag", "v1.0")
    sid = json.loads(ds(store_root, "log", "sales", "--json").stdout)
    sid = (sid["items"] if isinstance(sid, dict) else sid)[0]["id"]
    f.write_text("version 2, longer\n")
    assert f.read_text() == "version 2, longer\n"
    assert (mnt / "sales@v1.0" / "data.csv").read_text() == "version 1\n"
    assert (mnt / f"sales@{sid}" / "data.csv").read_text() == "version 1\n"
    assert (mnt / f"sales@{sid[:8]}" / "data.csv").read_text() == "version 1\n"
    assert "sales@v1.0" not in os.listdir(mnt)
    for attempt in (
        lambda: os.open(mnt / "sales@v1.0" / "data.csv", os.O_WRONLY),
        lambda: os.open(mnt / "sales@v1.0" / "new.csv", os.O_WRONLY | os.O_CREAT),
        lambda: os.mkdir(mnt / "sales@v1.0" / "d"),
        lambda: os.unlink(mnt / "sales@v1.0" / "data.csv"),
        lambda: os.chmod(mnt / "sales@v1.0" / "data.csv", 0o600),
    ):
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS
    assert not os.stat(mnt / "sales@v1.0" / "data.csv").st_mode & 0o222
    for missing in ("nosuch", "sales@nosuch", "sales@v9"):
        with pytest.raises(FileNotFoundError):
            os.stat(mnt / missing)


def test_errnos_on_the_mount(mnt: Path, store_root: Path) -> None:
    ds(store_root, "create", "other")
    (mnt / "sales" / "f").write_text("x")
    cases: list[tuple[Callable[[], object], int]] = [
        (lambda: os.rename(mnt / "sales" / "f", mnt / "other" / "f"), errno.EXDEV),
        (lambda: os.link(mnt / "sales" / "f", mnt / "sales" / "g"), errno.ENOTSUP),
        (
            lambda: os.open(mnt / "sales" / ("n" * 256), os.O_WRONLY | os.O_CREAT),
            errno.ENAMETOOLONG,
        ),
        (lambda: os.mkdir(mnt / "newdataset"), errno.EROFS),
        (lambda: os.open(mnt / "sales" / "a\x01b", os.O_WRONLY | os.O_CREAT), errno.EINVAL),
        (lambda: os.mkdir(mnt / "sales" / "rtl\u202eexe"), errno.EINVAL),
        (lambda: os.rename(mnt / "sales" / "f", mnt / "sales" / "tab\tname"), errno.EINVAL),
    ]
    for call, code in cases:
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == code, call
    assert (mnt / "sales" / "f").read_text() == "x"  # still serving


# promise 3: snapshots never hold a torn file ----------------------------------------


def test_snapshots_never_capture_a_half_written_file(mnt: Path, store_root: Path) -> None:
    path = mnt / "sales" / "state.bin"
    versions = [bytes([65 + v % 26]) * (200_000 + v * 1000) for v in range(40)]
    stop = threading.Event()

    def writer() -> None:
        with open(path, "r+b", buffering=0) as f:
            v = 0
            while not stop.is_set():
                data = versions[v % len(versions)]
                f.seek(0)
                for i in range(0, len(data), 16_384):  # many writes per version
                    f.write(data[i : i + 16_384])
                f.truncate(len(data))
                os.fsync(f.fileno())
                v += 1

    path.write_bytes(versions[0])
    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(6):
            ds(store_root, "snapshot", "sales")
    finally:
        stop.set()
        t.join()
    store = Store.open(store_root)
    seen = set()
    for snap in store.log("sales"):
        data = store.read_bytes(f"sales@{snap.row.id}", "state.bin")
        assert data in versions, f"snapshot {snap.row.id} holds a torn file ({len(data)} B)"
        seen.add(data)
    assert len(seen) >= 2


def test_a_child_process_closing_its_copy_does_not_publish(mnt: Path, store_root: Path) -> None:
    """A job writes, spawns a child (which closes its inherited descriptor at exec), writes
    on: a snapshot taken meanwhile holds nothing of the half-written file; the job's own
    close publishes it whole."""
    path = mnt / "sales" / "h.csv"
    rows = [f"{i},{i * 7}\n".encode() for i in range(10_000)]
    with open(path, "wb") as f:
        f.write(b"".join(rows[:3000]))
        f.flush()
        subprocess.run(["true"], check=True)
        subprocess.run([sys.executable, "-c", "pass"], check=True, close_fds=False)
        snap = ds(store_root, "snapshot", "sales", "--json")
        f.write(b"".join(rows[3000:]))
    store = Store.open(store_root)
    sid = json.loads(snap.stdout)["id"]
    with pytest.raises(FileNotFound):
        store.stat(f"sales@{sid}", "h.csv")
    assert store.read_bytes("sales", "h.csv") == b"".join(rows)
    ds(store_root, "snapshot", "sales", "--tag", "whole")
    assert store.read_bytes("sales@whole", "h.csv") == b"".join(rows)


def test_gc_beside_mount_writers_loses_nothing(mnt: Path, store_root: Path) -> None:
    """Promise 7: an open file idle across gc runs, and many closes racing gc."""
    idle = os.urandom(300_000)
    many = {f"w/f{i:03d}.bin": os.urandom(2000 + i) for i in range(150)}
    (mnt / "sales" / "w").mkdir()
    with gc_running(store_root) as runs:
        with open(mnt / "sales" / "idle.bin", "wb") as f:
            f.write(idle[:100_000])
            seen = len(runs)
            wait_until(lambda: len(runs) >= seen + 3)
            f.write(idle[100_000:])
        for rel, data in many.items():
            (mnt / "sales" / rel).write_bytes(data)
    assert (mnt / "sales" / "idle.bin").read_bytes() == idle
    store = Store.open(store_root)
    assert store.read_bytes("sales", "idle.bin") == idle
    for rel, data in many.items():
        assert store.read_bytes("sales", rel) == data
    assert store.fsck()["ok"]


# promise 4: a killed mount loses no acknowledged write --------------------------------


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, store_root: Path) -> None:
    Store.open(store_root).create_dataset("sales")
    point = tmp_path / "mnt"
    point.mkdir()
    handle = mount.start(store_root, point)
    expected: dict[str, bytes] = {}
    try:
        for i in range(20):
            data = os.urandom(1000 * (i + 1))
            with open(point / "sales" / f"f{i}", "wb") as f:
                f.write(data)
            expected[f"f{i}"] = data  # close returned: acknowledged
        f = open(point / "sales" / "synced", "wb", buffering=0)  # noqa: SIM115
        f.write(b"fsynced bytes")
        os.fsync(f.fileno())
        expected["synced"] = b"fsynced bytes"
        f.write(b" and more, not acknowledged")
        assert handle.process is not None
        os.kill(handle.process.pid, signal.SIGKILL)
        handle.process.wait(10)
        with pytest.raises(OSError):
            f.close()
    finally:
        if handle.process is not None and handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait(10)
    try:
        assert mount.is_stale(point)
        proc = ds(store_root, "mount", str(point))  # cleans the stale mountpoint
        assert "mounted" in proc.stdout
        for name, data in expected.items():
            assert (point / "sales" / name).read_bytes() == data
        ds(store_root, "umount", str(point))
        assert not mount.is_mounted(point)
        for name, data in expected.items():
            assert Store.open(store_root).read_bytes("sales", name) == data
        ds(store_root, "fsck")
    finally:
        subprocess.run(["fusermount3", "-uz", str(point)], capture_output=True, check=False)


# the commands ------------------------------------------------------------------------


def test_foreground_read_only_mount_and_umount(tmp_path: Path, store_root: Path) -> None:
    store = Store.open(store_root)
    store.create_dataset("sales")
    store.put_bytes("sales", "f.txt", b"hello")
    store.close()
    point = tmp_path / "mnt"
    point.mkdir()
    assert ds(store_root, "umount", str(point), check=False).returncode != 0
    env = {**os.environ, "DS_STORE": str(store_root)}
    proc = subprocess.Popen(
        [DS_BIN, "mount", str(point), "--foreground", "--read-only"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not mount.is_mounted(point):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (point / "sales" / "f.txt").read_bytes() == b"hello"
        with pytest.raises(OSError) as info:
            os.open(point / "sales" / "g.txt", os.O_WRONLY | os.O_CREAT)
        assert info.value.errno == errno.EROFS
        assert ds(store_root, "mount", str(point), check=False).returncode != 0  # busy
        ds(store_root, "umount", str(point))
        assert proc.wait(30) == 0
    finally:
        _force_unmount(point, None)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_packed_and_chunked_files_read_and_append_through_the_mount(
    mnt: Path, store_root: Path, tmp_path: Path
) -> None:
    """Imported files are blobs in packs or chunk lists: the mount reads them at any
    offset, pinned and in the head, and an append copies a chunked file up whole."""
    rng = random.Random(3)
    files = {
        "small.csv": b"a,b\n" + b"1,2\n" * 800,
        "noise.bin": os.urandom(90_000),
        "big.csv": b"".join(b"%d,%d\n" % (i, rng.getrandbits(50)) for i in range(400_000)),
    }
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    ds(store_root, "put", "sales", str(src))
    ds(store_root, "snapshot", "sales", "--tag", "v1")
    for name, data in files.items():
        for where in (mnt / "sales@v1" / name, mnt / "sales" / name):
            wait_until(lambda w=where: w.exists(), 5)
            assert where.read_bytes() == data
            with open(where, "rb") as f:
                for _ in range(30):
                    at = rng.randrange(len(data))
                    f.seek(at)
                    assert f.read(200_000) == data[at : at + 200_000]
    with open(mnt / "sales" / "big.csv", "ab") as f:
        f.write(b"tail\n")
    assert (mnt / "sales" / "big.csv").read_bytes() == files["big.csv"] + b"tail\n"
    assert (mnt / "sales@v1" / "big.csv").read_bytes() == files["big.csv"]
