"""An object's bytes, wherever they are kept: a loose file, or a blob in a pack.

Loose objects are looked at first (one ``open``); then the catalog's blob index. A
loose object is removed only after the index rows of its packed copy committed, so a
reader never finds neither. Imports write small files straight into packs through an
:class:`ImportBatch`, whose index rows the caller commits with the rows that use them.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import BinaryIO, Protocol

from datastore.errors import HashCollision, StoreCorrupt
from datastore.storage import chunker, codec
from datastore.storage.backend import Backend
from datastore.storage.objects import HEAD_BYTES, ObjectId, ObjectStore, missing
from datastore.storage.packs import PACK_TARGET, BlobRef, PackWriter
from datastore.storage.pools import shared_pool
from datastore.storage.reader import (
    BytesReader,
    FileReader,
    ObjectReader,
    Run,
    SharedFileReader,
    copy_to_fd,
    iter_chunks,
)

PACKED_MAX = 1 << 20  # files up to this size are one blob in a pack
CHUNKS_AHEAD = 8  # a large file's chunks in flight on the chunk pool (~4 MiB)
AHEAD_MIN = 32 << 20  # files from this size have their chunks prepared on the pool
CHUNK_WORKERS = max(2, os.cpu_count() or 2)
Encoded = tuple[int, bytes | memoryview]  # (codec, stored bytes)
_Prepared = tuple[str, bytes | memoryview, Encoded | None]
log = logging.getLogger("ds.content")


class BlobIndex(Protocol):
    """Where blobs are, and which objects are lists of chunks (the catalog keeps both)."""

    def blob(self, blob_id: str) -> BlobRef | None: ...

    def blobs(self, blob_ids: Sequence[str]) -> dict[str, BlobRef]: ...

    def chunk_list(self, oid: str) -> tuple[int, bytes] | None: ...

    def indexed_sizes(self, oids: Sequence[str]) -> dict[str, int]: ...


class ContentStore:
    """Loose objects, packs, and the index that finds blobs in packs."""

    def __init__(self, objects: ObjectStore, packs: Backend, index: BlobIndex, cache: Path) -> None:
        self.objects = objects
        self.packs = packs
        self.index = index
        self.cache = cache

    def local_file(self, oid: str) -> Path:
        """A local file of an object's bytes, for readers that need a path (DuckDB): the
        loose object itself, else a copy in the cache named by the id (so never stale),
        refreshed on each use and removed by gc once idle for its grace period."""
        loose = self.objects.path(oid)
        if loose.exists():
            return loose
        cached = self.cache / oid
        try:
            os.utime(cached)
            return cached
        except FileNotFoundError:
            pass
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = self.cache / f".{oid}.{secrets.token_hex(6)}"
        with self.reader(oid) as reader:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                copy_to_fd(reader, fd)
            finally:
                os.close(fd)
        os.replace(tmp, cached)
        return cached

    def expire_cache(self, cutoff: float, dry_run: bool) -> int:
        """Remove cached copies (and a crashed copier's temps) unused since ``cutoff``."""
        removed = 0
        for entry in os.scandir(self.cache) if self.cache.is_dir() else ():
            if entry.stat().st_mtime < cutoff:
                removed += 1
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return removed

    def reader(self, oid: str) -> ObjectReader:
        """Positional reads of an object; a missing one is ``store_corrupt``."""
        loose = self.objects.reader(oid)
        if loose is not None:
            return loose
        for _ in range(2):  # a repack may move a blob between the lookup and the open
            ref = self.index.blob(oid)
            if ref is None:
                listed = self.index.chunk_list(oid)
                if listed is None:
                    break
                return ChunkedReader(self, oid, chunker.decode(listed[1]))
            try:
                fd = self.packs.open_fd(ref.pack)
            except FileNotFoundError:
                continue
            if ref.codec == codec.RAW:
                return FileReader(fd, ref.raw_length, ref.offset)
            try:
                return BytesReader(_decode(ref, os.pread(fd, ref.length, ref.offset)))
            finally:
                os.close(fd)
        raise missing(oid)

    def flush(self, oid: str) -> None:
        """Make an object stored without a flush durable. A packed one already is: packs
        are flushed before their index rows commit."""
        try:
            self.objects.flush(ObjectId(oid))
        except FileNotFoundError:
            if not self.indexed(oid):
                raise missing(oid) from None

    def read_blob(self, ref: BlobRef) -> bytes:
        """A blob's bytes, decoded (ValueError or OSError when its pack is damaged)."""
        return _decode(ref, self.packs.get_range(ref.pack, ref.offset, ref.length))

    def indexed(self, oid: str) -> bool:
        """Packed, whole or as chunks (whatever a loose copy beside it says)."""
        return self._indexed_size(oid) is not None

    def _indexed_size(self, oid: str) -> int | None:
        ref = self.index.blob(oid)
        if ref is not None:
            return ref.raw_length
        listed = self.index.chunk_list(oid)
        return None if listed is None else listed[0]

    def has_size(self, oid: str, size: int) -> bool:
        """Stored with this many bytes (what a write that was never flushed may lack)."""
        return self.objects.has_size(oid, size) or self._indexed_size(oid) == size

    def has(self, sizes: Mapping[str, int]) -> set[str]:
        """Which objects are stored whole with these sizes: what lets an import trust its
        cache and skip a reread. A loose object, which reads take first, decides (it also
        must have no hard link it may have been written through); the others are looked
        up in the index together."""
        found: set[str] = set()
        elsewhere: list[str] = []
        for oid, size in sizes.items():
            loose = self.objects.plausible(oid, size)
            if loose is None:
                elsewhere.append(oid)
            elif loose:
                found.add(oid)
        indexed = self.index.indexed_sizes(elsewhere)
        found.update(oid for oid in elsewhere if indexed.get(oid) == sizes[oid])
        return found

    def batch(self) -> ImportBatch:
        return ImportBatch(self)

    def packed_whole(self, oids: Sequence[str]) -> dict[str, BlobRef]:
        """The blobs of those of ``oids`` kept only as one blob in a pack (no loose copy,
        which reads would take first), for :class:`PackCursor`."""
        refs = self.index.blobs(oids)
        return {oid: ref for oid, ref in refs.items() if not self.objects.exists(oid)}


class PackCursor:
    """Readers of packed blobs that share one descriptor per pack, for a caller going
    through many small objects in pack order (a checkout: 20,000 files spent a third of
    their time opening packs and looking up blobs one by one)."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self.pack: str | None = None
        self.fd = -1

    def __enter__(self) -> PackCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def reader(self, ref: BlobRef) -> ObjectReader:
        """The blob's bytes (FileNotFoundError when a repack moved its pack since the
        lookup: read it through :meth:`ContentStore.reader` then)."""
        if ref.pack != self.pack:
            self._release()
            self.fd = self.content.packs.open_fd(ref.pack)
            self.pack = ref.pack
        if ref.codec == codec.RAW:
            return SharedFileReader(self.fd, ref.raw_length, ref.offset)
        return BytesReader(_decode(ref, os.pread(self.fd, ref.length, ref.offset)))

    def _release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.pack = -1, None


class ChunkedReader(ObjectReader):
    """A chunked object: each read finds the chunks it covers (a bisect of their
    offsets) and reads only those, raw ones straight from their pack, compressed ones
    decoded once (the last few are kept: the mount reads a chunk in several requests).
    Shared by the mount's threads, so its descriptors and decoded chunks take a lock."""

    KEEP = 4  # decoded chunks kept

    def __init__(self, content: ContentStore, oid: str, chunks: list[tuple[str, int]]) -> None:
        self.content = content
        self.oid = oid
        self.chunks = chunks
        self.refs = self._lookup()
        self.starts = list(itertools.accumulate((n for _, n in chunks), initial=0))
        self.size = self.starts[-1]
        self._fds: dict[str, int] = {}
        self._decoded: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def _lookup(self) -> list[BlobRef]:
        refs = self.content.index.blobs(sorted({c for c, _ in self.chunks}))
        absent = [c for c, _ in self.chunks if c not in refs]
        if absent:
            raise StoreCorrupt(f"chunk {absent[0]} of object {self.oid} is missing; run ds fsck")
        return [refs[c] for c, _ in self.chunks]

    def readinto(self, view: memoryview, offset: int) -> int:
        try:
            return self._read(view, offset)
        except _Moved:  # a repack moved chunks since the lookup: look again, once
            self.refs = self._lookup()
        try:
            return self._read(view, offset)
        except _Moved as gone:
            raise StoreCorrupt(f"pack {gone} is missing; run ds fsck") from None

    def _read(self, view: memoryview, offset: int) -> int:
        done = 0
        i = bisect.bisect_right(self.starts, offset) - 1
        while done < len(view) and 0 <= i < len(self.refs):
            ref = self.refs[i]
            within = offset + done - self.starts[i]
            n = min(len(view) - done, ref.raw_length - within)
            if ref.codec == codec.RAW:
                n = os.preadv(self._fd(ref.pack), [view[done : done + n]], ref.offset + within)
                if n <= 0:
                    raise StoreCorrupt(f"chunk {ref.id} is cut short in pack {ref.pack}")
            else:
                view[done : done + n] = self._chunk(i)[within : within + n]
            done += n
            if within + n >= ref.raw_length:
                i += 1
        return done

    def _fd(self, pack: str) -> int:
        with self._lock:
            fd = self._fds.get(pack)
            if fd is None:
                try:
                    fd = self._fds[pack] = self.content.packs.open_fd(pack)
                except FileNotFoundError:
                    raise _Moved(pack) from None
            return fd

    def _chunk(self, i: int) -> bytes:
        with self._lock:
            data = self._decoded.get(i)
        if data is None:
            try:
                data = self.content.read_blob(self.refs[i])
            except FileNotFoundError:
                raise _Moved(self.refs[i].pack) from None
            except (OSError, ValueError) as exc:
                raise StoreCorrupt(f"chunk {self.refs[i].id} is damaged: {exc}") from exc
            with self._lock:
                if len(self._decoded) >= self.KEEP:
                    self._decoded.pop(next(iter(self._decoded)))
                self._decoded[i] = data
        return data

    def runs(self, start: int = 0, end: int | None = None) -> Iterator[Run]:
        """Raw chunks as runs in their packs; compressed ones, and chunks whose pack a
        repack moved, through readinto (which looks them up again)."""
        stop = self.stop_at(end)
        pos = start
        i = bisect.bisect_right(self.starts, start) - 1
        while pos < stop:
            ref = self.refs[i]
            within = pos - self.starts[i]
            n = min(stop - pos, ref.raw_length - within)
            try:
                fd = self._fd(ref.pack) if ref.codec == codec.RAW else None
            except _Moved:
                fd = None
            yield Run(fd, ref.offset + within, n) if fd is not None else Run(None, pos, n)
            pos += n
            i += 1

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._decoded.clear()


