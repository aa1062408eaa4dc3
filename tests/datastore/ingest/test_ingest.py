"""The inbox: bursts, slow writers, temp names, SIGKILL and restart, rejections, rules."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.ingest import watchdog_watcher
from datastore.ingest.inbox import LOCK, REJECTED, Inbox, InboxOptions
from datastore.store import Store
from tests.conftest import DS_BIN

# watchdog warns when it re-adds a watch for a directory created during a burst; harmless
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


class Recorder:
    """Collects the watcher's reports so tests can count what was ingested."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, info))

    def ingested(self) -> list[tuple[str, str]]:
        with self.lock:
            return [
                (i["dataset"], f) for k, i in self.events if k == "ingested" for f in i["files"]
            ]

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [i for k, i in self.events if k == kind]


@pytest.fixture
def inbox_dir(tmp_path: Path) -> Path:
    d = tmp_path / "inbox"
    d.mkdir()
    return d


@pytest.fixture
def watch(store: Store, inbox_dir: Path) -> Iterator[Callable[..., tuple[Inbox, Recorder]]]:
    started: list[Inbox] = []

    def start(**options: Any) -> tuple[Inbox, Recorder]:
        options.setdefault("stable_seconds", 0.5)
        rec = Recorder()
        inbox = Inbox(store, inbox_dir, InboxOptions(**options), rec, watchdog_watcher).start()
        started.append(inbox)
        return inbox, rec

    yield start
    for inbox in started:
        inbox.stop()


