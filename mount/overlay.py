"""The mount's view of the store, without FUSE: path resolution plus the head's write layer.

Reads of committed content go straight to the immutable object files. Writes to a head
file go to a *staging* file (a temp file from :meth:`Store.open_temp`, copied up from the
committed object on the first write) shared by every handle open on that path. ``commit``
(FUSE flush on close, and fsync) hands the staging file to the store, which hashes it into
the object store, fsyncs it and stages the entry in one catalog transaction; only then does
the call return. Snapshots read the catalog only, so they see each file as of its last
commit and never a write in progress (SPEC promises 3 and 4).

Every method raises the store's own errors or ``OSError``; ``mount.errors.to_errno`` turns
them into errnos in the FUSE layer, which is the only place that knows about FUSE.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat as statmod
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datastore import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    FileNotFound,
    Location,
    Namespace,
    Node,
    ObjectId,
    ObjectReader,
    ReadOnlyRef,
    Store,
    TempFile,
    copy_to_fd,
    locate,
    names,
)

from .headwatch import HeadWatch
from .nodes import Key, NodeCache

log = logging.getLogger("ds.mount")

MAX_NAME_BYTES = 255
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
BLOCK = 4096
WRITEBACK_STEP = 8 << 20  # a file written this far starts flushing while it is written


def _err(code: int, what: str) -> OSError:
    return OSError(code, os.strerror(code), what)


KEEP_ID = (-1, 0xFFFFFFFF)  # chown's "leave this one as it is", as either C type gives it


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for a change: their uid and every group they are in."""

    uid: int
    groups: frozenset[int]


@dataclass(eq=False)
class Staging:
    """A head file being written: the committed base plus, once written, a temp copy.

    All handles open on one path share it, so two writers (or a writer and a reader) see
    the same bytes, and an ``O_APPEND`` write from any of them lands at the current end.
    ``detached`` marks a file unlinked (or replaced by a rename) while open: its handles
    keep working, but nothing it holds is committed any more.
    """

    name: str
    path: str
    base: ObjectId | None
    base_size: int
    mode: int
    base_reader: ObjectReader | None = None
    temp: TempFile | None = None
    fd: int | None = None
    dirty: bool = False
    detached: bool = False
    opens: int = 0
    unflushed: int = 0  # bytes written since the last start of writeback
    mtime_ns: int | None = None
    atime_ns: int | None = None  # what utimens set; None: the mtime
    ctime_ns: int | None = None  # the last attribute change
    atime_unstored: bool = False  # set by utimens while dirty: stored after the commit
    owner: tuple[int, int] | None = None  # (uid, gid) chown set; None: the file's own
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def key(self) -> Key:
        return (self.name, self.path)

    def size(self) -> int:
        if self.fd is not None:
            return os.fstat(self.fd).st_size
        return self.base_size


@dataclass(eq=False)
class Handle:
    """One open file: a pinned object's reader for plain reads, or a head staging.

    ``opener`` is the process that opened it (None when unknown). The kernel sends a
    flush on every close of a descriptor, including the copy a child inherits and closes
    at exec; only the opener's close publishes, the rest wait for the last release.
    """

    reader: ObjectReader | None
    staging: Staging | None
    append: bool
    cacheable: bool
    opener: int | None = None