class _Moved(Exception):
    """A pack a reader looked up is gone: moved by a repack (or lost: the second
    lookup then finds the same pack, and the read fails as missing)."""


def _decode(ref: BlobRef, stored: bytes) -> bytes:
    if len(stored) != ref.length:
        raise ValueError(f"blob {ref.id} is cut short in pack {ref.pack}")
    return codec.decode(ref.codec, stored, ref.raw_length)


class ImportBatch:
    """The blobs one import writes: small files whole, large ones cut into chunks, all
    appended to packs (one open pack per thread). Nothing it writes is referenced until
    the caller commits :attr:`refs` and :attr:`chunked` with its staged rows;
    :meth:`discard` drops its packs after a failure (no index row can name them yet).
    Safe to use from several threads."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self.refs: list[BlobRef] = []
        self.repaired: set[str] = set()  # indexed blobs found corrupt: their rows are replaced
        self.packs: dict[str, int] = {}  # sealed pack -> its size
        self.chunked: dict[str, tuple[int, bytes]] = {}  # object -> (size, chunk list)
        self._lock = threading.Lock()
        self._writers: dict[int, PackWriter] = {}
        self._pending: dict[str, tuple[PackWriter, int] | BlobRef] = {}

    def import_file(self, src: str, loose: bool = True) -> tuple[ObjectId, int, bytes]:
        """Store one local file; (object id, size, its first bytes for categorizing).
        ``loose=False`` packs it even when a loose object holds the same bytes (packing
        that very object)."""
        with open(src, "rb") as f:
            if os.fstat(f.fileno()).st_size > PACKED_MAX:
                return self._chunks(f)
            data = f.read()
        return self.put(data, loose), len(data), data[:HEAD_BYTES]

    def put(self, data: bytes, loose: bool = True) -> ObjectId:
        oid = self.content.objects.hash_bytes(data)
        if not self._known(oid, data, loose):
            self._append(oid, data)
        return oid

    def _chunks(self, f: BinaryIO) -> tuple[ObjectId, int, bytes]:
        """Cut a large file into chunks, store the new ones, and note its chunk list. A
        chunk is only ever a blob in a pack: a loose object with the same bytes does not
        count, as a chunk list is read through the index alone.

        This thread reads, cuts and hashes the whole. In a file of AHEAD_MIN bytes or
        more, up to CHUNKS_AHEAD chunks at a time are hashed, verified against a stored
        copy or compressed on the chunk pool (zstd and reads let go of the GIL), and land
        in the pack here, in file order; in a smaller one the hand-offs cost more than
        they overlap (mixed workload), so each chunk is stored as it is cut."""
        whole = self.content.objects.hasher()
        chunks: list[tuple[str, int]] = []
        head = b""
        pool = shared_pool("chunks", CHUNK_WORKERS)
        pooled = os.fstat(f.fileno()).st_size >= AHEAD_MIN
        ahead: deque[Future[_Prepared]] = deque()
        try:
            for view in chunker.cut(f):
                whole.update(view)
                head = head or bytes(view[:HEAD_BYTES])
                if not pooled:
                    chunks.append(self._land(self._prepare(view)))
                    continue
                ahead.append(pool.submit(self._prepare, bytes(view)))
                if len(ahead) > CHUNKS_AHEAD:
                    chunks.append(self._land(ahead.popleft().result()))
            while ahead:
                chunks.append(self._land(ahead.popleft().result()))
        finally:  # after a failure, nothing still reads this batch's packs
            for pending in ahead:
                pending.cancel()
            wait(ahead)
        oid = ObjectId(whole.hexdigest())
        size = sum(n for _, n in chunks)
        encoded = chunker.encode(chunks)
        self._check_list(oid, size, encoded, f)
        with self._lock:
            self.chunked[oid] = (size, encoded)
        return oid, size, head

    def _prepare(self, data: bytes | memoryview) -> _Prepared:
        """A chunk's id, and its stored form unless the store already holds its bytes
        (verified) or this batch is writing it (checked when it lands)."""
        cid = self.content.objects.hash_bytes(data)
        pending = self._pending_same(cid, data)
        if pending or (pending is None and self._stored_same(cid, data)):
            return cid, data, None
        return cid, data, codec.encode(data)

    def _land(self, prepared: _Prepared) -> tuple[str, int]:
        cid, data, stored = prepared
        if stored is not None and not self._pending_same(cid, data):
            self._append(cid, data, stored)
        return cid, len(data)

    def _check_list(self, oid: ObjectId, size: int, encoded: bytes, f: BinaryIO) -> None:
        """An object of this id already chunked differently (other chunker parameters, a
        collision) is compared byte for byte before it is taken as the same."""
        listed = self.content.index.chunk_list(oid)
        if listed is None or listed[1] == encoded:
            return
        f.seek(0)
        with self.content.reader(oid) as stored:
            if stored.size == size and all(
                piece == f.read(len(piece)) for piece in iter_chunks(stored)
            ):
                return
        raise HashCollision(f"different content hashes to existing object {oid}; refusing to merge")

    def _append(self, oid: str, data: bytes | memoryview, stored: Encoded | None = None) -> None:
        """Add a blob to this thread's pack (``stored``: already encoded)."""
        tid = threading.get_ident()
        with self._lock:
            writer = self._writers.get(tid)
            if writer is None:
                writer = self._writers[tid] = PackWriter(
                    self.content.packs, self.content.objects.hasher
                )
        kind, body = codec.encode(data) if stored is None else stored
        position = writer.add_stored(oid, kind, body, len(data))
        with self._lock:
            self._pending.setdefault(oid, (writer, position))
            if writer.size >= PACK_TARGET:
                self._seal(tid)

    def finish(self) -> None:
        """Seal every open pack (unflushed: the caller syncs the batch once)."""
        with self._lock:
            for tid in list(self._writers):
                self._seal(tid)

    def discard(self) -> None:
        """Drop every pack this batch wrote: after a failure, before any commit."""
        with self._lock:
            for writer in self._writers.values():
                writer.discard()
            self._writers.clear()
            for pack in self.packs:
                self.content.packs.delete(pack)

    def _seal(self, tid: int) -> None:
        writer = self._writers.pop(tid)
        if writer.empty:
            writer.discard()
            return
        refs = writer.seal(durable=False)
        self.packs[refs[0].pack] = writer.size
        self.refs.extend(refs)
        for ref in refs:
            pending = self._pending.get(ref.id)
            if isinstance(pending, tuple) and pending[0] is writer:
                self._pending[ref.id] = ref

    def _known(self, oid: str, data: bytes | memoryview, loose: bool) -> bool:
        """True when the store (with ``loose``, a loose object too) or this batch already
        holds exactly these bytes. Verified before reuse (xxh3 is not cryptographic):
        different intact bytes under the id are a ``hash_collision``; a damaged stored
        copy is replaced by these bytes."""
        objects = self.content.objects
        if loose and objects.exists(oid):
            objects.put_bytes(bytes(data), durable=False)  # compares; repairs a damaged one
            return True
        pending = self._pending_same(oid, data)
        return pending if pending is not None else self._stored_same(oid, data)

    def _pending_same(self, oid: str, data: bytes | memoryview) -> bool | None:
        """Whether this batch's copy of ``oid`` holds these bytes; None: it has none."""
        with self._lock:
            pending = self._pending.get(oid)
            if pending is None:
                return None
            mine = (
                pending[0].read_back(pending[1])
                if isinstance(pending, tuple)
                else self.content.read_blob(pending)
            )
        return self._same(oid, data, mine)

    def _stored_same(self, oid: str, data: bytes | memoryview) -> bool:
        """Whether the index's copy of ``oid`` holds these bytes (False when there is
        none, or it is damaged: these bytes then repair it)."""
        ref = self.content.index.blob(oid)
        if ref is None:
            return False
        try:
            stored: bytes | None = self.content.read_blob(ref)
        except (OSError, ValueError):
            stored = None
        if stored is not None and self._same(oid, data, stored):
            return True
        log.warning("blob %s was damaged in pack %s; storing the intact bytes again", oid, ref.pack)
        self.repaired.add(oid)
        return False

    def _same(self, oid: str, data: bytes | memoryview, stored: bytes) -> bool:
        if stored == data:
            return True
        if self.content.objects.hash_bytes(stored) == oid:
            raise HashCollision(
                f"different content hashes to existing object {oid}; refusing to merge"
            )
        return False
