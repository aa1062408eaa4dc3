"""The mount's node cache: what ``find`` and ``ls -l`` ask again and again, answered
without a catalog query per entry."""

from __future__ import annotations

import stat as statmod
import time
from collections.abc import Callable
from typing import Any

from datastore import Location, Namespace, Node

LISTINGS = 4096  # snapshot directory listings kept
HEAD_TTL = 0.4  # seconds a head node or ref resolution is reused (changes show within 1 s)
Key = tuple[str, str]  # (dataset name, path in the dataset)


class NodeCache:
    """Nodes seen recently, so ``find`` and ``ls -l`` cost no catalog query per entry.

    A snapshot's nodes never change (keyed by the snapshot id a ref resolved to), so they
    stay until the cache is full; head nodes live ``HEAD_TTL`` seconds, and every change
    made through the overlay drops them at once.
    """

    def __init__(self, ns: Namespace, limit: int = 1_000_000) -> None:
        self.ns = ns
        self.limit = limit
        self._snap: dict[Key, Node] = {}
        self._head: dict[Key, tuple[Node, float]] = {}
        self._refs: dict[str, str] = {}
        self._listings: dict[Key, list[tuple[str, int]]] = {}
        self._seen: dict[str, set[str]] = {}
        self._attr_listings: dict[Key, list[tuple[str, dict[str, Any]]]] = {}
        self._subdirs: dict[Key, int] = {}  # head directory -> directories in it

    def pinned(self, loc: Location) -> Location:
        """``NAME@REF`` as ``NAME@<snapshot id>``; kept until :meth:`moved_refs` sees the
        ref name another snapshot (the mount polls it a few times a second)."""
        assert loc.spec is not None
        sid = self._refs.get(loc.spec)
        if sid is None:
            sid = self.ns.pin(Location(loc.spec, "")).spec
            assert sid is not None
            self._refs[loc.spec] = sid
        return Location(sid, loc.path)

    def stat(self, loc: Location) -> Node:
        if loc.spec is None:
            return self.ns.stat(loc)
        if loc.ref is not None:
            pinned = self.pinned(loc)
            key = (pinned.spec or "", pinned.path)
            self._seen.setdefault(loc.spec, set()).add(loc.path)
            node = self._snap.get(key)
            if node is None:
                node = self.ns.stat(pinned)
                self._remember(key, node)
            return node
        key = (loc.spec, loc.path)
        now = time.monotonic()
        found = self._head.get(key)
        if found is not None and found[1] > now:
            return found[0]
        node = self.ns.stat(loc)
        self._lease(key, node, now + HEAD_TTL)
        return node

    def listdir(self, loc: Location) -> list[tuple[str, Node]]:
        if loc.spec is None:
            return self.ns.listdir(loc)
        if loc.ref is not None:
            pinned = self.pinned(loc)
            entries = self.ns.listdir(pinned)
            for name, node in entries:
                self._remember((pinned.spec or "", _join(pinned.path, name)), node)
            return entries
        entries = self.ns.listdir(loc)
        expires = time.monotonic() + HEAD_TTL
        for name, node in entries:
            self._lease((loc.spec, _join(loc.path, name)), node, expires)
        return entries

    def subdirs(self, loc: Location) -> int:
        """How many directories ``loc`` holds: a directory's ``st_nlink`` is 2 plus this.
        Counted from the snapshot's kept listing, or a head's listing, kept until a
        change that may make or remove a directory in it (:meth:`forget`): a create in
        a large directory does not list it again."""
        if loc.ref is not None:
            return sum(statmod.S_ISDIR(mode) for _, mode in self.listing(loc))
        key = (loc.spec or "", loc.path)
        count = self._subdirs.get(key)
        if count is None:
            count = sum(node.is_dir for _, node in self.listdir(loc))
            if len(self._subdirs) >= LISTINGS:
                self._subdirs.clear()
            self._subdirs[key] = count
        return count

    def listing(self, loc: Location) -> list[tuple[str, int]]:
        """A snapshot directory's (name, st_mode) list, built once per snapshot."""
        pinned = self.pinned(loc)
        key = (pinned.spec or "", pinned.path)
        found = self._listings.get(key)
        if found is None:
            found = sorted((n, node.st_mode) for n, node in self.listdir(loc))
            if len(self._listings) >= LISTINGS:
                self._listings.clear()
            self._listings[key] = found
        self._saw(loc, [n for n, _ in found])
        return found

    def attr_listing(
        self, loc: Location, attr: Callable[[Node, Location], dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """A snapshot directory's children with full attributes, built once per snapshot."""
        pinned = self.pinned(loc)
        key = (pinned.spec or "", pinned.path)
        found = self._attr_listings.get(key)
        if found is None:
            found = sorted((n, attr(node, loc.child(n))) for n, node in self.listdir(loc))
            if len(self._attr_listings) >= LISTINGS:
                self._attr_listings.clear()
            self._attr_listings[key] = found
        self._saw(loc, [n for n, _ in found])
        return found

    def _saw(self, loc: Location, children: list[str]) -> None:
        """Remember what the kernel may now hold under a ref, to drop it if the ref moves."""
        seen = self._seen.setdefault(loc.spec or "", set())
        seen.add(loc.path)
        seen.update(_join(loc.path, n) for n in children)

    def _lease(self, key: Key, node: Node, expires: float) -> None:
        """A head node kept until ``expires`` (or until a change forgets it); the table is
        bounded, as changes through the overlay drop single entries only."""
        if len(self._head) >= self.limit:
            self._head.clear()
        self._head[key] = (node, expires)

    def _remember(self, key: Key, node: Node) -> None:
        if len(self._snap) >= self.limit:
            self._snap.clear()
        self._snap[key] = node

    def moved_refs(self) -> list[str]:
        """Tree paths of refs resolved before that now name another snapshot (a tag moved,
        a new ``latest``), with every path looked up or listed under them (the kernel may
        hold their attributes and listings), deepest first; the refs are re-resolved on
        the next lookup."""
        moved: list[str] = []
        for spec, sid in list(self._refs.items()):
            try:
                now = self.ns.pin(Location(spec, "")).spec
            except Exception:
                now = None
            if now != sid:
                self._refs.pop(spec, None)
                seen = self._seen.pop(spec, set())
                moved.extend(f"/{spec}/{path}" for path in sorted(seen, reverse=True) if path)
                moved.append(f"/{spec}")
        return moved

    def forget(self, name: str, path: str, subtree: bool = False, dirs: bool = True) -> None:
        """Called after a change the overlay made at ``path`` (and below it, with
        ``subtree``): those nodes are read fresh again, and with ``dirs`` (a directory may
        have come or gone there) its parent's count of subdirectories. Nothing else
        changed with them, so the rest stay cached."""
        self._head.pop((name, path), None)
        self._subdirs.pop((name, path), None)
        if dirs:
            self._subdirs.pop((name, path.rpartition("/")[0]), None)
        if subtree:
            prefix = f"{path}/"
            for table in (self._head, self._subdirs):
                for key in [k for k in table if k[0] == name and k[1].startswith(prefix)]:
                    del table[key]

    def forget_heads(self) -> None:
        """Called when the store changed elsewhere (the CLI, the API): heads are read
        fresh again."""
        self._head.clear()
        self._subdirs.clear()


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
