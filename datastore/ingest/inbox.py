"""The inbox watcher: ``DIR/NAME/rel/path`` goes into dataset NAME's head at ``rel/path``.

How a file moves (SPEC sections 3.5, 7 and 11):

1. A watcher the caller injects (the CLI's watchdog observer: inotify on Linux) reports
   paths through :meth:`Inbox.notify`; a full scan at start and every
   ``rescan_seconds`` catches what events cannot (files present before the start, whole
   directories moved in, overflowed event queues).
2. A file is *ready* when it is complete: open for writing by no one (a read-lease test
   on Linux) and either closed after writing or renamed into place (inotify), or
   unchanged between two looks. Where the lease test cannot answer (another owner, NFS),
   the close or rename evidence alone, or ``stable_seconds`` without a change, decides.
   Dotfiles and temporary names (``*.part``, ``*.tmp``, ``*~``) wait until renamed.
3. Ready files are checked one by one (dataset name, path, size limits, the dataset's
   type rules); a permanent problem moves the file to ``DIR/.rejected/NAME/rel/path``
   with ``path.error`` beside it.
4. The rest go in as one batch per dataset through :meth:`Store.put`: objects flushed
   with one syncfs, then one catalog commit (synchronous=FULL). Only after that commit
   is each inbox file removed, and only if it did not change meanwhile. A crash between
   the commit and the removal re-ingests the same bytes at the same path on restart,
   which stages nothing (content addressing makes it idempotent): nothing is lost or
   added twice.
5. A transient failure (disk full, store busy) leaves the files where they are and
   retries after ``retry_seconds``.

The logic here imports no watcher: events come in as plain (path, kind, is_dir) notes,
so the library stays free of watchdog and the logic is testable with any event source.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import queue
import secrets
import signal
import sqlite3
import stat as statmod
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

from datastore import names
from datastore import rules as ds_rules
from datastore.categories import categorize
from datastore.errors import (
    Conflict,
    DatasetExists,
    DatasetNotFound,
    DatastoreError,
    FileTooLarge,
    InvalidRequest,
    StoreCorrupt,
    TagExists,
)
from datastore.store import Store

REJECTED = ".rejected"
CLAIMS = ".ds-claims"  # committed files on their way out: see Inbox._leave
CLAIM_NAME_ROOM = 230  # bytes of the quoted inbox path a claim's file name can carry
LOCK = ".ds-watch.lock"  # one watcher per inbox; the kernel drops it when the watcher dies
TEMP_SUFFIXES = (".part", ".tmp", "~")
log = logging.getLogger("ds.ingest")

Report = Callable[[str, dict[str, Any]], None]
# (path, kind, is_dir): kind is "created", "moved" (path is where it landed) or "closed"
Note = Callable[[str, str, bool], None]


class Watching(Protocol):
    """A running event source; the inbox stops and joins it on :meth:`Inbox.stop`."""

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


# starts reporting changes under a directory (recursively) to a Note
Watcher = Callable[[str, Note], Watching]
Signature = tuple[int, int, int]  # size, mtime_ns, inode


def _no_report(kind: str, info: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class InboxOptions:
    """How an inbox runs; the CLI's ``ds watch`` flags map onto these one to one."""

    create_datasets: bool = False
    snapshot_after: float | None = None
    tag_pattern: str | None = None
    max_bytes: int | None = None
    stable_seconds: float = 1.0
    poll_seconds: float = 0.05
    rescan_seconds: float = 30.0
    retry_seconds: float = 2.0
    batch_files: int = 5000


@dataclass(slots=True)
class _Seen:
    """What the worker knows about one pending inbox file."""

    sig: Signature | None = None
    since: float = 0.0
    closed: bool = False
    retry_at: float = 0.0


@dataclass(frozen=True, slots=True)
class _Ready:
    path: str
    dataset: str
    rel: str
    sig: Signature


@dataclass(slots=True)
class InboxStats:
    ingested: int = 0
    rejected: int = 0
    snapshots: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        """Remember a failure; only the latest hundred, so a long outage stays bounded."""
        self.errors.append(text)
        del self.errors[:-100]


