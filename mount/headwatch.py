"""What changed in the store outside the mount, so the kernel's long-lived caches of
heads and refs can be dropped path by path."""

from __future__ import annotations

import logging

from datastore import KIND_DIR, Store

from .nodes import NodeCache

log = logging.getLogger("ds.mount")


class HeadWatch:
    """What changed in the store outside this mount, as tree paths the kernel may cache.

    The kernel keeps entries and attributes for a long time (fast ``find``); this is what
    keeps heads fresh anyway: staged rows numbered after the last poll, a ``base`` moved
    by a snapshot (diffed, in case it captured rows a poll never saw), datasets created or
    removed, and every ``NAME@REF`` resolved here that now names another snapshot.
    """

    def __init__(self, store: Store, cache: NodeCache) -> None:
        self.store = store
        self.cache = cache
        self.seq, _ = store.head_changes(1 << 62)
        self.datasets = self._datasets()

    def _datasets(self) -> dict[str, tuple[str, str | None, int, str, int]]:
        return {
            r.name: (r.id, r.base, r.root_mode, r.root_meta, r.root_mtime_ns)
            for r in self.store.list_datasets()
        }

    def poll(self) -> list[str]:
        """Tree paths to invalidate (``/NAME/path``, ``/NAME``, ``/NAME@REF``)."""
        self.seq, changed = self.store.head_changes(self.seq)
        out: set[str] = set()
        for name, path, kind in changed:  # the mount's own writes too: drop just those nodes
            dirs = kind in (KIND_DIR, None)  # a directory came or went: its parent's nlink
            self.cache.forget(name, path, dirs=dirs)
            out.add(f"/{name}/{path}")
            if dirs:
                out.add(f"/{name}/{path.rpartition('/')[0]}".rstrip("/"))
        whole: list[str] = []  # changes beyond single paths: every head node goes
        current = self._datasets()
        for name in self.datasets.keys() | current.keys():
            before, after = self.datasets.get(name), current.get(name)
            if before == after:
                continue
            whole.append(f"/{name}")
            if before is not None and after is not None and before[0] == after[0]:
                whole.extend(self._moved_base(name, before[1], after[1]))
        self.datasets = current
        whole.extend(self.cache.moved_refs())
        if whole:
            self.cache.forget_heads()
        return sorted(out) + whole

    def _moved_base(self, name: str, old: str | None, new: str | None) -> list[str]:
        if old is None or new is None or old == new:
            return []
        try:
            diff = self.store.diff(f"{name}@{old}", f"{name}@{new}")
        except Exception:
            log.exception("could not diff %s from %s to %s", name, old, new)
            return []
        paths: list[str] = []
        for kind in ("added", "removed", "modified"):
            paths.extend(e["path"] for e in diff.get(kind, []))
        for moved in diff.get("renamed", []):
            paths.extend((moved["from"], moved["to"]))
        return [f"/{name}/{p}" for p in paths]
