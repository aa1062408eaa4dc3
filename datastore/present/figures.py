"""Figures over a version or the whole store, as REST and the CLI both show them: a
version's summary (files by category and extension) and the store's totals (SPEC 11)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from datastore.categories import extension
from datastore.errors import DatasetNotFound
from datastore.storage.manifest import Entry
from datastore.store import Store

UNCATEGORIZED = "binary"


def version_summary(store: Store, spec: str) -> dict[str, Any]:
    """Files of one version (a head or ``NAME@REF``) by category and by extension."""
    version = store.resolve(spec)
    files = [e for e in store.entries(spec) if e.is_file]
    return {
        "dataset": version.name,
        "version": version.snapshot,
        "file_count": len(files),
        "size_bytes": sum(e.size for e in files),
        "by_category": _tally(files, _category),
        "by_extension": _tally(files, lambda e: extension(e.path)),
        "snapshot_count": len(store.log(version.name)),
    }


def store_totals(store: Store) -> dict[str, Any]:
    """Whole-store totals: logical bytes count every snapshot, and each head that differs
    from its latest snapshot (or has none); physical bytes are what the objects take."""
    snapshots = files = logical = 0
    heads: list[Entry] = []
    rows = store.list_datasets()
    for row in rows:
        try:
            log = store.log(row.name)
            info = store.info(row.name)
            entries = [e for e in store.entries(row.name) if e.is_file]
        except DatasetNotFound:  # deleted while we counted
            continue
        snapshots += len(log)
        logical += sum(s.row.size_bytes for s in log)
        if info.dirty or not log:
            logical += info.size_bytes
        files += len(entries)
        heads += entries
    physical = store.physical_bytes()
    return {
        "datasets": len(rows),
        "snapshots": snapshots,
        "files": files,
        "logical_bytes": logical,
        "physical_bytes": physical,
        "dedup_ratio": round(logical / physical, 4) if physical else 1.0,
        "by_category": _tally(heads, _category),
    }


def _category(e: Entry) -> str:
    return str(e.info.get("category") or UNCATEGORIZED)


def _tally(files: list[Entry], key: Callable[[Entry], str]) -> dict[str, dict[str, int]]:
    count: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for e in files:
        k = key(e)
        count[k] += 1
        size[k] += e.size
    return {k: {"count": count[k], "size_bytes": size[k]} for k in sorted(count)}