def inbox_files(inbox_dir: Path) -> list[Path]:
    """Files still waiting in the inbox (not the rejected ones)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(inbox_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .rejected, claims
        out.extend(Path(dirpath) / f for f in filenames if f != LOCK)
    return out


def wait_for(cond: Callable[[], bool], timeout: float = 40.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def head_files(store: Store, name: str) -> dict[str, Any]:
    return {e.path: e for e in store.entries(name) if not e.is_dir}


def payload(i: int) -> bytes:
    rnd = random.Random(i)
    return f"file {i}\n".encode() + rnd.randbytes(rnd.randint(0, 3000))


# the burst --------------------------------------------------------------------------


def _write_direct(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_slowly(path: Path, data: bytes, pause: float) -> None:
    """Chunks with pauses, the file open throughout (a pipeline streaming its output)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = max(1, len(data) // 4)
    with open(path, "wb") as f:
        for i in range(0, max(len(data), 1), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def _write_renamed(path: Path, data: bytes, suffix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + suffix)
    tmp.write_bytes(data)
    time.sleep(0.3)  # the temporary name must be left alone meanwhile
    os.rename(tmp, path)


def test_burst_of_1000_lands_once_with_identical_bytes(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    store.create_dataset("burst")
    inbox, rec = watch()
    files = {f"d{i % 7}/sub{i % 3}/f{i:04d}.bin": payload(i) for i in range(1000)}
    names = sorted(files)
    slow = set(names[:40])
    # a few writers pause longer than the stability window with the file still open
    very_slow = set(names[40:44])
    renamed = set(names[44:104])
    jobs: list[threading.Thread] = []
    for n, rel in enumerate(names):
        path = inbox_dir / "burst" / rel
        data = files[rel]
        if rel in very_slow:
            job = threading.Thread(target=_write_slowly, args=(path, data, 0.35))
        elif rel in slow:
            job = threading.Thread(target=_write_slowly, args=(path, data, 0.05))
        elif rel in renamed:
            suffix = (".part", ".tmp", "~")[n % 3]
            job = threading.Thread(target=_write_renamed, args=(path, data, suffix))
        else:
            _write_direct(path, data)
            continue
        job.start()
        jobs.append(job)
    for job in jobs:
        job.join()
    wait_for(lambda: not inbox_files(inbox_dir), what="the inbox to empty")
    head = head_files(store, "burst")
    assert sorted(head) == names
    for rel in names:
        assert store.read_bytes("burst", rel) == files[rel], rel
    got = rec.ingested()
    assert len(got) == len(set(got)) == 1000, "a file was ingested twice"
    assert inbox.stats.ingested == 1000
    assert inbox.stats.rejected == 0
    assert not (inbox_dir / REJECTED / "burst").exists()
    assert store.fsck()["ok"]


def test_temporary_names_and_dotfiles_wait_until_renamed(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    store.create_dataset("tmpnames")
    watch()
    d = inbox_dir / "tmpnames"
    d.mkdir()
    for name in ("a.csv.part", "b.tmp", "c.txt~", ".hidden"):
        (d / name).write_text("partial")
    (d / "done.txt").write_text("done")
    wait_for(lambda: not (d / "done.txt").exists(), what="done.txt")
    time.sleep(0.8)
    assert sorted(head_files(store, "tmpnames")) == ["done.txt"]
    assert sorted(p.name for p in d.iterdir()) == [".hidden", "a.csv.part", "b.tmp", "c.txt~"]
    os.rename(d / "a.csv.part", d / "a.csv")
    wait_for(lambda: "a.csv" in head_files(store, "tmpnames"), what="a.csv after rename")
    assert store.read_bytes("tmpnames", "a.csv") == b"partial"


def test_files_present_at_start_and_directories_moved_in(
    store: Store, tmp_path: Path, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    store.create_dataset("early")
    for i in range(20):
        _write_direct(inbox_dir / "early" / f"old/{i}.txt", f"old {i}".encode())
    watch(stable_seconds=0.2)
    staging = tmp_path / "staging"
    for i in range(20):
        _write_direct(staging / f"{i}.txt", f"new {i}".encode())
    os.rename(staging, inbox_dir / "early" / "new")  # one rename brings 20 files
    wait_for(lambda: not inbox_files(inbox_dir), what="the inbox to empty")
    head = head_files(store, "early")
    assert len(head) == 40
    assert store.read_bytes("early", "new/7.txt") == b"new 7"
    assert store.read_bytes("early", "old/7.txt") == b"old 7"


def test_ingested_but_not_removed_is_idempotent(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    """The crash window between the catalog commit and the unlink changes nothing."""
    store.create_dataset("twice")
    path = inbox_dir / "twice" / "x.csv"
    _write_direct(path, b"a,b\n1,2\n")
    store.put("twice", [path], dests=["x.csv"])
    snap, _ = store.snapshot("twice")
    _, rec = watch(stable_seconds=0.1)
    wait_for(lambda: not path.exists(), what="x.csv to leave the inbox")
    assert store.status("twice")["dirty"] is False
    assert store.read_bytes("twice", "x.csv") == b"a,b\n1,2\n"
    assert rec.ingested() == [("twice", "x.csv")]


# rejections ----------------------------------------------------------------------------


def test_rejections_land_in_rejected_with_reason(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    store.create_dataset("strict")
    store.update_dataset("strict", rules={"allow_categories": ["tabular"], "max_bytes": 100})
    store.put_bytes("strict", "keep.csv", b"a\n1\n")
    snap, _ = store.snapshot("strict")
    before = head_files(store, "strict")
    _, rec = watch(stable_seconds=0.1)
    drops = {
        "unknown/a.txt": (b"hello", "dataset_not_found"),
        "strict/notes.txt": (b"text", "invalid_file_type"),
        "strict/big.csv": (b"x\n" + b"1\n" * 100, "file_too_large"),
        "loose.txt": (b"top level", "invalid_path"),
        "BadName/a.csv": (b"a\n", "invalid_name"),
    }
    for rel, (data, _) in drops.items():
        _write_direct(inbox_dir / rel, data)
    bad = os.fsencode(str(inbox_dir / "strict")) + b"/bad\xffname.csv"
    with open(bad, "wb") as f:
        f.write(b"a\n1\n")
    _write_direct(inbox_dir / "strict" / "ok.csv", b"a\n2\n")
    secret = inbox_dir.parent / "secret.csv"
    secret.write_bytes(b"a\n3\n")
    os.symlink(secret, inbox_dir / "strict" / "link.csv")
    wait_for(lambda: not inbox_files(inbox_dir), what="every file to be handled")
    rejected = inbox_dir / REJECTED
    for rel, (data, code) in drops.items():
        assert (rejected / rel).read_bytes() == data
        reason = (rejected / (rel + ".error")).read_text()
        assert f"[{code}]" in reason, (rel, reason)
    assert os.path.exists(os.fsencode(str(rejected / "strict")) + b"/bad\xffname.csv")
    error = Path(os.fsdecode(os.fsencode(str(rejected / "strict")) + b"/bad\xffname.csv.error"))
    assert b"[invalid_path]" in error.read_bytes()
    after = head_files(store, "strict")
    assert sorted(after) == sorted([*before, "ok.csv"])
    assert {k: v.object for k, v in before.items()} == {
        k: after[k].object for k in before
    }  # nothing already there changed
    assert [d.name for d in store.list_datasets()] == ["strict"]
    assert os.path.islink(rejected / "strict" / "link.csv")
    assert "symbolic link" in (rejected / "strict" / "link.csv.error").read_text()
    assert len(rec.of("rejected")) == 7


def test_create_datasets_and_auto_snapshot_with_tag_pattern(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    inbox, rec = watch(
        stable_seconds=0.1,
        create_datasets=True,
        snapshot_after=0.5,
        tag_pattern="inbox-{utc:%Y%m%dT%H%M%S}",
    )
    for i in range(5):
        _write_direct(inbox_dir / "fresh" / f"{i}.txt", b"x" * i)
    wait_for(lambda: bool(rec.of("snapshot")), what="the auto-snapshot")
    log = store.log("fresh")
    assert len(log) == 1 and log[0].row.file_count == 5
    assert log[0].tags and log[0].tags[0].startswith("inbox-2")
    time.sleep(0.8)
    assert len(store.log("fresh")) == 1  # quiet and clean: no more snapshots


def test_rules_apply_to_put_too(store: Store, tmp_path: Path) -> None:
    from datastore.errors import FileTooLarge, InvalidFileType

    store.create_dataset("ruled")
    store.update_dataset("ruled", rules={"allow_extensions": ["csv"], "max_bytes": 10})
    src = tmp_path / "src"
    _write_direct(src / "a.csv", b"a\n1\n")
    _write_direct(src / "b.txt", b"b")
    with pytest.raises(InvalidFileType):
        store.put("ruled", [src])
    assert head_files(store, "ruled") == {}  # all or nothing
    _write_direct(src / "b.txt", b"b" * 11)
    with pytest.raises(FileTooLarge):
        store.put("ruled", [src / "b.txt"])
    with pytest.raises(FileTooLarge):
        store.put_bytes("ruled", "c.csv", b"c" * 11)
    store.put("ruled", [src / "a.csv"])
    assert sorted(head_files(store, "ruled")) == ["a.csv"]


# SIGKILL and restart -----------------------------------------------------------------


def _start_watcher(store_root: Path, inbox_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DS_STORE": str(store_root)}
    return subprocess.Popen(
        [DS_BIN, "watch", str(inbox_dir), "--stable-seconds", "0.3", "--json"],
        stdout=open(log, "ab"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        env=env,
    )


def test_sigkill_mid_burst_loses_nothing(store_root: Path, inbox_dir: Path, tmp_path: Path) -> None:
    store = Store.open(store_root)
    store.create_dataset("crash")
    files = {f"p{i % 10}/f{i:04d}.dat": payload(10_000 + i) for i in range(600)}
    names = sorted(files)
    staging = tmp_path / "staging"
    log = tmp_path / "watch.log"
    proc = _start_watcher(store_root, inbox_dir, log)

    def drop(rels: list[str], pause: float = 0.0) -> None:
        for rel in rels:
            time.sleep(pause)
            tmp = staging / rel
            _write_direct(tmp, files[rel])
            target = inbox_dir / "crash" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, target)  # on the same filesystem: complete when it appears

    try:
        drop(names[:300])
        wait_for(lambda: len(inbox_files(inbox_dir)) < 300, 40, "the watcher to start work")
        writer = threading.Thread(target=drop, args=(names[300:], 0.003))
        writer.start()
        time.sleep(0.3)  # kill while both the watcher and the writer are busy
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        writer.join()
        # right after the kill: every file is in the head, or in the inbox, or both
        head = head_files(Store.open(store_root), "crash")
        waiting = {str(p.relative_to(inbox_dir / "crash")) for p in inbox_files(inbox_dir)}
        assert set(names) <= set(head) | waiting
        assert head, "the watcher should have ingested something before the kill"
        proc = _start_watcher(store_root, inbox_dir, log)
        wait_for(lambda: not inbox_files(inbox_dir), 40, "the inbox to empty after restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    fresh = Store.open(store_root)
    head = head_files(fresh, "crash")
    assert sorted(head) == names
    for rel in names:
        assert fresh.read_bytes("crash", rel) == files[rel], rel
    assert not (inbox_dir / REJECTED / "crash").exists()


def test_inbox_flags_and_their_variables_are_one_set_for_watch_and_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import click
    from click.testing import CliRunner

    from cli.ingest import inbox_options
    from cli.serve import serve_cmd

    seen: list[InboxOptions] = []

    @click.command()
    @inbox_options
    def probe(inbox_config: InboxOptions) -> None:
        seen.append(inbox_config)

    flags = ["--create-datasets", "--snapshot-after", "30", "--tag-pattern", "in-{utc:%Y%m%d}"]
    assert CliRunner().invoke(probe, flags).exit_code == 0
    monkeypatch.setenv("DS_INBOX_CREATE_DATASETS", "1")
    monkeypatch.setenv("DS_INBOX_MAX_BYTES", "100")
    assert CliRunner().invoke(probe, []).exit_code == 0
    assert seen[0].create_datasets and seen[0].snapshot_after == 30.0
    assert seen[0].tag_pattern == "in-{utc:%Y%m%d}"
    assert seen[1].create_datasets and seen[1].max_bytes == 100
    bad = CliRunner().invoke(probe, ["--tag-pattern", "in-{nope}"])
    assert bad.exit_code != 0 and len(seen) == 2
    serve_flags = {p.name for p in serve_cmd.params}
    assert {"create_datasets", "snapshot_after", "tag_pattern", "max_bytes"} <= serve_flags


def test_one_watcher_per_inbox_and_serve_options_from_env(
    store: Store,
    inbox_dir: Path,
    watch: Callable[..., tuple[Inbox, Recorder]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datastore.errors import Conflict

    watch()
    with pytest.raises(Conflict):
        Inbox(store, inbox_dir, InboxOptions(), watcher=watchdog_watcher).start()
    options = InboxOptions(create_datasets=True)  # a second store handle, as a daemon has
    other = Inbox(
        Store.open(store.root), inbox_dir.parent / "other-inbox", options, watcher=watchdog_watcher
    ).start()
    try:
        _write_direct(inbox_dir.parent / "other-inbox" / "auto" / "a.txt", b"hi")
        wait_for(lambda: not inbox_files(inbox_dir.parent / "other-inbox"), what="auto/a.txt")
        assert store.read_bytes("auto", "a.txt") == b"hi"  # created, as configured
    finally:
        other.stop()


def test_a_second_rejected_file_of_the_same_name_keeps_the_first(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    watch(stable_seconds=0.1)
    rejected = inbox_dir / REJECTED / "ghost"
    _write_direct(inbox_dir / "ghost" / "a.txt", b"first")
    wait_for(lambda: (rejected / "a.txt").exists(), what="the first rejection")
    _write_direct(inbox_dir / "ghost" / "a.txt", b"second")
    wait_for(lambda: (rejected / "a.txt.1").exists(), what="the second rejection")
    assert (rejected / "a.txt").read_bytes() == b"first"
    assert (rejected / "a.txt.1").read_bytes() == b"second"
    assert "[dataset_not_found]" in (rejected / "a.txt.1.error").read_text()


def test_a_rewrite_racing_the_removal_is_ingested_not_lost(
    store: Store,
    inbox_dir: Path,
    watch: Callable[..., tuple[Inbox, Recorder]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Promise 5: the file is rewritten in the instant after the watcher checked it was
    unchanged and before it removed it; the rewrite must still go in."""
    from datastore.ingest import inbox as inbox_mod

    store.create_dataset("race")
    target = inbox_dir / "race" / "a.csv"
    committed = threading.Event()
    fired = threading.Event()
    real_put, real_signature = store.put, inbox_mod._signature

    def put(*args: Any, **kwargs: Any) -> Any:
        result = real_put(*args, **kwargs)
        committed.set()
        return result

    def signature(path: str) -> Any:
        sig = real_signature(path)
        if committed.is_set() and not fired.is_set():
            fired.set()  # the writer strikes right after the check
            with open(target, "wb") as f:
                f.write(b"a\n2\n")
        return sig

    monkeypatch.setattr(store, "put", put)
    monkeypatch.setattr(inbox_mod, "_signature", signature)
    watch()
    _write_direct(target, b"a\n1\n")
    wait_for(lambda: fired.is_set(), what="the race")
    wait_for(
        lambda: (
            "a.csv" in head_files(store, "race") and store.read_bytes("race", "a.csv") == b"a\n2\n"
        ),
        what="the rewrite to be ingested",
    )
    wait_for(lambda: not inbox_files(inbox_dir), what="the inbox to empty")
    assert list((inbox_dir / ".ds-claims").iterdir()) == []


def test_a_claim_left_by_a_dead_watcher_goes_back_and_in(
    store: Store, inbox_dir: Path, watch: Callable[..., tuple[Inbox, Recorder]]
) -> None:
    store.create_dataset("left")
    claims = inbox_dir / ".ds-claims"
    claims.mkdir()
    _write_direct(claims / "0123456789abcdef.left%2Fsub%2Fb.csv", b"b\n1\n")
    watch()
    wait_for(lambda: "sub/b.csv" in head_files(store, "left"), what="the claim to go back in")
    assert store.read_bytes("left", "sub/b.csv") == b"b\n1\n"
    wait_for(lambda: not list(claims.iterdir()) and not inbox_files(inbox_dir), what="cleanup")
