"""Garbage collection: mark from every snapshot's ranges and every staged row, then sweep.

It holds ``gc.lock`` exclusively, which writers hold shared from writing an object to
committing the row that references it, and it spares anything younger than the grace
period. Scratch files that outlive the lock (a mount's open file, a spooled upload
part) are locked by their writer while open, and gc leaves a locked temp alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datastore.errors import StoreCorrupt
from datastore.maintenance.packing import pack_loose
from datastore.maintenance.parts import Parts
from datastore.maintenance.references import live_objects
from datastore.maintenance.repack import repack
from datastore.storage import chunker
from datastore.storage.locks import flock
from datastore.storage.objects import TEMP_MIN_AGE


def collect(
    parts: Parts,
    grace_seconds: float,
    dry_run: bool,
    progress: Callable[[int, int], None],
    before_packing: Callable[[], None],
) -> dict[str, Any]:
    """Sweep what nothing references, then pack the live loose objects older than the
    grace period (``before_packing`` is called first when there are any: the store's
    format must allow packs)."""
    cutoff = time.time() - grace_seconds
    with flock(parts.locks / "gc.lock", exclusive=True):
        live_ranges = parts.catalog.all_range_ids()
        missing = [rid for rid in live_ranges if not parts.manifests.exists(rid)]
        if missing:
            raise StoreCorrupt(
                f"{len(missing)} referenced manifest range(s) are missing; run ds fsck first"
            )
        live = live_objects(parts)
        dead_ranges = [
            stored.key
            for stored in parts.manifests.backend.list()
            if stored.key not in live_ranges and stored.mtime < cutoff
        ]
        candidates: list[str] = list(parts.objects.iter_ids())
        dead_objects: list[tuple[str, int]] = []
        for i, oid in enumerate(candidates):
            path = parts.objects.path(oid)
            if oid not in live and _older(path, cutoff):
                dead_objects.append((oid, _size(path)))
            if i % 1024 == 0 or i == len(candidates) - 1:
                progress(i + 1, len(candidates))
        live_blobs, dead_lists = _with_chunks(parts, live)
        dead_packs, dead_blobs = _dead_packs(parts, live_blobs, cutoff)
        scratch = _stale_temps(parts, cutoff, dry_run) + parts.content.expire_cache(cutoff, dry_run)
        if not dry_run:
            for oid, _ in dead_objects:
                parts.objects.remove(oid)
            with parts.catalog.write() as db:  # index rows go before their packs
                parts.catalog.drop_chunked(db, dead_lists)
                parts.catalog.drop_packs(db, list(dead_packs))
            for pack in dead_packs:
                parts.content.packs.delete(pack)
            parts.catalog.forget_analyses(
                [oid for oid, _ in dead_objects] + dead_blobs + dead_lists
            )
            for rid in dead_ranges:
                parts.manifests.backend.delete(rid)
        repacking = repack(parts, live_blobs, cutoff, dry_run)
        loose = [
            oid for oid in candidates if oid in live and _older(parts.objects.path(oid), cutoff)
        ]
        if loose and not dry_run:
            before_packing()
        packing = pack_loose(parts, loose, dry_run)
    return {
        **packing,
        **repacking,
        "dry_run": dry_run,
        "objects_removed": len(dead_objects) + len(dead_blobs) + len(dead_lists),
        "ranges_removed": len(dead_ranges),
        "packs_removed": len(dead_packs),
        "temp_files_removed": scratch,
        "bytes_freed": sum(size for _, size in dead_objects) + sum(dead_packs.values()),
        "objects": [oid for oid, _ in dead_objects] + dead_blobs + dead_lists if dry_run else [],
        "ranges": list(dead_ranges) if dry_run else [],
    }


def _stale_temps(parts: Parts, cutoff: float, dry_run: bool) -> int:
    """Remove scratch files older than ``cutoff`` that no writer holds open (a temp its
    writer holds is in flight, however old); how many."""
    temp_cutoff = min(cutoff, time.time() - TEMP_MIN_AGE)
    removed = sum(
        1
        for p in parts.objects.iter_temp()
        if _older(p, temp_cutoff) and parts.objects.remove_idle_temp(p, dry_run)
    )
    for backend in (parts.content.packs, parts.manifests.backend):
        removed += sum(
            1
            for t in backend.temps()
            if t.mtime < temp_cutoff and backend.remove_idle_temp(t.key, dry_run)
        )
    return removed


def _with_chunks(parts: Parts, live: set[str]) -> tuple[set[str], list[str]]:
    """The live blobs (the live objects and every chunk of the live chunked ones), and
    the chunked objects nothing references (their lists go)."""
    blobs = set(live)
    dead: list[str] = []
    for oid, _, chunks in parts.catalog.chunked_objects():
        if oid in live:
            blobs.update(c for c, _ in chunker.decode(chunks))
        else:
            dead.append(oid)
    return blobs, dead


def _dead_packs(parts: Parts, live: set[str], cutoff: float) -> tuple[dict[str, int], list[str]]:
    """Packs (-> size) that hold no live blob, and the blobs that go with them: indexed
    packs made before ``cutoff``, and pack files no index row names (a writer died
    between storing the pack and its commit) older than it."""
    indexed = parts.catalog.packs()
    holds_live: set[str] = set()
    blobs: dict[str, list[str]] = {}
    for ref in parts.catalog.blob_refs():
        if ref.id in live:
            holds_live.add(ref.pack)
        else:
            blobs.setdefault(ref.pack, []).append(ref.id)
    dead = {
        pack: size
        for pack, (size, created) in indexed.items()
        if pack not in holds_live and created < cutoff
    }
    for stored in parts.content.packs.list():
        if stored.key not in indexed and stored.mtime < cutoff:
            dead[stored.key] = stored.size
    return dead, [b for pack in dead for b in blobs.get(pack, [])]


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
