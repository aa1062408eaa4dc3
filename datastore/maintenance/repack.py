"""Repacking (restic's prune): a pack whose live bytes fell below half, or a small pack
(an import of a few files, the inbox's one file at a time), has its live blobs copied as
they are (still encoded) into new packs, and goes.

It runs inside gc, under its exclusive lock, so no writer deduplicates against a blob
while it moves. Ordering: the new packs are flushed, one transaction points the moved
blobs' index rows at them and forgets the old packs, then the old pack files are
removed. A reader holding a descriptor on an old pack keeps reading it; one that looked a
blob up before the move and finds its pack gone looks again. A live blob that does not
hash to its id is not copied (its damage would be laundered into a fresh pack): its pack
stays for fsck to report.
"""

from __future__ import annotations

import logging
from typing import Any

from datastore.maintenance.parts import Parts
from datastore.storage.packs import PACK_TARGET, BlobRef, PackWriter, intact

LIVE_FRACTION = 0.5
SMALL_PACK = PACK_TARGET // 4
log = logging.getLogger("ds.repack")


def repack(parts: Parts, live: set[str], cutoff: float, dry_run: bool) -> dict[str, Any]:
    """Repack what pays; (packs repacked, bytes the old packs held beyond their live
    blobs)."""
    chosen = _candidates(parts, live, cutoff)
    reclaimed = sum(size - sum(r.length for r in refs) for _, size, refs in chosen)
    if dry_run or not chosen:
        return {"packs_repacked": len(chosen), "bytes_reclaimed": reclaimed}
    done = _copy(parts, chosen)
    return {
        "packs_repacked": len(done),
        "bytes_reclaimed": sum(
            size - sum(r.length for r in refs) for pack, size, refs in chosen if pack in done
        ),
    }


def _candidates(
    parts: Parts, live: set[str], cutoff: float
) -> list[tuple[str, int, list[BlobRef]]]:
    by_pack: dict[str, list[BlobRef]] = {}
    for ref in parts.catalog.blob_refs():
        if ref.id in live:
            by_pack.setdefault(ref.pack, []).append(ref)
    chosen = []
    for pack, (size, created) in parts.catalog.packs().items():
        refs = by_pack.get(pack)
        if not refs or created >= cutoff:  # a pack with nothing live goes whole, elsewhere
            continue
        if sum(r.length for r in refs) < size * LIVE_FRACTION or size < SMALL_PACK:
            chosen.append((pack, size, refs))
    if len(chosen) == 1 and chosen[0][1] < SMALL_PACK:
        return []  # one small pack alone has nothing to be merged with
    return chosen


def _copy(parts: Parts, chosen: list[tuple[str, int, list[BlobRef]]]) -> set[str]:
    """Copy the live blobs of ``chosen`` into new packs; the old packs that went."""
    backend = parts.content.packs
    hasher = parts.objects.hasher
    writer = PackWriter(backend, hasher)
    new: list[BlobRef] = []
    sizes: dict[str, int] = {}
    emptied: list[str] = []
    try:
        for pack, _, refs in chosen:
            try:
                data = backend.get(pack)
            except FileNotFoundError:
                continue
            blobs = [(r, data[r.offset : r.offset + r.length]) for r in refs]
            if not all(intact(r, stored, parts.objects.hash_bytes) for r, stored in blobs):
                log.warning("pack %s holds a damaged live blob; left for fsck", pack)
                continue
            for r, stored in blobs:
                writer.add_stored(r.id, r.codec, stored, r.raw_length)
            emptied.append(pack)
            if writer.size >= PACK_TARGET:
                new += _seal(writer, sizes)
                writer = PackWriter(backend, hasher)
        new += _seal(writer, sizes)
    except BaseException:
        writer.discard()
        for pack in sizes:
            backend.delete(pack)
        raise
    backend.sync()
    # a pack rewritten with the same blobs at the same places is the same pack (its name
    # is its bytes): it stays, and its rows with it
    emptied = [pack for pack in emptied if pack not in sizes]
    with parts.catalog.write() as db:
        parts.catalog.add_blobs(db, sizes, new, replace={r.id for r in new})
        parts.catalog.drop_packs(db, emptied)
    for pack in emptied:
        backend.delete(pack)
    return set(emptied)


def _seal(writer: PackWriter, sizes: dict[str, int]) -> list[BlobRef]:
    if writer.empty:
        writer.discard()
        return []
    refs = writer.seal(durable=False)
    sizes[refs[0].pack] = writer.size
    return refs
