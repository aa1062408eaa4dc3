"""The ``ds://`` fsspec protocol: ``ds://NAME/PATH`` (the head) and ``ds://NAME@REF/PATH``.

Reads of committed files open the immutable object file itself; writes to a head spool
to a temp file on the store's filesystem and become a staged file (durably) on close.
``NAME@REF`` is read-only and is pinned to the snapshot it names when a file is opened.
The store comes from the ``store=`` storage option (a path or a :class:`Store`), else
``DS_STORE``. Paths resolve through :mod:`datastore.present.namespace`, as in the mount.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

from datastore.errors import DatastoreError, FileNotFound, InvalidPath, ReadOnlyRef
from datastore.present.namespace import Location, Namespace, Node, locate
from datastore.store import DEFAULT_FILE_MODE, Store


class DatasetFileSystem(AbstractFileSystem):
    protocol = "ds"
    root_marker = ""

    def __init__(self, store: Store | str | os.PathLike[str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store if isinstance(store, Store) else Store.open(_root(store))
        self.ns = Namespace(self.store)

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        text = str(path)
        if text.startswith("ds://"):
            text = text[len("ds://") :]
        return text.strip("/")

    # reading -------------------------------------------------------------

    def _node(self, path: str) -> tuple[Location, Node]:
        loc = locate(self._strip_protocol(path))
        try:
            return loc, self.ns.stat(loc)
        except DatastoreError as exc:
            raise _os_error(exc, path) from exc

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        loc, node = self._node(path)
        return _info(str(loc).strip("/"), node)

    def ls(self, path: Any, detail: bool = True, **kwargs: Any) -> list[Any]:
        loc, node = self._node(path)
        base = str(loc).strip("/")
        if not node.is_dir:
            rows = [_info(base, node)]
        else:
            try:
                children = self.ns.listdir(loc)
            except DatastoreError as exc:
                raise _os_error(exc, path) from exc
            rows = [_info(f"{base}/{n}" if base else n, c) for n, c in children]
        return rows if detail else [r["name"] for r in rows]

    def _open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        loc = locate(self._strip_protocol(path))
        try:
            if "r" in mode and "+" not in mode:
                return self.ns.open(self.ns.pin(loc))
            if mode not in ("wb", "xb"):
                raise InvalidPath(f"ds:// files open as rb, wb or xb, not {mode!r}")
            name = self.ns.writable(loc)
            if not loc.path:
                raise InvalidPath(f"{loc} is a dataset, not a file")
            if mode == "xb" and self.exists(path):
                raise FileExistsError(path)
            return HeadWriter(self.store, name, loc.path)
        except DatastoreError as exc:
            raise _os_error(exc, path) from exc

    def modified(self, path: Any) -> datetime:
        """The file's mtime (DuckDB asks before it reads through a registered filesystem)."""
        _, node = self._node(path)
        return datetime.fromtimestamp(node.mtime_ns / 1e9, UTC)

    def created(self, path: Any) -> datetime:
        """No birth time is kept: a file's version was created when it was last written."""
        return self.modified(path)

    def cat_file(self, path: Any, start: int | None = None, end: int | None = None, **kw: Any):
        with self._open(path, "rb") as f:
            if start:
                f.seek(start if start >= 0 else max(0, f.seek(0, 2) + start))
            if end is None:
                return f.read()
            stop = end if end >= 0 else f.seek(0, 2) + end
            here = f.tell()
            return f.read(max(0, stop - here))

    # writing the head ----------------------------------------------------------

    def _head(self, path: Any) -> tuple[str, str]:
        loc = locate(self._strip_protocol(path))
        try:
            return self.ns.writable(loc), loc.path
        except DatastoreError as exc:
            raise _os_error(exc, path) from exc

    def rm_file(self, path: Any) -> None:
        name, rel = self._head(path)
        self._call(path, self.store.rm, name, [rel])

    def _rm(self, path: Any) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in path if isinstance(path, list) else [path]:
            if self.isdir(p) and not recursive:
                name, rel = self._head(p)
                self._call(p, self.store.rmdir, name, rel)
            else:
                self.rm_file(p)

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        """Copy a file of any version into a head; identical bytes are stored once. A
        directory (``copy(..., recursive=True)`` passes each one) becomes a directory, a
        symbolic link a link with the same target."""
        loc = locate(self._strip_protocol(path1))
        name, rel = self._head(path2)
        try:
            node = self.ns.stat(loc)
            if node.is_dir:
                self.makedirs(path2, exist_ok=True)
                return
            if node.target is not None:
                self._call(path2, self.store.symlink, name, rel, node.target)
                return
            if not rel:
                raise IsADirectoryError(21, "a dataset is not a file", str(path2))
            source = self.ns.object_of(self.ns.pin(loc))
        except DatastoreError as exc:
            raise _os_error(exc, path1) from exc
        self._call(path2, self.store.put_object_at, name, rel, source)

    def mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> None:
        """A directory in a head; at the top level (``ds://NEW``), a new dataset."""
        loc = locate(self._strip_protocol(path))
        top = loc.spec is not None and not loc.path and loc.ref is None
        if top and loc.name not in {d.name for d in self.store.list_datasets()}:
            self._call(path, self.store.create_dataset, loc.name)
            return
        name, rel = self._head(path)
        if not rel:
            raise FileExistsError(17, "the dataset exists", str(path))
        self._call(path, self.store.mkdir, name, rel)

    def makedirs(self, path: Any, exist_ok: bool = False) -> None:
        if self.exists(path):
            if not exist_ok:
                raise FileExistsError(path)
            return
        self.mkdir(path)

    def rmdir(self, path: Any) -> None:
        name, rel = self._head(path)
        self._call(path, self.store.rmdir, name, rel)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, **kwargs: Any) -> None:
        a, src = self._head(path1)
        b, dst = self._head(path2)
        if a != b:
            raise OSError(18, f"cannot move across datasets: {path1} -> {path2}")
        self._call(path1, self.store.rename, a, src, dst)

    def _call(self, path: Any, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except DatastoreError as exc:
            raise _os_error(exc, path) from exc


class HeadWriter(io.FileIO):
    """A temp file on the store's filesystem that becomes ``path`` in the head on close.

    Close returns after the content is durable and staged (adopted into the object store
    without a copy); a writer dropped after an error stages nothing.
    """

    def __init__(self, store: Store, name: str, path: str) -> None:
        self._store, self._name, self._path = store, name, path
        self._tmp = store.open_temp()
        assert self._tmp.fd is not None
        super().__init__(self._tmp.fd, "wb", closefd=False)
        self._done = False

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._done:
                self._done = True
                # adopted while its descriptor is still open: gc leaves an open temp alone
                self._store.put_file_at(
                    self._name, self._path, self._tmp.path, mode=DEFAULT_FILE_MODE, adopt=True
                )
        finally:
            super().close()
            self._tmp.discard()  # after an adoption only the descriptor is left to close

    def discard(self) -> None:
        self._done = True
        super().close()
        self._tmp.discard()

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if kind is not None:
            self.discard()
        else:
            self.close()


def _root(store: str | os.PathLike[str] | None) -> Path | None:
    return None if store is None else Path(store)


def _info(name: str, node: Node) -> dict[str, Any]:
    """fsspec's keys; a symbolic link is described as fsspec's local file system describes
    one it does not follow: type ``other``, ``islink`` and ``destination``."""
    doc = {
        "name": name,
        "size": node.size,
        "type": "directory" if node.is_dir else "other" if node.is_link else "file",
        "mode": node.st_mode,
        "mtime": node.mtime_ns / 1e9,
        "object": node.object,
        "read_only": node.read_only,
    }
    if node.is_link:
        doc.update(islink=True, destination=node.target)
    return doc


def _os_error(exc: DatastoreError, path: Any) -> OSError:
    """fsspec callers expect builtin OSErrors; the store's error rides along as the cause."""
    if isinstance(exc, FileNotFound) or exc.code in ("dataset_not_found", "ref_not_found"):
        return FileNotFoundError(2, exc.message, str(path))
    if isinstance(exc, ReadOnlyRef):
        return PermissionError(30, exc.message, str(path))
    return OSError(22, f"{exc.message} [{exc.code}]", str(path))
