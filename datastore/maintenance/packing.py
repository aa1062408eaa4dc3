"""Packing loose objects: what the mount's closes, uploads and `ds://` writers (and every
object of a format 1-2 store) keep as one file per object moves into packs, chunked above
the pack limit, so a store ends up with few files whatever wrote it.

gc packs the live loose objects older than its grace period, ``ds upgrade`` all of them;
both under gc's exclusive lock, so no writer deduplicates against a loose object while it
goes. Ordering: the packs are flushed, then their index rows commit, then the loose files
are removed; a crash in between leaves a loose copy beside a packed one (reads take the
loose one), which the next pass removes without writing anything again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from datastore.maintenance.parts import Parts

ROUND_BYTES = 256 << 20  # loose bytes per pass: one commit, and removal, per round
log = logging.getLogger("ds.packing")


def pack_loose(
    parts: Parts,
    candidates: Iterable[str],
    dry_run: bool,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Move ``candidates`` (loose objects) into packs; how many and how many bytes."""
    todo = [(oid, parts.objects.size(oid)) for oid in candidates]
    total = sum(size for _, size in todo)
    if dry_run:
        return {"objects_packed": len(todo), "bytes_packed": total}
    packed = 0
    done_bytes = 0
    for group in _rounds(todo):
        packed += _pack_round(parts, [oid for oid, _ in group])
        done_bytes += sum(size for _, size in group)
        progress(done_bytes, total)
    return {"objects_packed": packed, "bytes_packed": total}


def _rounds(todo: list[tuple[str, int]]) -> Iterable[list[tuple[str, int]]]:
    group: list[tuple[str, int]] = []
    size = 0
    for item in todo:
        group.append(item)
        size += item[1]
        if size >= ROUND_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _pack_round(parts: Parts, oids: list[str]) -> int:
    content = parts.content
    batch = content.batch()
    moved: list[str] = []
    try:
        for oid in oids:
            if content.indexed(oid):  # packed by an earlier pass cut short, or imported too
                moved.append(oid)
                continue
            try:
                got, _, _ = batch.import_file(parts.objects.place(oid), loose=False)
            except FileNotFoundError:
                continue
            if got != oid:  # left for fsck to report, and for a put of the intact bytes
                log.warning("loose object %s does not hash to its id; not packed", oid)
                continue
            moved.append(oid)
        batch.finish()
        content.packs.sync()
        with parts.catalog.write() as db:
            parts.catalog.add_blobs(db, batch.packs, batch.refs, batch.repaired, batch.chunked)
    except BaseException:
        batch.discard()
        raise
    for oid in moved:
        parts.objects.remove(oid)
    return len(moved)
