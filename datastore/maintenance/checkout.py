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

import errno
import fcntl
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from datastore.errors import InvalidRequest
from datastore.storage.manifest import KIND_DIR, AnyRange

if TYPE_CHECKING:
    from datastore.store import Store

FICLONE = 0x40049409
_FALLBACK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.EPERM, errno.EMLINK}


def materialize(
    store: Store,
    ranges: Sequence[AnyRange],
    dest: Path,
    progress: Callable[[int, int], None],
    link: bool = False,
) -> int:
    """Write every file of ``ranges`` under ``dest`` (absent or empty); returns the file count."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidRequest(f"{dest} must be absent or an empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    dirs: list[tuple[Path, int]] = []
    files: list[tuple[Path, str, int]] = []
    for table in store.manifests.iter_tables(ranges):
        for d, n, kind, obj, mode in zip(
            *(table[c].to_pylist() for c in ("dir", "name", "kind", "object", "mode")), strict=True
        ):
            target = dest / d / n if d else dest / n
            if kind == KIND_DIR:
                dirs.append((target, mode))
            else:
                files.append((target, obj, mode))
    for target, _ in sorted(dirs):
        target.mkdir(parents=True, exist_ok=True)
    placer = _Placer(link)
    for i, (target, obj, mode) in enumerate(files):
        placer.place(store.object_path(obj), target, mode)
        if i % 256 == 0 or i == len(files) - 1:
            progress(i + 1, len(files))
    for target, mode in dirs:
        os.chmod(target, mode | 0o700)
    return len(files)


class _Placer:
    """Places one file at a time with the cheapest safe method the filesystem allows."""

    def __init__(self, link: bool) -> None:
        self.method = "hardlink" if link else "reflink"

    def place(self, src: Path, dst: Path, mode: int) -> None:
        if self.method == "reflink":
            try:
                _reflink(src, dst)
                os.chmod(dst, mode)
                return
            except OSError as exc:
                if exc.errno not in _FALLBACK:
                    raise
                dst.unlink(missing_ok=True)
                self.method = "copy"
        if self.method == "hardlink":
            try:
                os.link(src, dst)
                return
            except OSError as exc:
                if exc.errno not in _FALLBACK:
                    raise
                self.method = "copy"
        shutil.copyfile(src, dst)
        os.chmod(dst, mode)


def _reflink(src: Path, dst: Path) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