class Overlay:
    """Everything the FUSE operations need, as plain methods on tree paths."""

    def __init__(self, store: Store, read_only: bool = False) -> None:
        self.store = store
        self.ns = Namespace(store)
        self.cache = NodeCache(self.ns)
        self.watch = HeadWatch(store, self.cache)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._stagings: dict[Key, Staging] = {}
        self._handles: dict[int, Handle] = {}
        self._next = itertools.count(1)
        self._served: dict[Key, ObjectId | None] = {}
        # directories whose entries changed through this mount, and when (ns)
        self._dir_times: dict[Key, int] = {}
        self.uid = os.getuid()
        self.gid = os.getgid()

    # resolution --------------------------------------------------------------

    def locate(self, path: str) -> Location:
        for part in path.split("/"):
            if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
                raise _err(errno.ENAMETOOLONG, path)
        return locate(path)

    def _head(self, path: str) -> tuple[Location, str]:
        """A location a change may touch: inside a head, not the dataset directory itself."""
        loc = self.locate(path)
        if self.read_only:
            raise ReadOnlyRef("the mount is read-only")
        name = self.ns.writable(loc)
        if loc.path == "":
            raise ReadOnlyRef("datasets are created and removed with ds create / ds delete")
        names.file_path(loc.path)
        return loc, name

    def _entries_changed(
        self, name: str, path: str, subtree: bool = False, dirs: bool = False
    ) -> None:
        """An entry was made, removed or renamed at ``path``: its cached nodes go (and
        those below it, with ``subtree``; with ``dirs``, the entry is a directory, so its
        parent's link count too), and its directory's mtime and ctime move, as on a local
        disk. The times are kept in memory for as long as this mount runs (a stored
        directory time would make a head that got a file and lost it again differ from
        its snapshot); an explicit utimens of the directory wins."""
        self.cache.forget(name, path, subtree, dirs=dirs)
        self._dir_times[(name, path.rpartition("/")[0])] = time.time_ns()

    def _staging(self, key: Key) -> Staging | None:
        with self._lock:
            return self._stagings.get(key)

    # attributes --------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if fh is not None and fh in self._handles:
            st = self._handles[fh].staging
            if st is not None:
                return self._staging_attr(st)
        loc = self.locate(path)
        if loc.spec is not None and loc.ref is None and loc.path:
            st = self._staging((loc.spec, loc.path))
            if st is not None:
                return self._staging_attr(st)
        return self._attr(self.cache.stat(loc), loc)

    def _attr(self, node: Node, loc: Location) -> dict[str, Any]:
        mode = node.st_mode
        if (self.read_only or loc.read_only) and not node.is_link:
            mode &= ~0o222
        if loc.is_root:
            mode = statmod.S_IFDIR | 0o555
        size = BLOCK if node.is_dir else node.size
        nlink = 2 + self.cache.subdirs(loc) if node.is_dir else 1
        mtime, ctime = node.mtime_ns or 0, node.ctime_ns
        changed = self._dir_times.get((loc.spec or "", loc.path)) if node.is_dir else None
        if changed is not None:
            mtime, ctime = max(mtime, changed), max(ctime or 0, changed)
        return self._stat_dict(
            mode,
            nlink,
            size,
            mtime,
            stored=node.size,
            owner=node.owner,
            atime_ns=node.atime_ns,
            ctime_ns=ctime,
        )

    def _staging_attr(self, st: Staging) -> dict[str, Any]:
        with st.lock:
            nlink = 0 if st.detached else 1
            mtime = st.mtime_ns or time.time_ns()
            return self._stat_dict(
                statmod.S_IFREG | st.mode,
                nlink,
                st.size(),
                mtime,
                owner=st.owner,
                atime_ns=st.atime_ns,
                ctime_ns=st.ctime_ns,
            )

    def _stat_dict(
        self,
        mode: int,
        nlink: int,
        size: int,
        mtime_ns: int,
        stored: int | None = None,
        owner: tuple[int, int] | None = None,
        atime_ns: int | None = None,
        ctime_ns: int | None = None,
    ) -> dict[str, Any]:
        """``stored``: the bytes behind the entry when they differ from ``st_size`` (a
        directory reports a block as its size but stores nothing). ``owner``: what chown
        stored, else the mounting user. The ctime is the later of the last attribute
        change and the mtime (a write moves both); the atime is what utimens set, else
        the mtime."""
        uid, gid = owner if owner is not None else (self.uid, self.gid)
        return {
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": ((size if stored is None else stored) + 511) // 512,
            "st_blksize": 1 << 20,
            "st_uid": uid,
            "st_gid": gid,
            "st_mtime": mtime_ns,
            "st_ctime": max(mtime_ns, ctime_ns or 0),
            "st_atime": mtime_ns if atime_ns is None else atime_ns,
        }

    def readdir(self, path: str) -> list[tuple[str, int]]:
        """(name, st_mode) of each child: the kernel takes nothing else from a listing."""
        loc = self.locate(path)
        if loc.ref is not None:
            return self.cache.listing(loc)
        out = {n: node.st_mode for n, node in self.cache.listdir(loc)}
        for name, st in self._open_children(loc):
            out[name] = statmod.S_IFREG | st.mode
        return sorted(out.items())

    def readdir_attrs(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """Each child with its full attributes (READDIRPLUS); built once per snapshot dir."""
        loc = self.locate(path)
        if loc.ref is not None:
            return self.cache.attr_listing(loc, self._attr)
        out = {n: self._attr(node, loc.child(n)) for n, node in self.cache.listdir(loc)}
        for name, st in self._open_children(loc):
            out[name] = self._staging_attr(st)
        return sorted(out.items())

    def _open_children(self, loc: Location) -> list[tuple[str, Staging]]:
        """Files of this directory being written here and not committed yet: a listing
        must show them, as a local filesystem would."""
        if loc.spec is None:
            return []
        prefix = f"{loc.path}/" if loc.path else ""
        with self._lock:
            pending = [s for k, s in self._stagings.items() if k[0] == loc.spec]
        found = []
        for st in pending:
            rest = st.path[len(prefix) :] if st.path.startswith(prefix) else None
            if rest and "/" not in rest:
                found.append((rest, st))
        return found

    def statfs(self) -> dict[str, int]:
        sv = os.statvfs(self.store.root)
        return {
            "f_bsize": sv.f_bsize,
            "f_frsize": sv.f_frsize,
            "f_blocks": sv.f_blocks,
            "f_bfree": sv.f_bfree,
            "f_bavail": sv.f_bavail,
            "f_files": sv.f_files,
            "f_ffree": sv.f_ffree,
            "f_favail": sv.f_favail,
            "f_namemax": MAX_NAME_BYTES,
        }

    # opening -----------------------------------------------------------------

    def open(self, path: str, flags: int, opener: int | None = None) -> tuple[int, bool]:
        """Returns (handle, keep_cache): the page cache is kept for immutable content only."""
        loc = self.locate(path)
        writing = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if writing and (loc.read_only or self.read_only or loc.path == ""):
            raise ReadOnlyRef(f"{path} is read-only")
        key = (loc.spec or "", loc.path)
        st = self._join(key) if not loc.read_only else None
        if st is None and not writing:
            return self._open_committed(loc, key)
        if st is None:
            self._head(path)
            st = self._attach(key, loc)
        self._served.pop(key, None)
        if flags & os.O_TRUNC:
            self._truncate(st, 0)
        return self._add(Handle(None, st, bool(flags & os.O_APPEND), False, opener)), False

    def _join(self, key: Key) -> Staging | None:
        """The staging open on ``key``, counted as opened once more (in one step, so a
        release cannot tear it down in between)."""
        with self._lock:
            st = self._stagings.get(key)
            if st is not None:
                st.opens += 1
            return st

    def _open_committed(self, loc: Location, key: Key) -> tuple[int, bool]:
        """A read-only handle on the object itself; the kernel keeps its cached pages
        only while the path still serves the same object (tags move, heads change). A
        listed file whose object is gone is damage (``store_corrupt``: EIO, as a disk
        read error), not a file that does not exist (ENOENT)."""
        node = self.cache.stat(loc)
        reader = self.store.open_object(self._object(node, loc), sequential=True)
        keep = self._served.get(key) == node.object
        self._served[key] = node.object
        return self._add(Handle(reader, None, False, keep)), keep

    @staticmethod
    def _object(node: Node, loc: Location) -> ObjectId:
        if node.object is None:
            raise _err(errno.EISDIR, str(loc))
        return node.object

    def _attach(self, key: Key, loc: Location | None) -> Staging:
        """The staging of ``key``, created from the committed file at ``loc`` (None: a new,
        empty file) when there is none yet. The committed file is looked up under the
        lock that publishing a staging's last close also takes: looked up before, it could
        predate a close that committed and let go of its staging meanwhile, and a write
        through the new staging would then drop that close's bytes (two processes that
        each open, append and close)."""
        with self._lock:
            st = self._stagings.get(key)
            if st is None:
                node = self.ns.stat(loc) if loc is not None else None
                if node is not None and node.is_dir:
                    raise _err(errno.EISDIR, key[1])
                base = node.object if node is not None else None
                st = Staging(
                    name=key[0],
                    path=key[1],
                    base=base,
                    base_size=node.size if node is not None else 0,
                    mode=node.mode if node is not None else DEFAULT_FILE_MODE,
                    mtime_ns=node.mtime_ns if node is not None else None,
                    atime_ns=node.atime_ns if node is not None else None,
                    ctime_ns=node.ctime_ns if node is not None else None,
                    owner=node.owner if node is not None else None,
                )
                if base is not None:
                    st.base_reader = self.store.open_object(base)
                self._stagings[key] = st
            st.opens += 1
            return st

    def create(
        self,
        path: str,
        mode: int,
        flags: int = os.O_WRONLY,
        opener: int | None = None,
        creator: tuple[int, int] | None = None,
    ) -> int:
        """A new file, made by ``creator`` (uid, file-system gid; None: the mounting user)."""
        loc, name = self._head(path)
        key = (name, loc.path)
        # through the node cache: _new_owner reads the same parent again
        if not self.cache.stat(Location(name, loc.path.rpartition("/")[0])).is_dir:
            raise _err(errno.ENOTDIR, path)
        if self._exists(loc, key):
            if flags & os.O_EXCL:
                raise _err(errno.EEXIST, path)
            return self.open(path, flags, opener)[0]
        owner, _ = self._new_owner(creator, path)
        st = self._attach(key, None)
        with st.lock:
            st.mode = statmod.S_IMODE(mode)
            st.owner = owner
            self._copy_up(st, empty=True)
        self._served.pop(key, None)
        self._entries_changed(name, loc.path)
        return self._add(Handle(None, st, bool(flags & os.O_APPEND), False, opener))

    def _new_owner(
        self, creator: tuple[int, int] | None, path: str
    ) -> tuple[tuple[int, int] | None, int]:
        """(owner, extra mode bits) of an entry ``creator`` makes at ``path``, as Linux has
        it: the creator's uid and gid, except under a set-group-ID directory, whose group
        the entry takes (and a new directory its set-group-ID bit). The owner is None
        when it is the mounting user's, so common entries store nothing."""
        if creator is None:
            return None, 0
        (uid, gid), extra = creator, 0
        parent = self.getattr(path.rpartition("/")[0] or "/")
        if parent["st_mode"] & statmod.S_ISGID:
            gid, extra = parent["st_gid"], statmod.S_ISGID
        owner = (uid, gid)
        return (None if owner == (self.uid, self.gid) else owner), extra

    def _exists(self, loc: Location, key: Key) -> bool:
        """A create that races a file made elsewhere opens it instead of truncating it."""
        if self._staging(key) is not None:
            return True
        try:
            node = self.ns.stat(loc)
        except FileNotFound:
            return False
        if node.is_dir:
            raise _err(errno.EISDIR, str(loc))
        return True

    def _add(self, handle: Handle) -> int:
        fh = next(self._next)
        self._handles[fh] = handle
        return fh

    def handle(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise _err(errno.EBADF, str(fh)) from None

    # data --------------------------------------------------------------------

    def read_into(self, fh: int, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset``; returns the bytes read (short at end of file)."""
        h = self.handle(fh)
        if h.staging is None:
            assert h.reader is not None
            return h.reader.readinto(view, offset)
        st = h.staging
        with st.lock:
            if st.fd is not None:
                return os.preadv(st.fd, [view], offset)
            return 0 if st.base_reader is None else st.base_reader.readinto(view, offset)

    def read(self, fh: int, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        return bytes(buf[: self.read_into(fh, memoryview(buf), offset)])

    def write(self, fh: int, data: bytes | memoryview, offset: int) -> int:
        h = self.handle(fh)
        st = h.staging
        if st is None:
            raise _err(errno.EBADF, "file not open for writing")
        with st.lock:
            self._copy_up(st)
            assert st.fd is not None
            if h.append:
                offset = os.fstat(st.fd).st_size
            written = os.pwrite(st.fd, data, offset)
            st.dirty = True
            st.mtime_ns = None
            st.unflushed += written
            if st.unflushed >= WRITEBACK_STEP and st.temp is not None:
                st.temp.start_writeback()
                st.unflushed = 0
            return written

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is not None:
            st = self.handle(fh).staging
            if st is None:
                raise _err(errno.EBADF, "file not open for writing")
            self._truncate(st, length)
            return
        loc, name = self._head(path)
        key = (name, loc.path)
        st = self._attach(key, loc)
        try:
            self._truncate(st, length)
            self.commit(st)
        finally:
            self._release_staging(st)

    def _truncate(self, st: Staging, length: int) -> None:
        with st.lock:
            self._copy_up(st, empty=length == 0)
            assert st.fd is not None
            os.ftruncate(st.fd, length)
            st.dirty = True
            st.mtime_ns = None

    def _copy_up(self, st: Staging, empty: bool = False) -> None:
        """Give the staging a private writable copy (once); the committed object stays."""
        if st.fd is not None:
            return
        temp = self.store.open_temp()
        assert temp.fd is not None
        try:
            if not empty and st.base_reader is not None and st.base_size:
                copy_to_fd(st.base_reader, temp.fd)
        except BaseException:
            temp.discard()
            raise
        st.temp, st.fd = temp, temp.fd
        st.dirty = True

    def commit(self, st: Staging, durable: bool = False) -> None:
        """Stage the staging's bytes in the catalog before returning (SPEC promise 4).

        The temp file is adopted into the object store (hashed, renamed; no copy), and
        the staging goes back to reading that object: the next write copies up again. A
        close commits without flushing: visible, and safe if the mount is killed; an
        fsync (``durable``) flushes the bytes and the commit. A detached staging
        (unlinked while open) has nothing to commit.
        """
        with st.lock:
            if not st.dirty or st.detached or st.fd is None or st.temp is None:
                if durable:
                    self.store.settle()  # an fsync after a close: flush that close
                return
            mtime = st.mtime_ns or time.time_ns()
            # adopted while still open: the open temp is locked against gc until it is in
            entry = self.store.put_file_at(
                st.name,
                st.path,
                st.temp.path,
                mode=st.mode,
                mtime_ns=mtime,
                adopt=True,
                owner=st.owner,
                durable=durable,
            )
            st.temp.close()
            st.fd, st.temp = None, None
            assert entry.object is not None
            if st.base_reader is not None:
                st.base_reader.close()
            st.base, st.base_size, st.mtime_ns = entry.object, entry.size, mtime
            st.base_reader = self.store.open_object(entry.object)
            st.dirty = False
            if st.atime_unstored:
                self.store.set_attrs(st.name, st.path, atime_ns=st.atime_ns)
                st.atime_unstored = False
            self.cache.forget(st.name, st.path, dirs=False)

    def flush(self, fh: int, closer: Callable[[], int | None] | None = None) -> None:
        """A close of one descriptor: publishes when the opener closes (close-then-visible);
        a close by another process (a child's inherited copy) leaves the file to the
        opener's close or the last release, so a snapshot never sees it half-written.
        ``closer`` names the closing process; it is asked only when there is something
        to publish, so a close of a clean file costs no look at /proc."""
        h = self.handle(fh)
        if h.staging is None or not h.staging.dirty:
            return
        who = closer() if closer is not None and h.opener is not None else None
        if who is not None and who != h.opener:
            return
        self.commit(h.staging)

    def fsync(self, fh: int) -> None:
        st = self.handle(fh).staging
        if st is not None:
            self.commit(st, durable=True)

    def settle(self) -> None:
        """Flush what closes left unflushed (called every few seconds and at unmount)."""
        self.store.settle()

    def release(self, fh: int) -> None:
        with self._lock:
            h = self._handles.pop(fh, None)
        if h is None:
            return
        if h.reader is not None:
            h.reader.close()
        if h.staging is not None:
            try:
                self.commit(h.staging)
            finally:
                self._release_staging(h.staging)

    def _release_staging(self, st: Staging) -> None:
        with self._lock:
            st.opens -= 1
            if st.opens > 0:
                return
            if self._stagings.get(st.key) is st:
                del self._stagings[st.key]
        with st.lock:
            if st.base_reader is not None:
                st.base_reader.close()
            if st.temp is not None:
                st.temp.discard()
            st.fd, st.base_reader = None, None
            st.temp = None

    # namespace changes -------------------------------------------------------

    def mkdir(self, path: str, mode: int, creator: tuple[int, int] | None = None) -> None:
        """A new directory, made by ``creator`` (uid, file-system gid; None: the mounting
        user)."""
        loc, name = self._head(path)
        if self._staging((name, loc.path)) is not None:
            raise _err(errno.EEXIST, path)
        owner, extra = self._new_owner(creator, path)
        mode = (statmod.S_IMODE(mode) or DEFAULT_DIR_MODE) | extra
        self.store.mkdir(name, loc.path, mode, owner=owner)
        self._entries_changed(name, loc.path, dirs=True)

    def rmdir(self, path: str) -> None:
        loc, name = self._head(path)
        node = self.ns.stat(loc)
        if not node.is_dir:
            raise _err(errno.ENOTDIR, path)
        if self.ns.listdir(loc) or self._pending_under(name, loc.path):
            raise _err(errno.ENOTEMPTY, path)
        self.store.rmdir(name, loc.path)
        self._entries_changed(name, loc.path, dirs=True)

    def _pending_under(self, name: str, path: str) -> bool:
        prefix = path + "/"
        with self._lock:
            return any(k[0] == name and k[1].startswith(prefix) for k in self._stagings)

    def unlink(self, path: str) -> None:
        loc, name = self._head(path)
        key = (name, loc.path)
        with self._lock:
            st = self._stagings.pop(key, None)
        if st is not None:
            with st.lock:
                st.detached = True
        try:
            node = self.ns.stat(loc)
        except FileNotFound:
            if st is None:
                raise
            self._entries_changed(name, loc.path)
            return
        if node.is_dir:
            raise _err(errno.EISDIR, path)
        self.store.rm(name, [loc.path])
        self._served.pop(key, None)
        self._entries_changed(name, loc.path)

    def rename(self, old: str, new: str) -> None:
        src, sname = self._head(old)
        dst, dname = self._head(new)
        if sname != dname:
            raise _err(errno.EXDEV, f"{old} -> {new}")
        if src.path == dst.path:
            return
        pending = self._staging((sname, src.path))
        try:
            node: Node | None = self.ns.stat(src)
        except FileNotFound:
            if pending is None:
                raise
            node = None
        self._check_rename_target(dst, node)
        if node is not None:
            self.store.rename(sname, src.path, dst.path)
        else:
            self._drop_target(dst)
        self._move_stagings(sname, src.path, dst.path)
        moved_dir = node is not None and node.is_dir
        self._entries_changed(sname, src.path, subtree=True, dirs=moved_dir)
        self._entries_changed(sname, dst.path, subtree=True, dirs=moved_dir)

    def _check_rename_target(self, dst: Location, node: Node | None) -> None:
        try:
            target = self.ns.stat(dst)
        except FileNotFound:
            return
        moving_dir = node is not None and node.is_dir
        if target.is_dir and not moving_dir:
            raise _err(errno.EISDIR, str(dst))
        if moving_dir and not target.is_dir:
            raise _err(errno.ENOTDIR, str(dst))
        if target.is_dir and self.ns.listdir(dst):
            raise _err(errno.ENOTEMPTY, str(dst))

    def _drop_target(self, dst: Location) -> None:
        """An uncommitted file renamed over a committed one: the old one goes now."""
        assert dst.spec is not None
        try:
            node = self.ns.stat(dst)
        except FileNotFound:
            return
        if not node.is_dir:
            self.store.rm(dst.spec, [dst.path])

    def _move_stagings(self, name: str, src: str, dst: str) -> None:
        with self._lock:
            replaced = self._stagings.pop((name, dst), None)
            if replaced is not None:
                replaced.detached = True
            for key in list(self._stagings):
                if key[0] != name or not (key[1] == src or key[1].startswith(src + "/")):
                    continue
                st = self._stagings.pop(key)
                st.path = dst + key[1][len(src) :]
                self._stagings[st.key] = st
            self._served.clear()

    def chmod(self, path: str, mode: int) -> None:
        loc, st = self._attr_target(path)
        if st is not None:
            with st.lock:
                st.mode = statmod.S_IMODE(mode)
                st.ctime_ns = time.time_ns()
        self._store_attrs(loc, st, mode=mode)

    def utimens(self, path: str, times: tuple[int, int] | None) -> None:
        """Both times are stored (the atime too, though reads do not move it: the mount
        behaves as ``noatime``); UTIME_OMIT keeps one, UTIME_NOW takes the clock."""
        loc, st = self._attr_target(path)
        now = time.time_ns()
        atime, mtime = (
            (now if t == UTIME_NOW else None if t == UTIME_OMIT else t)
            for t in (times if times is not None else (UTIME_NOW, UTIME_NOW))
        )
        if atime is None and mtime is None:
            return
        if mtime is not None:
            self._dir_times.pop((loc.spec or "", loc.path), None)  # an explicit time wins
        if st is not None:
            with st.lock:
                st.ctime_ns = now
                if mtime is not None:
                    st.mtime_ns = mtime
                if atime is not None:
                    st.atime_ns = atime
                if st.dirty:  # the commit stores the mtime; the atime right after it
                    st.atime_unstored = atime is not None
                    return
        self._store_attrs(loc, st, mtime_ns=mtime, atime_ns=atime)

    def _store_attrs(self, loc: Location, st: Staging | None, **attrs: Any) -> None:
        """Store attributes on a head entry; a file still open and not yet committed has
        no entry, and keeps them on its staging until its commit."""
        try:
            self.store.set_attrs(loc.spec or "", loc.path, **attrs)
        except FileNotFound:
            if st is None:
                raise
        self.cache.forget(loc.spec or "", loc.path, dirs=False)

    def _attr_target(self, path: str) -> tuple[Location, Staging | None]:
        """chmod/utimens/chown targets: any head path, the dataset directory itself
        included, with the staging of the file if it is open for writing."""
        loc = self.locate(path)
        if self.read_only:
            raise ReadOnlyRef("the mount is read-only")
        self.ns.writable(loc)
        return loc, self._staging((loc.spec or "", loc.path)) if loc.path else None

    def chown(self, path: str, uid: int, gid: int, caller: Caller) -> None:
        """Stored like mode (SPEC 11), under the usual rules: root may give anything away;
        the owner may change the group to one of its own groups; -1 keeps a value."""
        loc, st = self._attr_target(path)
        attrs = self.getattr(path)
        now = (attrs["st_uid"], attrs["st_gid"])
        new = (now[0] if uid in KEEP_ID else uid, now[1] if gid in KEEP_ID else gid)
        if caller.uid != 0 and (
            caller.uid != now[0]
            or new[0] != now[0]
            or (new[1] != now[1] and new[1] not in caller.groups)
        ):
            raise _err(errno.EPERM, path)
        if new == now:
            return
        if st is not None:
            with st.lock:
                st.owner = new
                st.ctime_ns = time.time_ns()
        self._store_attrs(loc, st, owner=new)

    def link(self, target: str, source: str) -> None:
        raise _err(errno.ENOTSUP, "hard links are not supported")

    def symlink(self, path: str, target: str, creator: tuple[int, int] | None = None) -> None:
        """A symbolic link at ``path`` holding ``target`` (kept as text, never resolved
        here: the kernel follows links itself, through readlink)."""
        loc, name = self._head(path)
        if self._staging((name, loc.path)) is not None:
            raise _err(errno.EEXIST, path)
        owner, _ = self._new_owner(creator, path)
        self.store.symlink(name, loc.path, target, owner=owner)
        self._entries_changed(name, loc.path)

    def readlink(self, path: str) -> str:
        node = self.cache.stat(self.locate(path))
        if node.target is None:
            raise _err(errno.EINVAL, f"{path} is not a symbolic link")
        return node.target

    def shutdown(self) -> None:
        """Commit whatever is still open (an unmount with open files), drop temps, and
        flush every close: an unmounted head is durable."""
        for fh in list(self._handles):
            try:
                self.release(fh)
            except Exception:
                log.exception("could not commit an open file at unmount")
        self.settle()
