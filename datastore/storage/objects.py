"""Content-addressed blobs: ``objects/ab/cdef...``, immutable, written once and durably.

Placement (id <-> path) lives in two small inverse functions; hashing is a separate,
injectable factory so a test can force a collision. Because xxh3 is not cryptographic,
an id that already exists is only deduplicated after the stored bytes are compared with
the incoming ones (ZFS ``dedup=verify``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NewType, Protocol

import xxhash

from datastore.errors import FileTooLarge, HashCollision, StoreCorrupt
from datastore.storage.locks import unheld
from datastore.storage.reader import FileReader

ObjectId = NewType("ObjectId", str)

CHUNK = 1 << 20
SMALL_FILE = 4 << 20
HEAD_BYTES = 512
TEMP_PREFIX = ".tmp-"
OBJECT_MODE = 0o444
TEMP_MIN_AGE = 60.0  # seconds: gc spares any temp this young, whatever its grace period
log = logging.getLogger("ds.objects")


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


HasherFactory = Callable[[], Hasher]


def default_hasher() -> Hasher:
    return xxhash.xxh3_128()


def object_relpath(oid: str) -> str:
    """The fan-out placement of an id; the inverse is :func:`object_id_from_relpath`."""
    return f"{oid[:2]}/{oid[2:]}"


def object_id_from_relpath(rel: str) -> ObjectId | None:
    """The id a placement names, or None for anything that is not an object file."""
    head, sep, tail = rel.partition("/")
    oid = head + tail
    if sep and len(head) == 2 and len(oid) == 32 and all(c in "0123456789abcdef" for c in oid):
        return ObjectId(oid)
    return None


class ObjectStore:
    """A directory of content-addressed files; every write is temp + fsync + rename."""

    def __init__(self, root: Path, hasher: HasherFactory = default_hasher) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.hasher = hasher
        self._root = str(root)
        self._tmp = str(self.tmp)

    def init(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for i in range(256):
            (self.root / f"{i:02x}").mkdir(exist_ok=True)

    def path(self, oid: str) -> Path:
        return Path(self.place(oid))

    def place(self, oid: str) -> str:
        """Where an object's bytes are, as a plain string: hot paths (import, checkout)
        avoid pathlib's overhead."""
        return f"{self._root}/{oid[:2]}/{oid[2:]}"

    def exists(self, oid: str) -> bool:
        return os.path.exists(self.place(oid))

    def plausible(self, oid: str, size: int) -> bool | None:
        """A cheap check that a stored object may be trusted without rereading its source:
        of the expected size, and with no other hard link (``ds checkout --link``) through
        which it may have been written; None when it is not here at all."""
        try:
            st = os.stat(self.place(oid))
        except FileNotFoundError:
            return None
        return st.st_size == size and st.st_nlink == 1

    def has_size(self, oid: str, size: int) -> bool:
        """Present with this many bytes (what a write that was never flushed may lack)."""
        try:
            return os.stat(self.place(oid)).st_size == size
        except FileNotFoundError:
            return False

    def size(self, oid: str) -> int:
        return os.stat(self.place(oid)).st_size

    def reader(self, oid: str) -> FileReader | None:
        """Positional reads of a loose object; None when there is no loose file."""
        try:
            fd = os.open(self.place(oid), os.O_RDONLY)
        except FileNotFoundError:
            return None
        return FileReader(fd, os.fstat(fd).st_size)

    def hash_bytes(self, data: bytes | memoryview) -> ObjectId:
        h = self.hasher()
        h.update(data)
        return ObjectId(h.hexdigest())

    def hash_file(self, path: Path | str) -> ObjectId:
        h = self.hasher()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return ObjectId(h.hexdigest())

    def put_bytes(self, data: bytes, *, durable: bool = True) -> ObjectId:
        """Store ``data``; with ``durable=False`` the caller must :meth:`sync` before use."""
        oid = self.hash_bytes(data)
        if os.path.exists(self.place(oid)) and self._same_as_stored_bytes(oid, data):
            self._settle(oid, durable)
            return oid
        tmp = f"{self._root}/{oid[:2]}/{TEMP_PREFIX}{oid[2:]}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        except BaseException:
            os.unlink(tmp)  # a full disk leaves no half-written temp behind
            raise
        finally:
            os.close(fd)
        self._install(tmp, oid, durable)
        return oid

    def put_file(self, src: Path | str, *, durable: bool = True) -> tuple[ObjectId, int]:
        """Store a local file durably (fsync before returning)."""
        oid, size, _ = self.import_file(src, durable=durable)
        return oid, size

    def import_file(self, src: Path | str, *, durable: bool = False) -> tuple[ObjectId, int, bytes]:
        """Store a local file; also returns its first bytes, for categorizing without a reread."""
        with open(src, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= SMALL_FILE:
                data = f.read()
                return self.put_bytes(data, durable=durable), len(data), data[:HEAD_BYTES]
            head = f.read(HEAD_BYTES)
            f.seek(0)
            oid, size = self.put_stream(iter(lambda: f.read(CHUNK), b""), durable=durable)
            return oid, size, head

    def put_stream(
        self, chunks: Iterable[bytes], *, max_bytes: int | None = None, durable: bool = True
    ) -> tuple[ObjectId, int]:
        """Hash while writing to a temp file, so a stream is never held in memory."""
        tmp = self._temp_name("stream")
        h = self.hasher()
        size = 0
        try:
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE), "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise FileTooLarge(f"upload exceeds the limit of {max_bytes} bytes")
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            oid = ObjectId(h.hexdigest())
            if self.path(oid).exists() and self._same_as_stored_file(oid, tmp):
                tmp.unlink()
                self._settle(oid, durable)
                return oid, size
            self._install(tmp, oid, durable)
            return oid, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def adopt(self, src: Path, *, durable: bool = True) -> tuple[ObjectId, int]:
        """Move a finished temp file (same filesystem) into the store without copying it."""
        oid = self.hash_file(src)
        size = os.stat(src).st_size
        if self.path(oid).exists() and self._same_as_stored_file(oid, src):
            src.unlink()
            self._settle(oid, durable)
            return oid, size
        if durable:
            fsync_path(src)
        os.chmod(src, OBJECT_MODE)
        self._install(src, oid, durable)
        return oid, size

    def open_temp(self, label: str = "staging") -> TempFile:
        """A fresh scratch file next to the objects (so a finished one can be renamed in),
        locked shared for as long as its descriptor is open: gc removes only temps whose
        lock it can take (and never one younger than ``TEMP_MIN_AGE``, which covers the
        instant between creating and locking), so an in-flight write is safe however
        long it idles."""
        path = self._temp_str(label)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return TempFile(Path(path), fd)

    def remove_idle_temp(self, path: Path, dry_run: bool = False) -> bool:
        """Delete a temp file unless a writer holds it open (its lock); True if it was
        (or, with ``dry_run``, would be) removed."""
        with unheld(path) as idle:
            if idle and not dry_run:
                os.unlink(path)
            return idle

    def iter_ids(self) -> Iterator[ObjectId]:
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                oid = object_id_from_relpath(f"{sub.name}/{entry.name}")
                if oid is not None:
                    yield oid

    def iter_temp(self) -> Iterator[Path]:
        """Temp files: streams in ``tmp/``, small writes beside their final place (a rename
        within one directory is an order of magnitude cheaper than across directories)."""
        yield from self.tmp.iterdir()
        for sub in self.root.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                for entry in os.scandir(sub):
                    if entry.name.startswith(TEMP_PREFIX):
                        yield Path(entry.path)

    def verify(self, oid: str) -> bool:
        """True when the stored bytes still hash to their name."""
        try:
            return self.hash_file(self.path(oid)) == oid
        except FileNotFoundError:
            return False

    def expire(self, oids: Iterable[str]) -> None:
        """Date objects a failed operation wrote back to the epoch, so the next gc may take
        the ones nothing references at once instead of after its grace period (a writer
        that deduplicated against one meanwhile holds gc off until it commits, and its
        commit makes the object live)."""
        for oid in oids:
            try:
                os.utime(self.place(oid), (0, 0))
            except OSError:
                continue

    def remove(self, oid: str) -> None:
        self.path(oid).unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush every pending batch write of this filesystem at once (syncfs)."""
        syncfs(self.root)

    def _temp_name(self, label: str) -> Path:
        return Path(self._temp_str(label))

    def _temp_str(self, label: str) -> str:
        return f"{self._tmp}/{label}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(6)}"

    def _install(self, tmp: Path | str, oid: ObjectId, durable: bool) -> None:
        target = self.place(oid)
        try:
            os.rename(tmp, target)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(tmp, target)
        if durable:
            fsync_dir(Path(os.path.dirname(target)))

    def _settle(self, oid: ObjectId, durable: bool) -> None:
        """A deduplicated write is acknowledged on the stored copy, which another writer
        may have renamed in without a flush yet (a batch import syncs at its end): flush
        it and its directory entry before this write is reported durable."""
        if durable:
            self.flush(oid)

    def flush(self, oid: ObjectId) -> None:
        """Make a stored object, written without a flush, durable: its bytes and its name."""
        fsync_path(self.place(oid))
        fsync_dir(Path(os.path.dirname(self.place(oid))))

    def _same_as_stored_bytes(self, oid: ObjectId, data: bytes) -> bool:
        """Compare before dedup; True means deduplicated, False means repair by rewrite."""
        target = self.path(oid)
        try:
            with open(target, "rb") as f:
                stored = f.read()
        except FileNotFoundError:
            return False
        if stored == data:
            touch(target)
            return True
        return self._stored_is_corrupt(oid)

    def _same_as_stored_file(self, oid: ObjectId, candidate: Path) -> bool:
        target = self.path(oid)
        try:
            if files_equal(target, candidate):
                touch(target)
                return True
        except FileNotFoundError:
            return False
        return self._stored_is_corrupt(oid)

    def _stored_is_corrupt(self, oid: ObjectId) -> bool:
        """Different bytes under one id: repair a damaged object, refuse a real collision."""
        if self.verify(oid):
            raise HashCollision(
                f"different content hashes to existing object {oid}; refusing to merge"
            )
        log.warning("object %s was corrupt on disk; replacing it with intact incoming bytes", oid)
        return False


def missing(oid: str) -> StoreCorrupt:
    return StoreCorrupt(f"object {oid} is missing from the store; run ds fsck")


class TempFile:
    """A scratch file held open (and so locked against gc) until :meth:`close`.

    Adopt it into the store by path *before* closing it; :meth:`discard` removes it.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.close()

    def start_writeback(self) -> None:
        """Begin writing the file's dirty pages to disk without waiting for them
        (``sync_file_range``): a large file written through the mount then flushes while
        it is written, and the fsync or snapshot that follows has little left to wait
        for. A hint only: it promises nothing, and a failure is ignored."""
        if self.fd is not None:
            start_writeback(self.fd)


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Begin writing a file's dirty pages (from ``offset``, ``length`` bytes; 0: to the
    end) to disk without waiting (``sync_file_range``): the flush that must come later
    then overlaps the writing instead of following it. A hint; failures are ignored."""
    _libc.sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def files_equal(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if os.fstat(fa.fileno()).st_size != os.fstat(fb.fileno()).st_size:
            return False
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def touch(path: Path) -> None:
    """Refresh an object's mtime so gc's grace period covers a write that deduplicated."""
    try:
        os.utime(path)
    except OSError:
        log.debug("could not refresh mtime of %s", path)


def fsync_path(path: Path | str, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fsync_path(path, os.O_RDONLY | os.O_DIRECTORY)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


SYNC_FILE_RANGE_WRITE = 2
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
