"""Random access to one stored object's bytes, however the store keeps them.

Every view reads an object through an :class:`ObjectReader` (``Store.open_object``),
never through a path: a loose object is one file today, a packed or chunked one is
not, and the reader hides which. A reader positions nothing: each read names its
offset, so one reader serves concurrent requests (the mount's threads) without a lock.
"""

from __future__ import annotations

import errno
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import NamedTuple

READ_SIZE = 1 << 20


class Run(NamedTuple):
    """A stretch of an object: ``length`` bytes at ``at`` in the file ``fd`` when they lie
    raw there, else (``fd`` None) at ``at`` in the object, to be decoded."""

    fd: int | None
    at: int
    length: int


class ObjectReader(ABC):
    """An open object: its size, positional reads, and where it lies raw, if it does."""

    size: int

    @abstractmethod
    def readinto(self, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset``; the bytes read (short only at the end)."""

    def runs(self, start: int = 0, end: int | None = None) -> Iterator[Run]:
        """The bytes from ``start`` to ``end`` (default: the end) as consecutive runs,
        each raw in a file (for ``sendfile`` and ``copy_file_range``) or to be read
        through :meth:`readinto`; this one says: all of it through readinto."""
        stop = self.stop_at(end)
        if stop > start:
            yield Run(None, start, stop - start)

    def stop_at(self, end: int | None) -> int:
        """Where a stretch asked to end at ``end`` (None: the end) stops in this object."""
        return self.size if end is None else min(end, self.size)

    @abstractmethod
    def close(self) -> None: ...

    def advise_sequential(self) -> None:  # noqa: B027 - a hint: most readers ignore it
        """A hint that the whole object will be read in order (more readahead)."""

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileReader(ObjectReader):
    """An object that is one raw, contiguous run of bytes in one file (a loose object)."""

    def __init__(self, fd: int, size: int, offset: int = 0) -> None:
        self.fd = fd
        self.size = size
        self.offset = offset

    def readinto(self, view: memoryview, offset: int) -> int:
        want = min(len(view), self.size - offset)
        if want <= 0:
            return 0
        return os.preadv(self.fd, [view[:want]], self.offset + offset)

    def runs(self, start: int = 0, end: int | None = None) -> Iterator[Run]:
        stop = self.stop_at(end)
        if stop > start:
            yield Run(self.fd, self.offset + start, stop - start)

    def advise_sequential(self) -> None:
        os.posix_fadvise(self.fd, self.offset, self.size, os.POSIX_FADV_SEQUENTIAL)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SharedFileReader(FileReader):
    """A raw run of bytes in a file whose descriptor its owner closes (a pack many
    readers in a row go through: see ``PackCursor``)."""

    def close(self) -> None:
        self.fd = -1


class BytesReader(ObjectReader):
    """An object decoded into memory (a compressed blob: at most one chunk's size)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def readinto(self, view: memoryview, offset: int) -> int:
        n = max(0, min(len(view), self.size - offset))
        view[:n] = self.data[offset : offset + n]
        return n

    def close(self) -> None:
        self.data = b""


def read_at(reader: ObjectReader, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes from ``offset`` as one bytes object."""
    buf = bytearray(max(0, min(size, reader.size - offset)))
    view = memoryview(buf)
    done = 0
    while done < len(buf):
        n = reader.readinto(view[done:], offset + done)
        if n == 0:
            break
        done += n
    return bytes(buf[:done])


def iter_chunks(reader: ObjectReader, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes from ``start`` to ``end`` (default: the end) in pieces of READ_SIZE."""
    stop = reader.stop_at(end)
    pos = start
    while pos < stop:
        piece = read_at(reader, min(READ_SIZE, stop - pos), pos)
        if not piece:
            raise EOFError(f"object ended at {pos} of {reader.size} bytes")
        pos += len(piece)
        yield piece


def copy_to_fd(reader: ObjectReader, dst: int) -> None:
    """Write the whole object at the start of ``dst``: in the kernel where its bytes lie
    raw in a file (a loose object, a raw chunk; copy_file_range reflinks where the
    filesystem can), else decoded piece by piece."""
    done = 0
    for run in reader.runs():
        copied = 0 if run.fd is None else _copy_range(run.fd, run.at, dst, done, run.length)
        pos = done + copied
        for piece in iter_chunks(reader, pos, done + run.length):
            view = memoryview(piece)
            while view:
                n = os.pwrite(dst, view, pos)
                view, pos = view[n:], pos + n
        done += run.length


def _copy_range(src: int, at: int, dst: int, to: int, length: int) -> int:
    """copy_file_range as far as it goes; the bytes copied (0 where the kernel cannot)."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src, dst, length - done, at + done, to + done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    return done


class ReaderFile(io.RawIOBase):
    """A reader as a read-only, seekable binary file (for tarfile, zipfile, shutil)."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._reader.readinto(memoryview(b).cast("B"), self._pos)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._reader.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


def open_file(reader: ObjectReader) -> io.BufferedReader:
    """The reader as a buffered binary file; closing the file closes the reader."""
    return io.BufferedReader(ReaderFile(reader), READ_SIZE)
