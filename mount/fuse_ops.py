"""The FUSE operations: a thin translation from mfusepy callbacks to :class:`Overlay`.

Every callback goes through :func:`_translated`, which turns any exception into the one
errno :func:`mount.errors.to_errno` chooses, so nothing but ``FuseOSError`` reaches the
binding and the mount keeps serving after any failure, and times it into
:data:`OP_LATENCY` (written out for ``ds serve``'s ``/metrics`` with ``--metrics``).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import mfusepy

from datastore import Histogram

from .errors import to_errno
from .overlay import Caller, Overlay

log = logging.getLogger("ds.mount")

F = TypeVar("F", bound=Callable[..., Any])

CACHE_TIMEOUT = 60.0  # seconds the kernel keeps entries and attributes
METRICS_INTERVAL = 2.0  # seconds between writes of the latency histogram
POLL_INTERVAL = 0.2  # seconds between looks for changes made outside the mount
SETTLE_INTERVAL = 5.0  # seconds a closed file may stay unflushed (ext4 commits every 5 s)
IO_SIZE = 1 << 20
DIR_MODE = 0o040755
DOTS = [(".", {"st_mode": DIR_MODE}), ("..", {"st_mode": DIR_MODE})]
BUILT_LISTINGS = 4096
FUSE_READDIR_PLUS = 1 << 0
FUSE_FILL_DIR_PLUS = 1 << 1


OP_LATENCY = Histogram(
    "ds_mount_op_duration_seconds",
    "Time the mount process spent on each FUSE operation, by operation.",
    "op",
    (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5),
)


def _translated(func: F) -> F:
    op = func.__name__

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        except mfusepy.FuseOSError:
            raise
        except Exception as exc:  # the single translation point: every error is an errno
            code = to_errno(exc)
            if code in (errno.EIO, errno.EINVAL):
                log.debug("%s%r -> %s: %s", op, args[1:2], errno.errorcode[code], exc)
            raise mfusepy.FuseOSError(code) from None
        finally:
            OP_LATENCY.observe(op, time.perf_counter() - start)

    return wrapper  # type: ignore[return-value]


def _path(path: str | None) -> str:
    return path or "/"


def _caller(flags: int) -> int | None:
    """The process opening a file for writing (a read-only open never publishes)."""
    if flags & os.O_ACCMODE == os.O_RDONLY and not flags & os.O_TRUNC:
        return None
    return _process(mfusepy.fuse_get_context()[2])


def _process(tid: int) -> int | None:
    """The process (thread group) of the thread FUSE names: a job's threads share one
    descriptor table, so any of them closing is the job closing. None once it is gone."""
    tgid = _status(tid, b"Tgid:")
    return int(tgid[0]) if tgid else None


def _creator() -> tuple[int, int]:
    """The uid and file-system gid of this request: what a new entry belongs to."""
    uid, gid, _ = mfusepy.fuse_get_context()
    return uid, gid


def _who() -> Caller:
    """The user behind this request with every group it is in (read from /proc, so only
    where a rule needs the groups: chown)."""
    uid, gid, tid = mfusepy.fuse_get_context()
    return Caller(uid, frozenset({gid, *_groups(tid)}))


def _groups(tid: int) -> set[int]:
    """The supplementary groups of the thread FUSE names (none once it is gone)."""
    return {int(g) for g in _status(tid, b"Groups:") or []}


def _status(tid: int, key: bytes) -> list[bytes] | None:
    """The values of one ``/proc/TID/status`` line; None when the thread is gone."""
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return line.split()[1:]
    except OSError:
        pass
    return None


class DsFUSE(mfusepy.FUSE):
    """mfusepy's FUSE with the few request paths where its defaults cost too much.

    ``opendir`` may ask the kernel to cache a snapshot's listing; ``readdir`` answers
    READDIRPLUS with full attributes and offsets (mfusepy sends modes only, and libfuse
    drops READDIRPLUS attributes given without offsets); ``read`` and ``write`` work on
    libfuse's buffer in place and also serve unlinked open files (NULL path).
    """

    def __init__(self, operations: Any, mountpoint: str, **kwargs: Any) -> None:
        self._dirs: dict[int, list[tuple[bytes, Any]]] = {}
        self._built: dict[int, tuple[list[Any], list[tuple[bytes, Any]]]] = {}
        self._next_dir = itertools.count(1)
        super().__init__(operations, mountpoint, **kwargs)

    def opendir(self, path: bytes, fip: Any) -> int:
        decoded = path.decode(self.encoding, self.errors)
        self.operations.opendir(decoded)
        fip.contents.fh = next(self._next_dir)
        if self.operations.immutable(decoded):
            fip.contents.cache_readdir = 1
            fip.contents.keep_cache = 1
        return 0

    def readdir_fuse_3(
        self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int
    ) -> int:
        """Listings with full attributes when the kernel asks for READDIRPLUS, so a
        ``find`` or ``ls -l`` needs no LOOKUP per entry (mfusepy sends the mode only).
        Entries carry offsets (libfuse drops READDIRPLUS attributes without them); the
        listing is taken once per opendir and served in the kernel's chunks."""
        fh = fip.contents.fh
        entries = self._dirs.get(fh)
        if entries is None or offset == 0:
            decoded = "/" if path is None else path.decode(self.encoding, self.errors)
            entries = self._entries(decoded, bool(flags & FUSE_READDIR_PLUS))
            self._dirs[fh] = entries
        fill = FUSE_FILL_DIR_PLUS if flags & FUSE_READDIR_PLUS else 0
        for i in range(offset, len(entries)):
            name, st = entries[i]
            if filler(buf, name, st, i + 1, fill) != 0:
                break
        return 0

    def _entries(self, path: str, plus: bool) -> list[tuple[bytes, Any]]:
        """Names and stat structs, built once per snapshot listing (the overlay hands out
        the same list object for an immutable directory), per opendir for a head."""
        listing = self.operations.listing(path, plus)
        hit = self._built.get(id(listing))
        if hit is not None and hit[0] is listing:
            return hit[1]
        built = [self._stat_entry(n, a) for n, a in [*DOTS, *listing]]
        if self.operations.immutable(path):
            if len(self._built) >= BUILT_LISTINGS:
                self._built.clear()
            self._built[id(listing)] = (listing, built)
        return built

    def _stat_entry(self, name: str, attrs: dict[str, Any]) -> tuple[bytes, Any]:
        st = mfusepy.c_stat()
        mfusepy.set_st_attrs(st, attrs, use_ns=True)
        return name.encode(self.encoding, self.errors), st

    def releasedir(self, path: bytes | None, fip: Any) -> int:
        self._dirs.pop(fip.contents.fh, None)
        return 0

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        """Read straight into libfuse's buffer (one copy, no bytes object per request);
        also for an unlinked open file, whose path is NULL (hard_remove)."""
        view = ctypes.cast(buf, ctypes.POINTER(ctypes.c_char * size)).contents
        return self.operations.read_into(memoryview(view).cast("B"), offset, fip.contents.fh)

    def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        """Write from libfuse's buffer without copying it into a bytes object first."""
        view = ctypes.cast(buf, ctypes.POINTER(ctypes.c_char * size)).contents
        return self.operations.write_from(memoryview(view).cast("B"), offset, fip.contents.fh)


