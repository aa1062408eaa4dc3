"""Space accounting (``ds du``): logical, physical and exclusive bytes.

logical: the sizes of files as versions list them (a file in three snapshots counts
three times); physical: the distinct objects a dataset or snapshot references;
exclusive: the part of physical no other dataset (or snapshot) references, i.e. what
deleting it would let gc free.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from datastore.maintenance.references import range_files

if TYPE_CHECKING:
    from datastore.store import Store


def disk_usage(store: Store, only: str | None) -> list[dict[str, Any]]:
    sizes: dict[str, int] = {}
    range_objects: dict[str, set[str]] = {}

    def objects_of(rid: str) -> set[str]:
        if rid not in range_objects:
            files = range_files(store, rid)
            objs = files["object"].to_pylist()
            sizes.update(zip(objs, files["size"].to_pylist(), strict=True))
            range_objects[rid] = set(objs)
        return range_objects[rid]

    per_snapshot: dict[str, set[str]] = {}
    per_dataset: dict[str, set[str]] = {}
    snapshots_of: dict[str, list[Any]] = {}
    for dataset, snap in store.catalog.all_snapshots():
        objs: set[str] = set()
        for rng in store.catalog.ranges(snap.id):
            objs |= objects_of(rng.id)
        per_snapshot[snap.id] = objs
        per_dataset.setdefault(dataset, set()).update(objs)
        snapshots_of.setdefault(dataset, []).append(snap)
    dataset_refs = Counter(o for objs in per_dataset.values() for o in objs)
    snapshot_refs = Counter(o for objs in per_snapshot.values() for o in objs)
    out = []
    for row in store.catalog.datasets():
        if only is not None and row.name != only:
            continue
        objs = per_dataset.get(row.name, set())
        snaps = snapshots_of.get(row.name, [])
        out.append(
            {
                "dataset": row.name,
                "logical_bytes": sum(s.size_bytes for s in snaps),
                "physical_bytes": sum(sizes[o] for o in objs),
                "exclusive_bytes": sum(sizes[o] for o in objs if dataset_refs[o] == 1),
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
