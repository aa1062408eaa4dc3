"""File locks shared by every process on one store.

``gc.lock``: writers hold it shared from the moment they write or deduplicate an object
until the catalog row that references it commits; gc holds it exclusive while it marks
and sweeps, so it never deletes an object a writer is about to reference.
``dataset-<id>.lock``: serializes snapshot commits of one dataset.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flock(path: Path, *, exclusive: bool) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextmanager
def unheld(path: Path | str, flags: int = os.O_RDONLY) -> Iterator[bool]:
    """Take ``path``'s lock exclusively without waiting: yields True when nobody held it
    (the caller may then act on the file, e.g. remove it), False when somebody does or
    the file cannot be opened. A holder that died dropped its lock with its descriptor."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
