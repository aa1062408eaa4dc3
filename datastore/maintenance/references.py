"""What references what: the one walk gc, fsck and du share over ranges and staged rows."""

from __future__ import annotations

from collections.abc import Iterator

from datastore.maintenance.parts import Parts
from datastore.storage.arrow import pa, pc
from datastore.storage.manifest import KIND_FILE, ManifestStore, RangeId, RangeRef


def range_files(manifests: ManifestStore, rid: str) -> pa.Table:
    """The files (dir, name, object, size) one range lists."""
    table = manifests.read(RangeRef(RangeId(rid), ("", ""), 0, 0, 0))
    return table.filter(pc.equal(table["kind"], KIND_FILE)).select(
        ["dir", "name", "object", "size"]
    )


def iter_range_objects(
    manifests: ManifestStore, range_ids: set[str]
) -> Iterator[tuple[str, set[str]]]:
    for rid in sorted(range_ids):
        yield rid, set(range_files(manifests, rid)["object"].to_pylist())


def live_objects(parts: Parts, range_ids: set[str]) -> set[str]:
    """Every object a snapshot or a head's staged row references."""
    live = set(parts.catalog.staged_objects())
    for _, objs in iter_range_objects(parts.manifests, range_ids):
        live |= objs
    return live
