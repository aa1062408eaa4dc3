"""What references what: the one walk gc, fsck and du share over ranges and staged rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from datastore.storage.manifest import KIND_FILE, RangeId, RangeRef

if TYPE_CHECKING:
    from datastore.store import Store


def range_files(store: Store, rid: str) -> pa.Table:
    """The files (dir, name, object, size) one range lists."""
    table = store.manifests.read(RangeRef(RangeId(rid), ("", ""), 0, 0, 0))
    return table.filter(pc.equal(table["kind"], KIND_FILE)).select(
        ["dir", "name", "object", "size"]
    )


def iter_range_objects(store: Store, range_ids: set[str]) -> Iterator[tuple[str, set[str]]]:
    for rid in sorted(range_ids):
        yield rid, set(range_files(store, rid)["object"].to_pylist())


def live_objects(store: Store, range_ids: set[str]) -> set[str]:
    """Every object a snapshot or a head's staged row references."""
    live = set(store.catalog.staged_objects())
    for _, objs in iter_range_objects(store, range_ids):
        live |= objs
    return live