class DsOperations(mfusepy.Operations):
    """mfusepy callbacks; file handles are the overlay's integers, set on ``fi.fh``."""

    use_ns = True
    flag_nullpath_ok = False
    flag_nopath = False

    def __init__(self, overlay: Overlay, metrics_path: Path | None = None) -> None:
        self.overlay = overlay
        self.metrics_path = metrics_path
        self._fuse: int | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def init_with_config(self, conn: Any, config: Any) -> None:
        """Long kernel cache times, kept honest by :meth:`_watch` (libfuse's high-level API
        has one timeout for every entry); 1 MiB requests; unlinked files go at once
        (hard_remove: no .fuse_hidden renames inside a dataset). Starts the watcher and
        loads pyarrow in the background (the first listing would otherwise pay it)."""
        if config is not None:
            config.entry_timeout = CACHE_TIMEOUT
            config.attr_timeout = CACHE_TIMEOUT
            config.negative_timeout = 0.0
            config.hard_remove = 1
            config.nullpath_ok = 0
            config.use_ino = 0
            config.kernel_cache = 0
            config.auto_cache = 0
        if conn is not None:
            conn.max_readahead = max(conn.max_readahead, IO_SIZE)
            conn.max_write = IO_SIZE
            conn.max_read = IO_SIZE
        self._fuse = mfusepy._libfuse.fuse_get_context().contents.fuse
        self._watcher = threading.Thread(target=self._watch, name="ds-mount-watch", daemon=True)
        self._watcher.start()
        preload = threading.Thread(target=self._preload, name="ds-mount-preload", daemon=True)
        preload.start()

    def _preload(self) -> None:
        """pyarrow imported while the mount is idle, not during its first listing."""
        try:
            self.overlay.store.preload()
        except Exception:
            log.exception("could not load pyarrow ahead of use")

    def _watch(self) -> None:
        """Every POLL_INTERVAL, drop the kernel's entries and pages for paths changed
        outside the mount (CLI, API, snapshots moving refs): visible within 1 s; every
        SETTLE_INTERVAL, flush the files closed since (closes flush nothing); every
        METRICS_INTERVAL, write the latency histogram out (with ``--metrics``)."""
        invalidate = mfusepy._libfuse.fuse_invalidate_path
        invalidate.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        invalidate.restype = ctypes.c_int
        settled = wrote = time.monotonic()
        while not self._stop.wait(POLL_INTERVAL):
            now = time.monotonic()
            if now - settled >= SETTLE_INTERVAL:
                settled = now
                try:
                    self.overlay.settle()
                except Exception:
                    log.exception("could not flush closed files")
            if now - wrote >= METRICS_INTERVAL:
                wrote = now
                self._write_metrics()
            try:
                paths = self.overlay.watch.poll()
            except Exception:
                log.exception("could not poll the store for changes")
                continue
            for path in paths:
                if self._stop.is_set():
                    return
                invalidate(self._fuse, path.encode("utf-8", "surrogateescape"))

    @_translated
    def getattr(self, path: str | None, fh: Any = None) -> dict[str, Any]:
        return self.overlay.getattr(_path(path), fh.fh if fh is not None else None)

    @_translated
    def listing(self, path: str, plus: bool) -> list[tuple[str, dict[str, Any]]]:
        """The overlay's own list when it has one cached (its identity keys DsFUSE's)."""
        if plus:
            return self.overlay.readdir_attrs(path)
        return [(n, {"st_mode": mode}) for n, mode in self.overlay.readdir(path)]

    @_translated
    def readdir(self, path: str | None, fh: int) -> list[Any]:
        return [(".", DIR_MODE, 0), ("..", DIR_MODE, 0), *self._with_offsets(path)]

    def _with_offsets(self, path: str | None) -> list[tuple[str, int, int]]:
        return [(name, mode, 0) for name, mode in self.overlay.readdir(_path(path))]

    @_translated
    def opendir(self, path: str) -> int:
        self.overlay.getattr(path)
        return 0

    def releasedir(self, path: str | None, fh: int) -> int:
        return 0

    def immutable(self, path: str) -> bool:
        """True under ``NAME@REF``: the kernel may cache the listing (a moved ref is
        invalidated with every directory listed under it)."""
        return self.overlay.locate(path).ref is not None

    @_translated
    def open(self, path: str, fi: Any) -> int:
        fh, keep = self.overlay.open(path, fi.flags, _caller(fi.flags))
        fi.fh = fh
        fi.keep_cache = 1 if keep else 0
        fi.direct_io = 0
        # committed content read as it is: its close has nothing to publish, so the
        # kernel need not wait on a FLUSH round trip at every close (FOPEN_NOFLUSH)
        fi.noflush = 1 if self.overlay.handle(fh).staging is None else 0
        return 0

    @_translated
    def create(self, path: str, mode: int, fi: Any) -> int:
        fi.fh = self.overlay.create(path, mode, fi.flags, _caller(fi.flags), _creator())
        fi.keep_cache = 0
        fi.direct_io = 0
        return 0

    @_translated
    def read(self, path: str | None, size: int, offset: int, fi: Any) -> bytes:
        return self.overlay.read(fi.fh, size, offset)

    @_translated
    def read_into(self, view: memoryview, offset: int, fh: int) -> int:
        return self.overlay.read_into(fh, view, offset)

    @_translated
    def write_from(self, view: memoryview, offset: int, fh: int) -> int:
        return self.overlay.write(fh, view, offset)

    @_translated
    def write(self, path: str | None, data: bytes, offset: int, fi: Any) -> int:
        return self.overlay.write(fi.fh, data, offset)

    @_translated
    def truncate(self, path: str | None, length: int, fh: Any = None) -> int:
        self.overlay.truncate(_path(path), length, fh.fh if fh is not None else None)
        return 0

    @_translated
    def flush(self, path: str | None, fi: Any) -> int:
        tid = mfusepy.fuse_get_context()[2]  # read now: the context is this request's
        self.overlay.flush(fi.fh, lambda: _process(tid))
        return 0

    @_translated
    def fsync(self, path: str | None, datasync: int, fi: Any) -> int:
        self.overlay.fsync(fi.fh)
        return 0

    @_translated
    def release(self, path: str | None, fi: Any) -> int:
        self.overlay.release(fi.fh)
        return 0

    @_translated
    def mkdir(self, path: str, mode: int) -> int:
        self.overlay.mkdir(path, mode, _creator())
        return 0

    @_translated
    def rmdir(self, path: str) -> int:
        self.overlay.rmdir(path)
        return 0

    @_translated
    def unlink(self, path: str) -> int:
        self.overlay.unlink(path)
        return 0

    @_translated
    def rename(self, old: str, new: str) -> int:
        self.overlay.rename(old, new)
        return 0

    @_translated
    def chmod(self, path: str | None, mode: int) -> int:
        self.overlay.chmod(_path(path), mode)
        return 0

    @_translated
    def chown(self, path: str | None, uid: int, gid: int) -> int:
        self.overlay.chown(_path(path), uid, gid, _who())
        return 0

    @_translated
    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        self.overlay.utimens(_path(path), times)
        return 0

    @_translated
    def statfs(self, path: str) -> dict[str, int]:
        return self.overlay.statfs()

    @_translated
    def link(self, target: str, source: str) -> int:
        self.overlay.link(target, source)
        return 0

    @_translated
    def symlink(self, path: str, target: str) -> int:
        self.overlay.symlink(path, target, _creator())
        return 0

    @_translated
    def readlink(self, path: str) -> str:
        return self.overlay.readlink(path)

    @_translated
    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise OSError(errno.ENOTSUP, "only regular files, directories and symbolic links")

    def _write_metrics(self) -> None:
        """The histogram as Prometheus text, replaced whole (a reader never sees half)."""
        if self.metrics_path is None:
            return
        tmp = self.metrics_path.with_name(self.metrics_path.name + ".tmp")
        try:
            tmp.write_text("\n".join(OP_LATENCY.render()) + "\n")
            os.replace(tmp, self.metrics_path)
        except OSError as exc:
            log.warning("could not write the mount's metrics to %s: %s", self.metrics_path, exc)

    def destroy(self, path: str) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
        self.overlay.shutdown()
        self._write_metrics()