class Inbox:
    """One watched inbox directory feeding one store."""

    def __init__(
        self,
        store: Store,
        root: Path,
        options: InboxOptions | None = None,
        report: Report = _no_report,
        watcher: Watcher | None = None,
    ) -> None:
        """Without a ``watcher`` the inbox sees files only at its periodic scans."""
        self.store = store
        self._watcher = watcher
        self.root = Path(root).absolute()
        # paths are plain strings from here on: pathlib costs more than the syscalls
        self._prefix = str(self.root) + os.sep
        self.options = options or InboxOptions()
        self.report = report
        self.stats = InboxStats()
        self._pending: dict[str, _Seen] = {}
        self._notes: queue.SimpleQueue[tuple[str, str, bool]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._dirty: dict[str, float] = {}  # dataset -> last ingest (monotonic)
        self._activity: dict[str, float] = {}  # dataset -> last inbox event (monotonic)
        self._watching: Watching | None = None
        self._thread: threading.Thread | None = None
        self._next_scan = 0.0
        self._lock_fd: int | None = None

    # lifecycle --------------------------------------------------------------

    def start(self) -> Inbox:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / REJECTED).mkdir(exist_ok=True)
        self._lock_fd = _only_watcher(self.root / LOCK)
        (self.root / CLAIMS).mkdir(exist_ok=True)
        for claim in (self.root / CLAIMS).iterdir():  # left by a watcher that died
            _give_back(claim, self.root / unquote(claim.name.partition(".")[2]))
        if self._watcher is not None:
            self._watching = self._watcher(str(self.root), self.notify)
        self._thread = threading.Thread(target=self._loop, name="ds-inbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; whatever is still pending stays in the inbox for the next start."""
        self._stop.set()
        self._wake.set()
        if self._watching is not None:
            self._watching.stop()
            self._watching.join(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def notify(self, path: str, kind: str, is_dir: bool) -> None:
        """An event from the watcher (any thread); the worker decides what it means."""
        self._notes.put((path, kind, is_dir))
        self._wake.set()

    def wait(self) -> None:
        """Block until :meth:`stop` (``ds watch`` in the foreground)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def _loop(self) -> None:
        idle = self.options.poll_seconds
        while not self._stop.is_set():
            try:
                done = self.step()
            except Exception as err:  # noqa: BLE001 - the watcher must outlive any one failure
                log.exception("inbox step failed")
                self.stats.error(f"{type(err).__name__}: {err}")
                self._stop.wait(self.options.retry_seconds)
                done = 0
            # files still being written are looked at less often the longer nothing is
            # ready; any event wakes the loop at once
            idle = self.options.poll_seconds if done else min(idle * 2, 1.0)
            self._wake.wait(idle if self._pending else 1.0)
            self._wake.clear()

    # one round ----------------------------------------------------------------

    def step(self) -> int:
        """Take in events, ingest what is ready, snapshot quiet datasets; returns files done."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._scan(str(self.root), closed=False)
            self._next_scan = now + self.options.rescan_seconds
        self._drain()
        ready = self._ready(time.monotonic())
        done = 0
        for dataset, items in _by_dataset(ready).items():
            for chunk in _chunks(items, self.options.batch_files):
                done += self._ingest(dataset, chunk)
        self._auto_snapshot(time.monotonic())
        return done

    def _drain(self) -> None:
        while True:
            try:
                raw, kind, is_dir = self._notes.get_nowait()
            except queue.Empty:
                return
            path = raw
            if is_dir:
                if self._watched(path):
                    # a directory renamed in brings its files (watchdog calls a rename from
                    # outside the inbox "created"); scanning now beats waiting for its events
                    self._scan(path, closed=kind == "moved")
                continue
            self._note(path, kind)

    def _note(self, path: str, kind: str) -> None:
        """A rename into place or a close after writing is evidence the file is complete.
        Creation alone says nothing either way (watchdog also reports the files of a
        directory moved in as created)."""
        if not self._watched(path):
            return
        seen = self._pending.get(path)
        if seen is None:
            seen = self._pending[path] = _Seen()
        if kind in ("closed", "moved"):
            seen.closed = True
        dataset = self._classify(path, (0, 0, 0)).dataset
        if dataset:
            self._activity[dataset] = time.monotonic()

    def _scan(self, top: str, closed: bool) -> None:
        """Add every file below ``top`` (startup, directories moved in, periodic safety net)."""
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for e in entries:
                path = e.path
                if not self._watched(path):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(path)
                else:
                    seen = self._pending.setdefault(path, _Seen())
                    seen.closed = seen.closed or closed

    def _watched(self, path: str) -> bool:
        """Inside the inbox, not under .rejected and no dotfile or temporary name."""
        if not path.startswith(self._prefix):
            return False
        parts = path[len(self._prefix) :].split(os.sep)
        if any(p.startswith(".") or not p for p in parts):
            return False
        return not parts[-1].endswith(TEMP_SUFFIXES)

    def _ready(self, now: float) -> list[_Ready]:
        ready: list[_Ready] = []
        for path, seen in list(self._pending.items()):
            if seen.retry_at > now:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self._pending[path]
                continue
            if not statmod.S_ISREG(st.st_mode):
                # a symlink could point anywhere (never follow it into the store), a FIFO
                # never ends: neither can go in, and neither may linger unexplained
                what = "a symbolic link" if statmod.S_ISLNK(st.st_mode) else "not a regular file"
                self._reject(self._classify(path, (0, 0, 0)), f"{what} [invalid_path]")
                continue
            sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            if sig != seen.sig:
                seen.sig, seen.since = sig, now
                if not seen.closed:
                    continue
            if not self._settled(path, now - seen.since, seen.closed):
                continue
            ready.append(self._classify(path, sig))
        return ready

    def _settled(self, path: str, quiet: float, closed: bool) -> bool:
        """Complete: nobody has it open for writing (a writer that reopened a closed file
        to append is caught here), and, without close evidence, unchanged since the last
        look; where the lease test cannot tell, closed or unchanged for ``stable_seconds``."""
        writing = _open_for_writing(path)
        if writing is None:
            return closed or quiet >= self.options.stable_seconds
        return not writing

    def _classify(self, path: str, sig: Signature) -> _Ready:
        rel = path[len(self._prefix) :]
        dataset, sep, rest = rel.partition(os.sep)
        if not sep:
            return _Ready(path, "", rel, sig)
        return _Ready(path, dataset, rest.replace(os.sep, "/"), sig)

    # ingesting ----------------------------------------------------------------

    def _ingest(self, dataset: str, items: list[_Ready]) -> int:
        """Check each file, put the good ones as one batch, remove them once committed."""
        problem = self._dataset_problem(dataset)
        if problem is not None:
            for item in items:
                self._reject(item, problem)
            return len(items)
        rules = ds_rules.parse(self.store.dataset(dataset).rules)
        good = []
        for item in items:
            reason = self._file_problem(item, rules)
            if reason is None:
                good.append(item)
            else:
                self._reject(item, reason)
        if not good:
            return len(items)
        try:
            self.store.put(dataset, [i.path for i in good], dests=[i.rel for i in good])
        except StoreCorrupt as err:
            self._transient(good, err)  # the store's fault, not the files': keep them
            return 0
        except DatastoreError:
            # one file spoiled the batch (a rule changed, a directory in the way): go one by one
            for item in good:
                self._ingest_one(item)
            return len(items)
        except (OSError, sqlite3.Error) as err:
            self._transient(good, err)
            return 0
        self._committed(dataset, good)
        return len(items)

    def _ingest_one(self, item: _Ready) -> None:
        try:
            self.store.put(item.dataset, [item.path], dests=[item.rel])
        except StoreCorrupt as err:
            self._transient([item], err)
            return
        except DatastoreError as err:
            if _signature(item.path) is None:
                self._pending.pop(item.path, None)  # taken away by someone else: nothing to do
                return
            self._reject(item, f"{err.message} [{err.code}]")
            return
        except (OSError, sqlite3.Error) as err:
            self._transient([item], err)
            return
        self._committed(item.dataset, [item])

    def _committed(self, dataset: str, items: list[_Ready]) -> None:
        """The batch is durable in the catalog: now, and only now, leave the inbox."""
        removed = 0
        for item in items:
            if not self._leave(item):
                continue  # rewritten while we read it: the new content goes in next round
            self._pending.pop(item.path, None)
            removed += 1
        self.stats.ingested += removed
        self.stats.batches += 1
        now = time.monotonic()
        self._dirty[dataset] = now
        self._activity[dataset] = now
        self.report("ingested", {"dataset": dataset, "files": [i.rel for i in items]})

    def _leave(self, item: _Ready) -> bool:
        """Take a committed file out of the inbox; True when it is gone.

        It is renamed to a private claim first, so from that instant a writer opening the
        path makes a new file instead of changing the claimed one; the claim is removed
        only when nobody has it open for writing and it is still exactly what was read
        (size, mtime, inode). Otherwise it goes back for the next round, unless a newer
        file has taken the path meanwhile. A claim left by a crash goes back at start.
        """
        rel = quote(os.path.relpath(item.path, self.root), safe="")
        if len(rel) > CLAIM_NAME_ROOM:  # no room to name it: checked and removed in place
            if _signature(item.path) != item.sig:
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item.path)
            return True
        claim = self.root / CLAIMS / f"{secrets.token_hex(8)}.{rel}"
        try:
            os.rename(item.path, claim)
        except FileNotFoundError:
            return False
        if _open_for_writing(str(claim)) or _signature(str(claim)) != item.sig:
            _give_back(claim, Path(item.path))
            return False
        os.unlink(claim)
        return True

    def _transient(self, items: list[_Ready], err: BaseException) -> None:
        retry = time.monotonic() + self.options.retry_seconds
        for item in items:
            seen = self._pending.get(item.path)
            if seen is not None:
                seen.retry_at = retry
        self.stats.error(f"{type(err).__name__}: {err}")
        self.report("retry", {"files": [i.path for i in items], "error": str(err)})

    def _dataset_problem(self, dataset: str) -> str | None:
        if not dataset:
            return "files must be inside a dataset folder: DIR/NAME/path [invalid_path]"
        try:
            names.dataset_name(dataset)
            self.store.dataset(dataset)
            return None
        except DatasetNotFound as err:
            if not self.options.create_datasets:
                return (
                    f"{err.message}; create it (ds create {dataset}) or watch with"
                    f" --create-datasets [{err.code}]"
                )
        except DatastoreError as err:
            return f"{err.message} [{err.code}]"
        try:
            self.store.create_dataset(dataset, description="created by the inbox")
            self.report("created", {"dataset": dataset})
        except DatasetExists:
            pass
        return None

    def _file_problem(self, item: _Ready, rules: ds_rules.Rules) -> str | None:
        """A permanent reason to refuse one file, found before any byte is stored."""
        try:
            names.file_path(item.rel)
            size = item.sig[0]
            limit = self.options.max_bytes
            if limit is not None and size > limit:
                raise FileTooLarge(f"{item.rel!r} is {size} bytes; the inbox accepts {limit}")
            ds_rules.check_size(rules, item.rel, size)
            if rules.restricts_type:
                with open(item.path, "rb") as f:
                    head = f.read(512)
                ds_rules.check_type(rules, item.rel, categorize(item.rel, head))
        except DatastoreError as err:
            return f"{err.message} [{err.code}]"
        except OSError:
            return None  # let the put meet it and decide whether it is transient
        return None

    def _reject(self, item: _Ready, reason: str) -> None:
        """Move a file to .rejected/NAME/rel/path with the reason in path.error beside it."""
        rel = item.path[len(self._prefix) :]
        try:
            target = _free_name(self.root / REJECTED / rel)
            error = target.with_name(target.name + ".error")
            tmp = error.with_name(f".{error.name}.{os.getpid()}.tmp")
            tmp.write_text(reason.rstrip() + "\n", encoding="utf-8")
            os.replace(tmp, error)
            os.replace(item.path, target)
        except OSError as err:
            self._transient([item], err)
            return
        self._pending.pop(item.path, None)
        self.stats.rejected += 1
        self.report(
            "rejected",
            {"file": rel, "to": str(target.relative_to(self.root)), "reason": reason},
        )

    # auto-snapshot --------------------------------------------------------------

    def _auto_snapshot(self, now: float) -> None:
        after = self.options.snapshot_after
        if after is None or not self._dirty:
            return
        busy = {self._classify(p, (0, 0, 0)).dataset for p in self._pending}
        for dataset in list(self._dirty):
            quiet = now - max(self._dirty[dataset], self._activity.get(dataset, 0.0))
            if dataset in busy or quiet < after:
                continue
            del self._dirty[dataset]
            self._snapshot(dataset)

    def _snapshot(self, dataset: str) -> None:
        tag = None
        if self.options.tag_pattern:
            tag = render_tag(self.options.tag_pattern, dataset)
        try:
            snap, created = self._snapshot_tagged(dataset, tag)
        except (DatastoreError, OSError, sqlite3.Error) as err:
            self.stats.error(f"snapshot of {dataset}: {err}")
            self.report("error", {"dataset": dataset, "error": str(err)})
            return
        self.stats.snapshots += int(created)
        self.report(
            "snapshot",
            {"dataset": dataset, "snapshot": snap.row.id, "tags": snap.tags, "created": created},
        )

    def _snapshot_tagged(self, dataset: str, tag: str | None) -> Any:
        """Snapshot with the tag; a tag already taken (same second) gets -2, -3, ..."""
        if tag is None:
            return self.store.snapshot(dataset, message="inbox")
        for n in range(1, 100):
            candidate = tag if n == 1 else f"{tag}-{n}"
            try:
                return self.store.snapshot(dataset, tag=candidate, message="inbox")
            except TagExists:
                continue
        return self.store.snapshot(dataset, message="inbox")


def render_tag(pattern: str, dataset: str) -> str:
    """``inbox-{utc:%Y%m%dT%H%M%S}`` -> ``inbox-20261201T120000``; ``{dataset}`` works too."""
    tag = pattern.format(utc=datetime.now(UTC), dataset=dataset)
    return names.tag_name(tag)


def check_tag_pattern(pattern: str) -> str:
    """Refuse a pattern that cannot render a valid tag, before the watcher starts."""
    try:
        render_tag(pattern, "dataset")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidRequest(f"bad tag pattern {pattern!r}: {exc}") from exc
    return pattern


def _by_dataset(items: Iterable[_Ready]) -> dict[str, list[_Ready]]:
    out: dict[str, list[_Ready]] = {}
    for item in items:
        out.setdefault(item.dataset, []).append(item)
    return out


def _chunks(items: list[_Ready], size: int) -> Iterable[list[_Ready]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _free_name(target: Path) -> Path:
    """``target``, or ``target.1``, ``target.2``, ... : a second rejected file of the same
    name must not replace the first (nothing handed to the inbox may vanish)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = target, 0
    while os.path.lexists(candidate) or os.path.lexists(f"{candidate}.error"):
        n += 1
        candidate = target.with_name(f"{target.name}.{n}")
    return candidate


def _give_back(claim: Path, path: Path) -> None:
    """Return a claimed file to its inbox path, unless a newer file took the path (the
    later write wins, as if it had replaced this one in place)."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(claim, path)
    claim.unlink()


def _signature(path: str) -> Signature | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _only_watcher(path: Path) -> int:
    """Hold the inbox's lock for the watcher's life; a second watcher is refused."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Conflict(f"another watcher is already ingesting {path.parent}") from None
    return fd


def _open_for_writing(path: str) -> bool | None:
    """Whether some process has the file open for writing, by a Linux read-lease test.

    A read lease is refused with EAGAIN while any writer has the file open. None when it
    cannot be known (another owner, a filesystem without leases, not Linux): then the
    stability window alone decides.
    """
    set_lease = getattr(fcntl, "F_SETLEASE", None)
    if set_lease is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        # A writer opening the file in the instant we hold the lease makes the kernel signal
        # us (SIGIO by default, which terminates); SIGURG is ignored unless handled.
        set_sig = getattr(fcntl, "F_SETSIG", None)
        if set_sig is not None:
            fcntl.fcntl(fd, set_sig, signal.SIGURG)
        fcntl.fcntl(fd, set_lease, fcntl.F_RDLCK)
    except OSError as err:
        return True if err.errno in (errno.EAGAIN, errno.EBUSY) else None
    else:
        fcntl.fcntl(fd, set_lease, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)
