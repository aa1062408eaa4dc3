"""Materializing a version as plain files: reflink where the filesystem has it, else copy.

Nothing written to a checkout may change the store (SPEC promise 1), and an object's
0444 mode does not stop root: a hard link to an object is a door into the store. So
links are opt-in (``link=True``, DVC's ``hardlink`` cache type), and the caller warns that
writing through them damages every snapshot holding that content. A reflink shares
blocks copy-on-write, so it is as safe as a copy.

The strategy is probed once per checkout on the first file, because all objects sit on
one filesystem: what works for one works for all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

from datastore.errors import InvalidRequest
from datastore.maintenance.parts import Parts
from datastore.storage.content import ContentStore, PackCursor
from datastore.storage.manifest import KIND_DIR, KIND_LINK, Manifest
from datastore.storage.packs import BlobRef
from datastore.storage.reader import ObjectReader, copy_to_fd

FICLONE = 0x40049409
_FALLBACK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.EPERM, errno.EMLINK}


def materialize(
    parts: Parts,
    manifest: Manifest,
    dest: Path,
    progress: Callable[[int, int], None],
    link: bool = False,
) -> int:
    """Write every file of ``manifest`` under ``dest`` (absent or empty); returns the file count.

    Symbolic links are made last, after every file and directory, so nothing this writes
    can pass through a link, wherever its target points."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidRequest(f"{dest} must be absent or an empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    root = str(dest)
    dirs: list[tuple[str, int]] = []
    files: list[tuple[str, str, int, int]] = []
    links: list[tuple[str, str]] = []
    for table in parts.manifests.iter_tables(manifest):
        columns = ("dir", "name", "kind", "object", "mode", "size", "meta")
        for d, n, kind, obj, mode, size, meta in zip(
            *(table[c].to_pylist() for c in columns), strict=True
        ):
            target = f"{root}/{d}/{n}" if d else f"{root}/{n}"
            if kind == KIND_DIR:
                dirs.append((target, mode))
            elif kind == KIND_LINK:
                links.append((target, json.loads(meta)["target"]))
            else:
                files.append((target, obj, mode, size))
    for target, _ in sorted(dirs):
        os.makedirs(target, exist_ok=True)
    placer = _Placer(link)
    packed = parts.content.packed_whole(sorted({obj for _, obj, _, _ in files}))
    # packed files in pack order, through one descriptor per pack; then the rest
    files.sort(
        key=lambda f: (0, packed[f[1]].pack, packed[f[1]].offset) if f[1] in packed else (1, "", 0)
    )
    with PackCursor(parts.content) as cursor:
        for i, (target, obj, mode, size) in enumerate(files):
            reader = _packed_reader(cursor, packed.get(obj))
            if reader is None:
                placer.place(parts.content, obj, target, mode, size)
            else:
                _copy_reader(reader, target, mode, size)
            if i % 256 == 0 or i == len(files) - 1:
                progress(i + 1, len(files))
    for path, target in links:
        os.symlink(target, path)
    for target, mode in dirs:
        os.chmod(target, mode | 0o700)
    return len(files)


class _Placer:
    """Places one file at a time with the cheapest safe method the filesystem allows."""

    def __init__(self, link: bool) -> None:
        self.method = "hardlink" if link else "reflink"

    def place(self, content: ContentStore, oid: str, dst: str, mode: int, size: int) -> None:
        """A loose object is reflinked, linked or copied whole; a packed one is copied out
        of its pack (decoded first if it is compressed)."""
        src = content.objects.place(oid)
        try:
            self._place_file(src, dst, mode, size)
        except FileNotFoundError:
            if os.path.exists(src) or not os.path.isdir(os.path.dirname(dst)):
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dst)
            _copy_reader(content.reader(oid), dst, mode, size)

    def _place_file(self, src: str, dst: str, mode: int, size: int) -> None:
        if self.method == "reflink":
            try:
                _reflink(src, dst)
                os.chmod(dst, mode)
                return
            except OSError as exc:
                if exc.errno not in _FALLBACK:
                    raise
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dst)
                self.method = "copy"
        if self.method == "hardlink":
            try:
                os.link(src, dst)
                return
            except OSError as exc:
                if exc.errno not in _FALLBACK:
                    raise
                self.method = "copy"
        _copy(src, dst, mode, size)


def _packed_reader(cursor: PackCursor, ref: BlobRef | None) -> ObjectReader | None:
    """The blob through the cursor's pack; None when it is not packed whole, or a repack
    moved it since the lookup (the caller then reads it the ordinary way)."""
    if ref is None:
        return None
    try:
        return cursor.reader(ref)
    except FileNotFoundError:
        return None


def _copy_reader(reader: ObjectReader, dst: str, mode: int, size: int) -> None:
    with reader:
        if reader.size != size:
            raise OSError(
                errno.EIO, f"{dst}: the stored object holds {reader.size} bytes, not {size}"
            )
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_to_fd(reader, fout)
            os.fchmod(fout, mode)
        finally:
            os.close(fout)


def _reflink(src: str, dst: str) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        fcntl.ioctl(d.fileno(), FICLONE, s.fileno())


def _copy(src: str, dst: str, mode: int, size: int) -> None:
    """Copy ``size`` bytes in the kernel (sendfile), with none of shutil's per-file stats:
    20,000 small files spent a fifth of their checkout in them."""
    fin = os.open(src, os.O_RDONLY)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            offset = 0
            while offset < size:
                sent = os.sendfile(fout, fin, offset, size - offset)
                if sent == 0:
                    raise OSError(errno.EIO, f"object {src} is shorter than its entry")
                offset += sent
            os.fchmod(fout, mode)
        finally:
            os.close(fout)
    finally:
        os.close(fin)
