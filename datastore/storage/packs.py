"""Packs: many blobs in one write-once file, followed by a header that lists them.

Layout (docs/design.md, "Format 3"): blobs back to back, then the header
(``ds-pack/1\\n`` and one record per blob), then the header's length and the magic.
A pack's name is the xxh3-128 of all its bytes. The catalog's index says where each
blob is; the header lets fsck check the index and lets a lost index be rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from datastore.storage import codec
from datastore.storage.backend import Backend
from datastore.storage.objects import HasherFactory, start_writeback

MAGIC = b"DSPACK1\n"
HEADER_TAG = b"ds-pack/1\n"
RECORD = struct.Struct("<16sBIIQ4x")  # id, codec, stored length, raw length, offset
TRAILER = struct.Struct("<I8s")  # header length, magic
PACK_TARGET = 16 << 20  # restic's default (docs/design.md, "Format 3": why not measured)
WRITEBACK_STEP = 4 << 20


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where one blob is: the index row the catalog keeps for it."""

    id: str
    pack: str
    offset: int
    length: int
    raw_length: int
    codec: int


class PackWriter:
    """Blobs appended to one temp file; :meth:`seal` writes the header and stores it.

    One thread writes a pack; blobs go straight to the file (no buffer of ours), so a
    blob can be read back before the pack is sealed (dedup verification in a batch).
    """

    def __init__(self, backend: Backend, hasher: HasherFactory) -> None:
        self.backend = backend
        self.temp, self.fd = backend.new_temp("pack")
        self._hash = hasher()
        self._records: list[tuple[str, int, int, int, int]] = []
        self.size = 0
        self._written_back = 0

    def add_stored(self, blob_id: str, kind: int, stored: bytes | memoryview, raw: int) -> int:
        """Append one blob as encoded (:func:`codec.encode`; a repack copies blobs as they
        are); its position in this pack."""
        self._write(stored)
        self._records.append((blob_id, kind, len(stored), raw, self.size))
        self.size += len(stored)
        return len(self._records) - 1

    @property
    def empty(self) -> bool:
        return not self._records

    def read_back(self, position: int) -> bytes:
        blob_id, kind, length, raw, offset = self._records[position]
        return codec.decode(kind, os.pread(self.fd, length, offset), raw)

    def seal(self, durable: bool) -> list[BlobRef]:
        """Write the header, name the pack by its bytes and store it; its blobs' refs
        (``size`` is then the whole pack's)."""
        header = HEADER_TAG + b"".join(
            RECORD.pack(bytes.fromhex(b), kind, length, raw, offset)
            for b, kind, length, raw, offset in self._records
        )
        self._write(header)
        self.size += len(header)
        self._write(TRAILER.pack(len(header), MAGIC))
        self.size += TRAILER.size
        pack = self._hash.hexdigest()
        os.close(self.fd)
        self.fd = -1
        self.backend.put_if_absent(self.temp, pack, durable)
        return [BlobRef(b, pack, off, ln, raw, kind) for b, kind, ln, raw, off in self._records]

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)

    def _write(self, data: bytes | memoryview) -> None:
        """Append at ``size`` (the caller moves it on). Every WRITEBACK_STEP the pack's
        pages start going to disk, so the batch's closing syncfs has little left."""
        self._hash.update(data)
        view = memoryview(data)
        pos = self.size
        while view:
            n = os.pwrite(self.fd, view, pos)
            view, pos = view[n:], pos + n
        if pos - self._written_back >= WRITEBACK_STEP:
            start_writeback(self.fd, self._written_back, pos - self._written_back)
            self._written_back = pos


def intact(ref: BlobRef, stored: bytes, hash_bytes: Callable[[bytes], str]) -> bool:
    """A blob's stored bytes decode and hash to its id (fsck, and repack before copying)."""
    try:
        raw = codec.decode(ref.codec, stored, ref.raw_length)
    except ValueError:
        return False
    return hash_bytes(raw) == ref.id


def read_header(data: bytes) -> list[tuple[str, int, int, int, int]]:
    """The (id, codec, length, raw length, offset) records of a whole pack's bytes;
    ValueError when the trailer or header is damaged."""
    if len(data) < TRAILER.size or data[-len(MAGIC) :] != MAGIC:
        raise ValueError("no pack trailer")
    (hlen, _) = TRAILER.unpack(data[-TRAILER.size :])
    end = len(data) - TRAILER.size
    header = data[end - hlen : end]
    if hlen < len(HEADER_TAG) or not header.startswith(HEADER_TAG):
        raise ValueError("damaged pack header")
    body = header[len(HEADER_TAG) :]
    if len(body) % RECORD.size:
        raise ValueError("damaged pack header")
    out = []
    for i in range(0, len(body), RECORD.size):
        raw_id, kind, length, raw, offset = RECORD.unpack_from(body, i)
        if offset + length > end - hlen:
            raise ValueError("a header record points past the blobs")
        out.append((raw_id.hex(), kind, length, raw, offset))
    return out
