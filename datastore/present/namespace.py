"""The whole store as one tree of paths, for the views that show it that way.

::

    /                 one directory per dataset (read-only itself)
    /NAME/...         the head of NAME: read-write
    /NAME@REF/...     the snapshot REF names: read-only, resolved on lookup, never listed

Plain Python over the :class:`~datastore.store.Store` facade, so the FUSE mount and the
``ds://`` fsspec filesystem share one resolution (ratarmount's ``MountSource`` idea) and
it can be tested without FUSE. Errors are the store's own (``DatasetNotFound``,
``FileNotFound``, ``RefNotFound``, ``ReadOnlyRef``, ``InvalidName``...); each view maps
them once.
"""

from __future__ import annotations

import stat as statmod
from dataclasses import dataclass, replace
from datetime import datetime
from typing import BinaryIO

from datastore import names
from datastore.catalog.core import DatasetRow
from datastore.errors import DatasetNotFound, InvalidPath, ReadOnlyRef
from datastore.storage.manifest import KIND_DIR, KIND_LINK, Entry, owner_of, times_of
from datastore.storage.objects import ObjectId
from datastore.storage.reader import open_file
from datastore.store import Store, Version

ROOT_MODE = 0o555
WRITE_BITS = 0o222


@dataclass(frozen=True, slots=True)
class Location:
    """A path of the tree, split: ``spec`` is ``NAME`` or ``NAME@REF`` (None at the root)."""

    spec: str | None
    path: str

    @property
    def is_root(self) -> bool:
        return self.spec is None

    @property
    def name(self) -> str | None:
        return None if self.spec is None else self.spec.partition("@")[0]

    @property
    def ref(self) -> str | None:
        if self.spec is None or "@" not in self.spec:
            return None
        return self.spec.partition("@")[2]

    @property
    def read_only(self) -> bool:
        """The root and every ``@REF`` version refuse changes; only heads take writes."""
        return self.spec is None or self.ref is not None

    def child(self, name: str) -> Location:
        if self.spec is None:
            return locate(name)
        return Location(self.spec, f"{self.path}/{name}" if self.path else name)

    def __str__(self) -> str:
        if self.spec is None:
            return "/"
        return f"/{self.spec}/{self.path}" if self.path else f"/{self.spec}"


@dataclass(frozen=True, slots=True)
class Node:
    """What getattr needs: kind, size, permission bits, mtime, and the committed object
    (or, for a symbolic link, its target)."""

    kind: str
    size: int
    mode: int
    mtime_ns: int
    object: ObjectId | None
    read_only: bool
    owner: tuple[int, int] | None = None  # (uid, gid) chown stored; None: the viewer's
    atime_ns: int | None = None  # None: the mtime
    ctime_ns: int | None = None  # the last attribute change; the mtime when later
    target: str | None = None  # a symbolic link's

    @property
    def is_dir(self) -> bool:
        return self.kind == KIND_DIR

    @property
    def is_link(self) -> bool:
        return self.kind == KIND_LINK

    @property
    def st_mode(self) -> int:
        return _FILE_TYPES.get(self.kind, statmod.S_IFREG) | self.mode


_FILE_TYPES = {KIND_DIR: statmod.S_IFDIR, KIND_LINK: statmod.S_IFLNK}


def locate(path: str) -> Location:
    """Split a tree path (``/NAME@REF/a/b``, leading ``/`` optional) into its parts.

    A first component that cannot be a dataset name names nothing (``DatasetNotFound``,
    so probes like ``/.git`` are plain misses); a malformed ``@REF`` is ``InvalidName``.
    """
    stripped = path.strip("/")
    if not stripped:
        return Location(None, "")
    top, _, rest = stripped.partition("/")
    name, sep, _ = top.partition("@")
    if not names.DATASET_RE.fullmatch(name):
        raise DatasetNotFound(f"no dataset {name!r}")
    if sep:
        top = names.canonical_spec(top)
    return Location(top, names.dir_path(rest) if rest else "")


class Namespace:
    """Resolution of tree paths to store entries; holds no state of its own but the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def version(self, loc: Location) -> Version:
        """The dataset head or the snapshot ``loc`` names, resolved now."""
        if loc.spec is None:
            raise InvalidPath("the root is not a dataset")
        return self.store.resolve(loc.spec)

    def pin(self, loc: Location) -> Location:
        """``NAME@REF`` rewritten to the snapshot id it names now, for reads that must not
        follow a tag moved later (SPEC promise 1); heads and the root are unchanged."""
        if loc.ref is None:
            return loc
        version = self.version(loc)
        return Location(f"{version.name}@{version.snapshot}", loc.path)

    def stat(self, loc: Location) -> Node:
        if loc.spec is None:
            return Node(KIND_DIR, 0, ROOT_MODE, 0, None, True)
        entry = self.store.stat(loc.spec, loc.path)
        node = node_of(entry, loc.read_only)
        if loc.path == "" and node.mtime_ns == 0:
            node = _with_mtime(node, _ns(self.version(loc).dataset.updated_at))
        return node

    def listdir(self, loc: Location) -> list[tuple[str, Node]]:
        """The children of a directory: datasets at the root (heads only), else entries."""
        if loc.spec is None:
            return [(row.name, _root_node(row)) for row in self.store.list_datasets()]
        node = self.stat(loc)
        if not node.is_dir:
            raise InvalidPath(f"{loc} is not a directory")
        out = []
        for entry in self.store.ls(loc.spec, loc.path):
            out.append((entry.path.rpartition("/")[2], node_of(entry, loc.read_only)))
        return out

    def object_of(self, loc: Location) -> ObjectId:
        """The object holding a committed file's bytes (a link or directory has none)."""
        node = self.stat(loc)
        if node.is_link:
            raise InvalidPath(f"{loc} is a symbolic link to {node.target!r}")
        if node.object is None:
            raise InvalidPath(f"{loc} is a directory")
        return node.object

    def open(self, loc: Location) -> BinaryIO:
        return open_file(self.store.open_object(self.object_of(loc)))

    def writable(self, loc: Location) -> str:
        """The head's name for a change at ``loc``; refuses the root and ``@REF``."""
        if loc.spec is None:
            raise ReadOnlyRef("the top of the tree lists datasets; create them with ds create")
        if loc.ref is not None:
            raise ReadOnlyRef(f"{loc.spec} is a read-only version; write to {loc.name}")
        return loc.spec


def node_of(entry: Entry, read_only: bool) -> Node:
    mode = entry.mode & ~WRITE_BITS if read_only and not entry.is_link else entry.mode
    info = entry.info  # parsed once: every node of a listing is built here
    atime, ctime = times_of(info)
    return Node(
        entry.kind,
        entry.size,
        mode,
        entry.mtime_ns,
        entry.object,
        read_only,
        owner_of(info),
        atime,
        ctime,
        info.get("target") if entry.is_link else None,
    )


def _with_mtime(node: Node, mtime_ns: int) -> Node:
    return replace(node, mtime_ns=mtime_ns)


def _root_node(row: DatasetRow) -> Node:
    """A dataset's directory as the tree's top level lists it."""
    entry = Entry("", KIND_DIR, None, 0, row.root_mode, row.root_mtime_ns, row.root_meta)
    return _with_mtime(node_of(entry, False), row.root_mtime_ns or _ns(row.updated_at))


def _ns(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0
