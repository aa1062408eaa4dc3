"""Where a store's write-once files live: the interface packs and manifest ranges are
stored through, and its local-directory implementation.

Everything a remote backend must offer is here: put-if-absent of a finished file, a
read of a byte range, a stat, a listing, a delete. Names are ids (32 hex digits);
placement fans out by their first two digits, as objects do. Nothing above this module
names a file of the store it manages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datastore.storage.locks import unheld
from datastore.storage.objects import fsync_dir, fsync_path, syncfs


@dataclass(frozen=True, slots=True)
class Stored:
    """One file a backend holds: its id (a scratch file: its path), size in bytes and
    modification time."""

    key: str
    size: int
    mtime: float


class Backend(ABC):
    """Write-once files named by id."""

    @abstractmethod
    def init(self) -> None:
        """Make what a first write needs (idempotent)."""

    @abstractmethod
    def new_temp(self, label: str) -> tuple[str, int]:
        """A local scratch file (path, descriptor open for writing) that becomes a stored
        file through :meth:`put_if_absent`; locked against gc while its descriptor is open."""

    @abstractmethod
    def put_if_absent(self, temp: str, key: str, durable: bool) -> bool:
        """Store a finished temp file as ``key``; False (and the temp dropped) when the
        key was already there: a key names its content, so the stored file is the same.
        Either way the file's modification time is now: gc's grace period counts from
        the last put, so a file a writer is about to reference again is not swept."""

    @abstractmethod
    def stat(self, key: str) -> Stored | None:
        """Size and modification time of a stored file (None when absent)."""

    @abstractmethod
    def open_fd(self, key: str) -> int:
        """A descriptor for positional reads (FileNotFoundError when absent)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """A whole stored file (FileNotFoundError when absent)."""

    @abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    @abstractmethod
    def list(self) -> Iterator[Stored]: ...

    @abstractmethod
    def temps(self) -> Iterator[Stored]:
        """Scratch files, for gc: a crashed writer's are removed once old and unlocked."""

    @abstractmethod
    def remove_idle_temp(self, path: str, dry_run: bool) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def sync(self) -> None:
        """Make every put made with ``durable=False`` durable at once."""


class LocalBackend(Backend):
    """A directory: ``ab/cdef...`` files (with ``suffix``, e.g. ``.parquet``), mode 0444,
    and ``tmp/`` for files being written."""

    def __init__(self, root: Path, suffix: str = "") -> None:
        self.root = root
        self._root = str(root)
        self.suffix = suffix

    def init(self) -> None:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def place(self, key: str) -> str:
        return f"{self._root}/{key[:2]}/{key[2:]}{self.suffix}"

    def new_temp(self, label: str) -> tuple[str, int]:
        name = f"{label}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(6)}"
        path = f"{self._root}/tmp/{name}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return path, fd

    def put_if_absent(self, temp: str, key: str, durable: bool) -> bool:
        target = self.place(key)
        if os.path.exists(target):
            os.unlink(temp)
            os.utime(target)
            return False
        if durable:
            fsync_path(temp)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(temp, target)
        if durable:
            fsync_dir(Path(os.path.dirname(target)))
        return True

    def stat(self, key: str) -> Stored | None:
        try:
            st = os.stat(self.place(key))
        except FileNotFoundError:
            return None
        return Stored(key, st.st_size, st.st_mtime)

    def open_fd(self, key: str) -> int:
        return os.open(self.place(key), os.O_RDONLY)

    def get(self, key: str) -> bytes:
        with open(self.place(key), "rb") as f:
            return f.read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        fd = self.open_fd(key)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def list(self) -> Iterator[Stored]:
        if not self.root.is_dir():
            return
        for sub in sorted(os.scandir(self.root), key=lambda e: e.name):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if not entry.name.endswith(self.suffix):
                    continue
                key = sub.name + entry.name[: len(entry.name) - len(self.suffix)]
                if len(key) == 32 and all(c in "0123456789abcdef" for c in key):
                    st = entry.stat()
                    yield Stored(key, st.st_size, st.st_mtime)

    def temps(self) -> Iterator[Stored]:
        tmp = self.root / "tmp"
        if tmp.is_dir():
            for entry in os.scandir(tmp):
                st = entry.stat()
                yield Stored(entry.path, st.st_size, st.st_mtime)

    def remove_idle_temp(self, path: str, dry_run: bool) -> bool:
        with unheld(Path(path)) as idle:
            if idle and not dry_run:
                os.unlink(path)
            return idle

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.place(key))

    def sync(self) -> None:
        syncfs(self.root)
