"""What references what: the one walk gc, fsck and du share over manifests and staged rows.

A manifest is walked piece by piece (:meth:`ManifestStore.layout`): a base range no delta
row falls in is the range as written, named by its id so a caller can count it once
however many versions list it; a range a delta changes is laid over first, so an object
only a superseded base entry names is not kept alive by it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from functools import partial

from datastore.catalog.core import SnapshotRow
from datastore.maintenance.parts import Parts
from datastore.storage.arrow import pa, pc
from datastore.storage.manifest import (
    KIND_FILE,
    AnyRange,
    Manifest,
    ManifestStore,
    RangeId,
    RangeRef,
    as_written,
)

#: (dataset name, snapshot) a piece belongs to, its range id when it is a range as
#: written (None when computed), and its files (dir, name, object, size) on demand
Piece = tuple[tuple[str, SnapshotRow], str | None, Callable[[], pa.Table]]


def files_of(table: pa.Table) -> pa.Table:
    """The files (dir, name, object, size) among entries (a delta's: those it leaves)."""
    keep = pc.equal(table["kind"], KIND_FILE)
    if "deleted" in table.schema.names:
        keep = pc.and_(keep, pc.invert(table["deleted"]))
    return table.filter(keep).select(["dir", "name", "object", "size"])


def range_files(manifests: ManifestStore, rid: str) -> pa.Table:
    """The files one range lists as written (a delta range: the files it adds)."""
    return files_of(manifests.read(RangeRef(RangeId(rid), ("", ""), 0, 0, 0)))


def manifest_pieces(
    manifests: ManifestStore, manifest: Manifest
) -> Iterator[tuple[str | None, Callable[[], pa.Table]]]:
    """A manifest's files piece by piece: (range id, files) for a base range as written,
    (None, files) for a range with the delta's rows laid on (or a delta on no base)."""
    for rng, changes in manifests.layout(manifest):
        unchanged = as_written(rng, changes)
        if unchanged is not None:
            yield unchanged.id, partial(range_files, manifests, unchanged.id)
        else:
            yield None, partial(_piece_files, manifests, rng, changes)


def _piece_files(manifests: ManifestStore, rng: AnyRange | None, changes: pa.Table) -> pa.Table:
    return files_of(manifests.piece(rng, changes))


def snapshot_pieces(parts: Parts, damaged: Collection[str] = ()) -> Iterator[Piece]:
    """Every snapshot's files, piece by piece. A snapshot listing a ``damaged`` range is
    walked as its other ranges are written (all a damaged manifest can still tell)."""
    for dataset, snap in parts.catalog.all_snapshots():
        manifest = parts.catalog.manifest(snap.id)
        owner = (dataset, snap)
        ids = [parts.manifests.range_id(r) for r in manifest.ranges]
        if any(rid in damaged for rid in ids):
            for rid in ids:
                if rid not in damaged:
                    yield owner, rid, partial(range_files, parts.manifests, rid)
            continue
        for piece, files in manifest_pieces(parts.manifests, manifest):
            yield owner, piece, files


def live_objects(parts: Parts, damaged: Collection[str] = ()) -> set[str]:
    """Every object a snapshot or a head's staged row references."""
    live = set(parts.catalog.staged_objects())
    seen: set[str] = set()
    for _, rid, files in snapshot_pieces(parts, damaged):
        if rid is not None:
            if rid in seen:
                continue
            seen.add(rid)
        live.update(files()["object"].to_pylist())
    return live
