"""Space accounting (``ds du``): logical, physical and exclusive bytes.

logical: the sizes of files as versions list them (a file in three snapshots counts
three times; a head counts when it differs from its latest snapshot, as in
``/v1/stats``); physical: the distinct objects a dataset, snapshot or head references (a
chunked object as its chunks, so shared chunks count once);
exclusive: the part of physical no other dataset (or snapshot, or head) references,
i.e. what deleting it would let gc free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from datastore.maintenance.parts import Parts
from datastore.maintenance.references import manifest_pieces, snapshot_pieces
from datastore.storage import chunker
from datastore.storage.arrow import pa
from datastore.storage.manifest import Manifest

#: a dataset's head as its manifest and whether it differs from its base; the Store
#: builds heads, so usage asks for them instead of importing it
HeadOf = Callable[[str], tuple[Manifest, bool]]


def disk_usage(store: Parts, head_of: HeadOf, only: str | None) -> list[dict[str, Any]]:
    sizes: dict[str, int] = {}
    range_objects: dict[str, set[str]] = {}

    def objects_of(rid: str | None, files: Callable[[], pa.Table]) -> set[str]:
        if rid is not None and rid in range_objects:
            return range_objects[rid]
        table = files()
        objs = table["object"].to_pylist()
        sizes.update(zip(objs, table["size"].to_pylist(), strict=True))
        if rid is not None:
            range_objects[rid] = set(objs)
        return set(objs)

    per_snapshot: dict[str, set[str]] = {}
    per_dataset: dict[str, set[str]] = {}
    snapshots_of: dict[str, list[Any]] = {}
    for dataset, snap in store.catalog.all_snapshots():
        per_snapshot[snap.id] = set()
        snapshots_of.setdefault(dataset, []).append(snap)
    for (_, snap), rid, files in snapshot_pieces(store):
        per_snapshot[snap.id] |= objects_of(rid, files)
    for dataset, snaps in snapshots_of.items():
        per_dataset[dataset] = set().union(*(per_snapshot[s.id] for s in snaps))
    heads: dict[str, tuple[int, bool, set[str]]] = {}
    for row in store.catalog.datasets():
        head, dirty = head_of(row.name)
        objs: set[str] = set()
        for rid, files in manifest_pieces(store.manifests, head):
            objs |= objects_of(rid, files)
        heads[row.name] = (head.bytes, dirty, objs)
        per_dataset.setdefault(row.name, set()).update(heads[row.name][2])
        per_snapshot[f"head:{row.name}"] = heads[row.name][2]  # a head holds objects too
    # a chunked object counts as its chunks, so a chunk two files share is counted once
    # and is exclusive to neither
    units = _Units(store, sizes)
    per_dataset = {k: units.of(v) for k, v in per_dataset.items()}
    per_snapshot = {k: units.of(v) for k, v in per_snapshot.items()}
    heads = {k: (b, d, units.of(objs)) for k, (b, d, objs) in heads.items()}
    dataset_refs = Counter(o for objs in per_dataset.values() for o in objs)
    snapshot_refs = Counter(o for objs in per_snapshot.values() for o in objs)
    out = []
    for row in store.catalog.datasets():
        if only is not None and row.name != only:
            continue
        objs = per_dataset.get(row.name, set())
        snaps = snapshots_of.get(row.name, [])
        head_bytes, head_dirty, head_objs = heads[row.name]
        counted = head_dirty or not snaps
        out.append(
            {
                "dataset": row.name,
                "logical_bytes": sum(s.size_bytes for s in snaps) + (head_bytes if counted else 0),
                "physical_bytes": sum(sizes[o] for o in objs),
                "exclusive_bytes": sum(sizes[o] for o in objs if dataset_refs[o] == 1),
                "head": {
                    "dirty": head_dirty,
                    "logical_bytes": head_bytes,
                    "physical_bytes": sum(sizes[o] for o in head_objs),
                    "exclusive_bytes": sum(sizes[o] for o in head_objs if snapshot_refs[o] == 1),
                },
                "snapshots": [
                    {
                        "id": s.id,
                        "logical_bytes": s.size_bytes,
                        "physical_bytes": sum(sizes[o] for o in per_snapshot[s.id]),
                        "exclusive_bytes": sum(
                            sizes[o] for o in per_snapshot[s.id] if snapshot_refs[o] == 1
                        ),
                    }
                    for s in snaps
                ],
            }
        )
    return out


class _Units:
    """What storage is counted in: a whole object, or each chunk of a chunked one (its
    raw bytes either way; compression is not counted)."""

    def __init__(self, store: Parts, sizes: dict[str, int]) -> None:
        self.chunks = {
            oid: chunker.decode(listed) for oid, _, listed in store.catalog.chunked_objects()
        }
        for listed in self.chunks.values():
            sizes.update(listed)

    def of(self, objects: set[str]) -> set[str]:
        out: set[str] = set()
        for oid in objects:
            listed = self.chunks.get(oid)
            if listed is None:
                out.add(oid)
            else:
                out.update(c for c, _ in listed)
        return out
