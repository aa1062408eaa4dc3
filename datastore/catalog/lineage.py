"""Lineage from the catalog alone: a version's parent chain, its upstream sources and the
datasets built from it. A snapshot that ``ds forget`` dropped still appears, marked
``forgotten``, so a chain or a source that names one says so instead of failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datastore.catalog.core import Catalog, DatasetRow


def lineage(
    catalog: Catalog,
    dataset: DatasetRow,
    snapshot: str | None,
    visible: Callable[[DatasetRow], bool],
) -> dict[str, Any]:
    """``snapshot`` None starts at the latest snapshot; ``visible`` says which other
    datasets the caller may see as consumers."""
    snaps = {s.id: s for s in catalog.snapshots(dataset.id)}
    gone = {g.id: g for g in catalog.forgotten(dataset.id)}
    tags: dict[str, list[str]] = {}
    for tag, sid in catalog.tags(dataset.id).items():  # one query, not one per parent
        tags.setdefault(sid, []).append(tag)
    start = snapshot or catalog.latest_snapshot(dataset.id)
    parents: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    seen_sources: set[tuple[str, str]] = set()
    current = start
    while current is not None:
        if current in gone:
            g = gone[current]
            parents.append(
                {
                    "id": g.id,
                    "created_at": g.created_at,
                    "tags": [],
                    "forgotten": True,
                    "forgotten_at": g.forgotten_at,
                }
            )
            current = g.parent
            continue
        snap = snaps.get(current)
        if snap is None:
            break
        parents.append(
            {"id": snap.id, "created_at": snap.created_at, "tags": tags.get(snap.id, [])}
        )
        for src in snap.sources:
            key = (src["dataset"], src["snapshot"])
            if key not in seen_sources:
                seen_sources.add(key)
                sources.append({**src, "via": snap.id, **_forgotten(catalog, src["snapshot"])})
        current = snap.parent
    own = set(snaps) | set(gone)
    consumers = []
    for row in catalog.datasets():
        if row.id == dataset.id or not visible(row):
            continue
        for snap in catalog.snapshots(row.id):
            for src in snap.sources:
                if src["dataset"] == dataset.name and src["snapshot"] in own:
                    consumers.append(
                        {
                            "dataset": row.name,
                            "snapshot": snap.id,
                            "source": src["snapshot"],
                            **_forgotten(catalog, src["snapshot"]),
                        }
                    )
    return {
        "dataset": dataset.name,
        "snapshot": start,
        "parents": parents,
        "sources": sources,
        "consumers": consumers,
    }


def _forgotten(catalog: Catalog, snapshot_id: str) -> dict[str, Any]:
    """``{"forgotten": True, "forgotten_at": ...}`` for a forgotten snapshot, else {}."""
    g = catalog.forgotten_snapshot(snapshot_id)
    return {"forgotten": True, "forgotten_at": g.forgotten_at} if g else {}
