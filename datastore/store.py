"""The Store facade: the only thing views (CLI, API, mount, fsspec) call.

It validates every outside input at the boundary, then moves data one way: bytes into
objects, entries into staged rows, staged rows into manifest ranges, ranges into a
snapshot row, and names onto snapshots as tags. See docs/design.md for the format and
the write ordering this code keeps.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import stat as statmod
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from datastore import names
from datastore import rules as ds_rules
from datastore.catalog.core import Catalog, DatasetRow, SnapshotRow, TagEvent
from datastore.categories import categorize
from datastore.errors import (
    AmbiguousRef,
    Conflict,
    DatasetExists,
    DatasetNotFound,
    FileNotFound,
    InvalidRequest,
    PreconditionFailed,
    ReadOnlyRef,
    RefNotFound,
    StoreCorrupt,
    TagExists,
)
from datastore.maintenance.parts import Parts
from datastore.maintenance.retention import Dated, KeepRules, kept
from datastore.storage import arrow, delta
from datastore.storage.backend import LocalBackend
from datastore.storage.content import ContentStore, ImportBatch
from datastore.storage.locks import flock
from datastore.storage.manifest import (
    KIND_DIR,
    KIND_FILE,
    Entry,
    Manifest,
    ManifestStore,
    changes_table,
    encode_meta,
    join_path,
    link_entry,
    split_path,
    table_entries,
)
from datastore.storage.objects import (
    HEAD_BYTES,
    HasherFactory,
    ObjectId,
    ObjectStore,
    TempFile,
    default_hasher,
    fsync_dir,
    syncfs,
)
from datastore.storage.reader import ObjectReader, open_file, read_at
from datastore.times import parse_utc, utc_now

if TYPE_CHECKING:
    from datastore.catalog.access import Access

TagOutcome = Literal["created", "moved", "unchanged"]

FORMAT_NAME = "ds-store"
FORMAT_VERSION = 3
LINKS_FORMAT = 2  # the first version whose manifests may hold symbolic links
PACKS_FORMAT = 3  # the first version whose objects may be blobs in packs
DEFAULT_DIR_MODE = 0o755
DEFAULT_FILE_MODE = 0o644
# one import thread per core, at most 4: more threads only fight over the GIL (20,000
# small files on 2 cores: 4 threads 7.4 s wall and 4.9 s in the kernel, 2 threads 6.6 s
# and 3.0 s)
IMPORT_THREADS = min(4, os.cpu_count() or 2)
LOOKUP_LIMIT = 256  # exact-path puts up to this size look paths up instead of listing
IMPORT_BATCH = 32
log = logging.getLogger("ds.store")
FLUSH_ONE_BY_ONE = 16  # unflushed files a rename flushes with fsyncs; more take one syncfs

Progress = Callable[[int, int], None]


def default_store_path() -> Path:
    env = os.environ.get("DS_STORE")
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "ds"


def _no_progress(done: int, total: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Version:
    """A resolved ``name[@ref]``: the head when ``snapshot`` is None."""

    dataset: DatasetRow
    snapshot: str | None
    ref: str | None

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def label(self) -> str:
        return f"{self.name}@{self.snapshot}" if self.snapshot else self.name


@dataclass(frozen=True, slots=True)
class Snapshot:
    row: SnapshotRow
    dataset: str
    tags: list[str]


@dataclass(frozen=True, slots=True)
class Forgetting:
    """What ``forget`` dropped (or, on a dry run, would drop) and kept, newest first."""

    dataset: str
    forgotten: list[str]
    kept: list[str]
    dry_run: bool


@dataclass(frozen=True, slots=True)
class PutResult:
    added: list[str]
    modified: list[str]
    unchanged: int
    bytes_hashed: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, why), not stored


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    row: DatasetRow
    file_count: int
    size_bytes: int
    latest_snapshot: str | None
    tags: dict[str, str]
    dirty: bool


class Store:
    """A store root: objects, manifests, catalog, locks. Safe to share across threads."""

    def __init__(self, root: Path, hasher: HasherFactory = default_hasher) -> None:
        self.root = Path(root)
        self.objects = ObjectStore(self.root / "objects", hasher)
        self.ranges = LocalBackend(self.root / "manifests", suffix=".parquet")
        self.manifests = ManifestStore(self.ranges, hasher)
        self.catalog = Catalog(self.root / "catalog.db")
        self.packs = LocalBackend(self.root / "packs")
        self.content = ContentStore(
            self.objects, self.packs, self.catalog, self.root / "cache" / "objects"
        )
        self.locks = self.root / "locks"
        self.parts = Parts(self.objects, self.manifests, self.catalog, self.locks, self.content)
        self.format_version = FORMAT_VERSION  # what FORMAT says, once an existing store opens

    @classmethod
    def open(cls, root: str | Path | None = None, hasher: HasherFactory = default_hasher) -> Store:
        """Open a store, creating it on first use (the embedded default store needs no init)."""
        store = cls(Path(root) if root is not None else default_store_path(), hasher)
        store.init()
        return store

    def init(self) -> None:
        fmt = self.root / "FORMAT"
        if fmt.exists():
            self._check_format(fmt)
            # a copy that drops empty directories (git, some sync tools) loses the temp
            # and lock directories and unused object prefixes: make them again
            scratch = (self.objects.tmp, self.locks, *(b.root / "tmp" for b in self.backends))
            if not all(d.is_dir() for d in scratch):
                self._make_dirs()
            self.catalog.init()
            self._drop_lost_writes()
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._make_dirs()
        self.catalog.init()
        if not fmt.exists():
            self._write_format(fmt)

    def _drop_lost_writes(self) -> None:
        """After a power cut, a head file closed without a flush (noted in ``unsynced``)
        may name an object that never reached the disk, or reached it short. Its row goes
        and the path falls back to the base snapshot, as an unflushed write on a local
        disk is lost; nothing else can be lost this way (:meth:`_stage_files`). A live
        writer stores the object before its note commits, so no live write is dropped."""
        lost = [
            f
            for f in self.catalog.unsynced_files()
            if not self.content.has_size(f["object"], f["size"])
        ]
        if not lost:
            return
        with self.catalog.write() as db:
            for f in lost:
                self.catalog.unstage(db, f["dataset_id"], [(f["dir"], f["name"])])
            self.catalog.forget_unsynced(
                db, None, [(f["dataset_id"], f["dir"], f["name"]) for f in lost]
            )
        for f in lost:
            log.warning(
                "dropped %s from a head: closed without a flush, lost with its object %s",
                join_path(f["dir"], f["name"]),
                f["object"],
            )

    def settle(self) -> bool:
        """Make every file closed without a flush durable (one syncfs of the store's
        filesystem); True when there was any. The mount calls it every few seconds."""
        covered = self.catalog.unsynced_mark()
        if covered is None:
            return False
        self.objects.sync()
        with self.catalog.write() as db:
            self.catalog.forget_unsynced(db, covered)
        return True

    @property
    def backends(self) -> tuple[LocalBackend, ...]:
        return (self.packs, self.ranges)

    def _make_dirs(self) -> None:
        self.objects.init()
        for backend in self.backends:
            backend.init()
        self.locks.mkdir(exist_ok=True)

    def _write_format(self, fmt: Path) -> None:
        """``FORMAT`` last, and durably with every directory made before it: after a power
        cut a store is either not there yet (made again on the next open) or whole. A
        ``FORMAT`` renamed in without a flush can come back empty, and then nothing,
        ``ds fsck`` included, opens the store whose data is intact."""
        tmp = fmt.with_name(f"FORMAT.{uuid.uuid4().hex}.tmp")  # two openers may both write
        with open(tmp, "w") as f:
            f.write(json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, fmt)
        syncfs(self.root)  # the new directories, the catalog and the rename
        fsync_dir(self.root.parent)  # the store root's own entry

    def _check_format(self, fmt: Path) -> None:
        try:
            info = json.loads(fmt.read_text())
        except (OSError, ValueError) as exc:
            raise StoreCorrupt(f"{fmt} is unreadable: {exc}") from exc
        version = info.get("version", 0)
        if info.get("format") != FORMAT_NAME or not isinstance(version, int) or version < 1:
            raise StoreCorrupt(f"{fmt} does not describe a ds store: {info}")
        if version > FORMAT_VERSION:
            raise StoreCorrupt(f"{self.root} holds store format {info}, newer than this ds")
        self.format_version = version

    def close(self) -> None:
        self.catalog.close()

    def preload(self) -> None:
        """Import what reading manifests needs (pyarrow) now, for a long-lived view that
        would rather pay it at start than in its first listing (~1 s, cold)."""
        arrow.preload()

    # datasets ----------------------------------------------------------------

    def create_dataset(
        self, name: str, description: str = "", metadata: dict[str, Any] | None = None
    ) -> DatasetInfo:
        names.dataset_name(name)
        _check_metadata(metadata)
        now = utc_now()
        row = DatasetRow(
            id=uuid.uuid4().hex,
            name=name,
            description=description or "",
            metadata=metadata or {},
            rules={},
            root_mode=DEFAULT_DIR_MODE,
            created_at=now,
            updated_at=now,
            base=None,
        )
        with self.catalog.write() as db:
            if self.catalog.dataset(name, db) is not None:
                raise DatasetExists(f"dataset {name!r} already exists")
            self.catalog.insert_dataset(db, row)
        return self.info(name)

    def list_datasets(self) -> list[DatasetRow]:
        return self.catalog.datasets()

    def dataset(self, name: str) -> DatasetRow:
        return self.catalog.existing(name)

    def info(self, spec: str) -> DatasetInfo:
        version = self.resolve(spec)
        row = version.dataset
        manifest = self.manifest(version)
        latest = self._latest(row)
        dirty = version.snapshot is None and self._head_differs(row, manifest)
        return DatasetInfo(
            row=row,
            file_count=manifest.files,
            size_bytes=manifest.bytes,
            latest_snapshot=latest,
            tags=self.catalog.tags(row.id),
            dirty=dirty,
        )

    def update_dataset(
        self,
        name: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        rules: dict[str, Any] | None = None,
    ) -> DatasetInfo:
        self._writable(name)
        _check_metadata(metadata)
        fields: dict[str, Any] = {"updated_at": utc_now()}
        if description is not None:
            fields["description"] = description
        if metadata is not None:
            fields["metadata"] = metadata
        if rules is not None:
            fields["rules"] = ds_rules.normalize(rules)
        with self.catalog.write() as db:
            row = self._dataset_in(db, name)
            self.catalog.update_dataset(db, row.id, **fields)
        return self.info(name)

    def delete_dataset(self, name: str) -> None:
        self._writable(name)
        with self.catalog.write() as db:
            row = self._dataset_in(db, name)
            self.catalog.delete_dataset(db, row.id)

    # refs --------------------------------------------------------------------

    def resolve(self, spec: str) -> Version:
        """``name`` (the head) or ``name@ref`` (a snapshot), SPEC's ref rules in order."""
        name, ref = names.split_ref(spec)
        row = self.dataset(name)
        if ref is None:
            return Version(row, None, None)
        return Version(row, self._resolve_ref(row, ref), ref)

    def _resolve_ref(self, row: DatasetRow, ref: str) -> str:
        if ref == "latest":
            latest = self._latest(row)
            if latest is None:
                raise RefNotFound(f"dataset {row.name!r} has no snapshot yet")
            return latest
        tagged = self.catalog.tag(row.id, ref)
        if tagged is not None:
            return tagged
        when = names.parse_time_ref(ref)
        if when is not None:
            found = self.catalog.snapshot_at(row.id, when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            if found is None:
                raise RefNotFound(f"{row.name} has no snapshot at or before {ref}")
            return found
        if names.ID_PREFIX_RE.fullmatch(ref):
            hits = self.catalog.snapshots_by_prefix(row.id, ref)
            if len(hits) > 1:
                raise AmbiguousRef(f"{ref!r} matches more than one snapshot of {row.name}")
            if hits:
                return hits[0]
        hint = ""
        gone = self.catalog.forgotten(row.id, ref, 2) if names.ID_PREFIX_RE.fullmatch(ref) else []
        if len(gone) == 1:
            g = gone[0]
            raise RefNotFound(
                f"snapshot {g.id} of {row.name!r} was forgotten at {g.forgotten_at} by {g.by}"
            )
        if all(c in "0123456789abcdef" for c in ref) and len(ref) < 8:
            hint = " (a snapshot id prefix needs at least 8 hex characters)"
        raise RefNotFound(f"no tag or snapshot {ref!r} in dataset {row.name!r}{hint}")

    def manifest(self, version: Version) -> Manifest:
        """The manifest of a version; for the head, the base with staged changes laid on."""
        if version.snapshot is not None:
            return self.catalog.manifest(version.snapshot)
        return self._head_manifest(version.dataset)[0]

    def _base_manifest(self, base: str | None) -> Manifest:
        return self.catalog.manifest(base) if base else Manifest()

    def _head_manifest(self, row: DatasetRow) -> tuple[Manifest, int]:
        with self.catalog.read() as db:
            fresh = self.catalog.dataset(row.name, db)
            if fresh is None or fresh.id != row.id:
                raise DatasetNotFound(f"dataset {row.name!r} not found")
            staged = self.catalog.staged(row.id, db)
            base = self._base_manifest(fresh.base)
        if not staged:  # a clean head is its base; skip building an empty Arrow table
            return base, 0
        upto = max(r["seq"] for r in staged)
        noted = {
            (r["dir"], r["name"]): delta.prev_entry(r)
            for r in staged
            if fresh.base is not None and r["prev_base"] == fresh.base
        }
        return self.manifests.apply(base, changes_table(staged), noted), upto

    def _noting_base(self, row: DatasetRow, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows to stage, each noting the entry the base snapshot holds at its path, so a
        snapshot of a few changes lays them on as a delta without reading the base's
        ranges (a lookup now reads a range or two per change, mostly cached). More rows
        than a delta holds will be folded into the base anyway: nothing is noted."""
        if row.base is None or not rows:
            return rows
        base = self.catalog.manifest(row.base)
        if len(rows) > delta.compact_limit(base.base_rows):
            return rows
        found = self.manifests.entries(base, [(r["dir"], r["name"]) for r in rows])
        return [
            {**r, **delta.prev_columns(found.get((r["dir"], r["name"]))), "prev_base": row.base}
            for r in rows
        ]

    def _head_differs(self, row: DatasetRow, head: Manifest) -> bool:
        if not self.catalog.has_staged(row.id):
            return False
        return not self.manifests.same(self._base_manifest(row.base), head)

    def _latest(self, row: DatasetRow) -> str | None:
        return self.catalog.latest_snapshot(row.id)

    # reading -----------------------------------------------------------------

    def stat(self, spec: str, path: str) -> Entry:
        version = self.resolve(spec)
        entry = self._lookup(version, names.dir_path(path))
        if entry is None:
            raise FileNotFound(f"{path!r} not found in {spec}")
        return entry

    def _lookup(self, version: Version, path: str) -> Entry | None:
        if path == "":
            row = version.dataset
            return Entry("", KIND_DIR, None, 0, row.root_mode, row.root_mtime_ns, row.root_meta)
        if version.snapshot is None:
            d, n = split_path(path)
            staged = self.catalog.staged_entry(version.dataset.id, d, n)
            if staged is not None:
                return None if staged["deleted"] else Entry.from_row(staged)
            manifest = self._base_manifest(version.dataset.base)
        else:
            manifest = self.catalog.manifest(version.snapshot)
        return self.manifests.lookup(manifest, path)

    def ls(self, spec: str, path: str = "", recursive: bool = False) -> list[Entry]:
        """Entries below a directory (or the one file a path names)."""
        version = self.resolve(spec)
        path = names.dir_path(path)
        entry = self._lookup(version, path)
        if entry is None:
            raise FileNotFound(f"{path!r} not found in {spec}")
        if not entry.is_dir:
            return [entry]
        if version.snapshot is not None:
            manifest = self.catalog.manifest(version.snapshot)
            table = (
                self.manifests.list_tree(manifest, path)
                if recursive
                else self.manifests.list_dir(manifest, path)
            )
            return table_entries(table)
        return self._head_listing(version.dataset, path, recursive)

    def _head_listing(self, row: DatasetRow, path: str, recursive: bool) -> list[Entry]:
        base = self._base_manifest(row.base)
        if recursive:
            table = self.manifests.list_tree(base, path)
            staged = self.catalog.staged_tree(row.id, path)
        else:
            table = self.manifests.list_dir(base, path)
            staged = self.catalog.staged_dir(row.id, path)
        merged = {e.key: e for e in table_entries(table)}
        for s in staged:
            key = (s["dir"], s["name"])
            if s["deleted"]:
                merged.pop(key, None)
            else:
                merged[key] = Entry.from_row(s)
        return [merged[k] for k in sorted(merged)]

    def open_file(self, spec: str, path: str) -> BinaryIO:
        entry = self.stat(spec, path)
        return open_file(self.open_object(entry.file_object()))

    def open_object(self, oid: str, sequential: bool = False) -> ObjectReader:
        """Positional reads of one object, however it is stored; ``sequential`` tells the
        kernel the whole object will be read in order (more readahead)."""
        reader = self.content.reader(oid)
        if sequential:
            reader.advise_sequential()
        return reader

    def object_path(self, oid: str) -> Path:
        """A local file of an object's bytes, for readers that need a path (DuckDB)."""
        return self.content.local_file(oid)

    def object_count(self) -> int:
        """How many objects the store holds (a gauge for /metrics)."""
        return sum(1 for _ in self.objects.iter_ids()) + self.catalog.blob_count()

    def read_bytes(self, spec: str, path: str) -> bytes:
        with self.open_file(spec, path) as f:
            return f.read()

    # writing the head --------------------------------------------------------

    def _writable(self, spec: str) -> str:
        name, ref = names.split_ref(spec)
        if ref is not None:
            raise ReadOnlyRef(f"{spec} is a read-only version; write to {name}")
        return name

    def _dataset_in(self, db: Any, name: str) -> DatasetRow:
        row = self.catalog.dataset(name, db)
        if row is None:
            raise DatasetNotFound(f"dataset {name!r} not found")
        return row

    def put(
        self,
        spec: str,
        sources: Sequence[str | Path],
        to: str = "",
        progress: Progress = _no_progress,
        *,
        dests: Sequence[str] | None = None,
        follow_links: bool = False,
    ) -> PutResult:
        """Import files and directories (rsync ``SRC/ DIR/`` semantics) into the head.

        A symbolic link inside a directory is stored as a link (its target kept as text,
        never followed out of the tree); with ``follow_links`` what it points at is stored
        instead, as ``cp -L`` copies it. A source named directly is always followed.

        Files whose (size, mtime, inode) match the last import are not read again, and the
        whole batch is flushed with one syncfs before the catalog commit that makes it
        visible (SPEC promise 4 allows one fsync per batch). With ``dests`` (the inbox),
        each source is a file stored at the dataset path of the same position, and the
        import cache is skipped: inbox paths are reused by new files with recycled inodes.
        """
        name = self._writable(spec)
        row = self.dataset(name)
        to = names.dir_path(to)
        plan = (
            _plan_import(sources, to, follow_links)
            if dests is None
            else _plan_files(sources, dests)
        )
        rules = ds_rules.parse(row.rules)
        for _, dest, st in plan.files:
            ds_rules.check_size(rules, dest, st.st_size)
        cache = self.catalog.import_cache(row.id) if dests is None else {}
        current = self._touched(row, to, [dest for _, dest, _ in plan.files], dests is not None)
        staged_rows: list[dict[str, Any]] = []
        remembered: list[tuple[str, int, int, int, str]] = []
        added: list[str] = []
        modified: list[str] = []
        unchanged = 0
        hashed = 0
        total = len(plan.files)
        written: list[ObjectId] = []  # what this import stored, expired if it fails
        batch = self.content.batch()
        with (
            flock(self.locks / "gc.lock", exclusive=False),
            ThreadPoolExecutor(IMPORT_THREADS) as pool,
            _expire_on_failure(self.objects, written, batch),
        ):
            cached = self._cached_objects(cache, plan.files)
            misses = [item for item, oid in zip(plan.files, cached, strict=True) if oid is None]
            fresh = self._import_files(pool, batch, [src for src, _, _ in misses], written)
            for i, ((src, dest, st), known) in enumerate(zip(plan.files, cached, strict=True)):
                if known is None:
                    oid, read, head = next(fresh)
                    hashed += read
                    remembered.append((src, st.st_size, st.st_mtime_ns, st.st_ino, oid))
                else:
                    oid, head = known, None
                old = current.get(dest)
                mode = statmod.S_IMODE(st.st_mode)
                if old is not None and old.object == oid and old.mode == mode:
                    unchanged += 1
                else:
                    if old is not None and old.is_file:
                        meta = old.meta
                    elif head is not None:
                        meta = encode_meta({"category": categorize(dest, head)})
                    else:
                        meta = self._file_meta(dest, oid)
                    entry = Entry(dest, KIND_FILE, oid, st.st_size, mode, st.st_mtime_ns, meta)
                    staged_rows.append({**entry.row(), "deleted": False})
                    (modified if old is not None else added).append(dest)
                if total and (i % 256 == 0 or i == total - 1):
                    progress(i + 1, total)
            for _, dest, target, st in plan.links:
                old = current.get(dest)
                if old is not None and old.is_link and old.target == target:
                    unchanged += 1
                    continue
                entry = link_entry(dest, target, st.st_mtime_ns)
                staged_rows.append({**entry.row(), "deleted": False})
                (modified if old is not None else added).append(dest)
            dirs = plan.dirs | _ancestors([r for r in added], to)
            staged_rows.extend(self._new_dirs(row, dirs, current))
            self._check_shapes(row, staged_rows, current)
            _check_rules(rules, staged_rows)
            staged_rows = self._noting_base(row, staged_rows)
            batch.finish()
            if misses:  # objects known from earlier imports were flushed by those imports
                self.objects.sync()  # loose objects and packs: one filesystem
            if plan.links:
                self._require_format(LINKS_FORMAT)
            if batch.refs or batch.chunked:
                self._require_format(PACKS_FORMAT)
            with self.catalog.write() as db:
                self._dataset_in(db, name)
                self.catalog.add_blobs(db, batch.packs, batch.refs, batch.repaired, batch.chunked)
                if staged_rows:
                    self.catalog.stage(db, row.id, staged_rows)
                    self.catalog.update_dataset(db, row.id, updated_at=utc_now())
                if dests is None:
                    self.catalog.remember_imports(db, row.id, remembered)
        return PutResult(added, modified, unchanged, hashed, plan.skipped)

    def _touched(self, row: DatasetRow, to: str, paths: list[str], exact: bool) -> dict[str, Entry]:
        """The head entries a put may replace: the whole tree below ``to``, or, for a small
        batch of exact paths (the inbox), just those paths and their directories, so a few
        files dropped into a million-file dataset do not list all of it."""
        if not exact or len(paths) > LOOKUP_LIMIT:
            return {e.path: e for e in self._head_listing(row, to, True)}
        head = Version(row, None, None)
        found = {p: self._lookup(head, p) for p in {*paths, *_ancestors(paths, "")}}
        return {p: e for p, e in found.items() if e is not None}

    def _import_files(
        self,
        pool: ThreadPoolExecutor,
        batch: ImportBatch,
        sources: list[str],
        written: list[ObjectId],
    ) -> Iterator[tuple[ObjectId, int, bytes]]:
        """Store files on the pool in batches: one future per small file cost more main-thread
        time than the import itself (20,000 files: ~1 s of futures and locks). Each stored
        object is noted in ``written`` as it lands."""

        def store(srcs: list[str]) -> list[tuple[ObjectId, int, bytes]]:
            done = []
            for src in srcs:
                done.append(batch.import_file(src))
                written.append(done[-1][0])
            return done

        step = IMPORT_BATCH
        batches = [sources[i : i + step] for i in range(0, len(sources), step)]
        for done in pool.map(store, batches):
            yield from done

    def _cached_objects(
        self, cache: dict[str, tuple[int, int, int, str]], files: list[_Planned]
    ) -> list[ObjectId | None]:
        """Each file's object as the last import stored it, where its (size, mtime,
        inode) still match and the object is still stored with that size; None: read it
        again (a damaged object is then repaired by the intact bytes)."""
        hits: dict[int, str] = {}
        for i, (src, _, st) in enumerate(files):
            known = cache.get(src)
            if known is not None and known[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                hits[i] = known[3]
        stored = self.content.has({oid: files[i][2].st_size for i, oid in hits.items()})
        return [ObjectId(hits[i]) if hits.get(i) in stored else None for i in range(len(files))]

    def _file_meta(self, path: str, oid: str, info: dict[str, Any] | None = None) -> str:
        with self.content.reader(oid) as f:
            head = read_at(f, HEAD_BYTES, 0)
        return encode_meta({**(info or {}), "category": categorize(path, head)})

    def _new_dirs(
        self, row: DatasetRow, dirs: Iterable[str], current: dict[str, Entry] | None = None
    ) -> list[dict[str, Any]]:
        """Explicit directory entries for every directory the head does not have yet."""
        out = []
        now = time.time_ns()
        for d in sorted(dirs):
            if not d:
                continue
            existing = current.get(d) if current is not None else None
            if existing is None:
                existing = self._lookup(Version(row, None, None), d)
            if existing is None:
                entry = Entry(d, KIND_DIR, None, 0, DEFAULT_DIR_MODE, now, "")
                out.append({**entry.row(), "deleted": False})
            elif not existing.is_dir:
                raise Conflict(f"{d!r} is a file in {row.name}, not a directory")
        return out

    @staticmethod
    def _check_shapes(
        row: DatasetRow, rows: list[dict[str, Any]], current: dict[str, Entry]
    ) -> None:
        """A file or link may not replace a directory by a plain write; ``current`` holds
        what the head has at each path written (looked up by the caller)."""
        for r in rows:
            if r["kind"] == KIND_DIR or r.get("deleted"):
                continue
            old = current.get(join_path(r["dir"], r["name"]))
            if old is not None and old.is_dir:
                raise Conflict(f"{old.path!r} is a directory in {row.name}")

    def put_stream(
        self,
        spec: str,
        path: str,
        chunks: Iterable[bytes],
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: int = DEFAULT_FILE_MODE,
        mtime_ns: int | None = None,
        if_absent: bool = False,
        max_bytes: int | None = None,
        before_commit: Callable[[str, str], None] | None = None,
    ) -> tuple[Entry, bool]:
        """Stream one file into the head, durably; returns (entry, created).

        ``before_commit(path, category)`` lets a caller refuse the file (a type rule) after
        its category is known and before anything becomes visible.
        """
        name = self._writable(spec)
        path = names.file_path(path)
        _check_metadata(metadata)
        row = self.dataset(name)
        if if_absent and self._lookup(Version(row, None, None), path) is not None:
            raise PreconditionFailed(f"{path!r} already exists in {name}")
        limit = ds_rules.parse(row.rules).max_bytes
        if limit is not None and (max_bytes is None or limit < max_bytes):
            max_bytes = limit  # the dataset's rule, enforced while streaming
        with flock(self.locks / "gc.lock", exclusive=False):
            oid, size = self.objects.put_stream(chunks, max_bytes=max_bytes)
            return self._stage_files(
                name,
                [_NewFile(path, oid, size, mode, mtime_ns)],
                description,
                metadata,
                if_absent,
                before_commit,
            )[0]

    def put_bytes(self, spec: str, path: str, data: bytes, **kwargs: Any) -> tuple[Entry, bool]:
        return self.put_stream(spec, path, [data], **kwargs)

    def put_file_at(
        self,
        spec: str,
        path: str,
        src: Path,
        *,
        mode: int = DEFAULT_FILE_MODE,
        mtime_ns: int | None = None,
        adopt: bool = False,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        owner: tuple[int, int] | None = None,
        durable: bool = True,
    ) -> Entry:
        """Store a finished local file as ``path``; ``adopt`` moves a temp file in (no copy).
        ``owner`` (uid, gid) is stored as chown stores it; None keeps the file's.

        The mount uses this on close: ``adopt`` for a file it wrote under
        :meth:`open_temp`, a copy while the file may still be written, and
        ``durable=False``: nothing is flushed, so the file survives the process being
        killed but not a power cut until :meth:`settle`, a snapshot or an fsync covers it
        (see :meth:`_stage_files` for the one case that flushes anyway).
        """
        name = self._writable(spec)
        path = names.file_path(path)
        _check_metadata(metadata)
        with flock(self.locks / "gc.lock", exclusive=False):
            if adopt:
                oid, size = self.objects.adopt(src, durable=durable)
            else:
                oid, size = self.objects.put_file(src, durable=durable)
            new = _NewFile(path, oid, size, mode, mtime_ns, owner)
            return self._stage_files(name, [new], description, metadata, durable=durable)[0][0]

    def put_object_at(self, spec: str, path: str, oid: str) -> Entry:
        """Stage an object the store already holds as ``path`` (a copy within the store:
        no byte is read or written). It is flushed first, as a deduplicating write is:
        a close through the mount may have stored it without a flush."""
        name = self._writable(spec)
        path = names.file_path(path)
        with flock(self.locks / "gc.lock", exclusive=False):
            with self.open_object(oid) as reader:
                size = reader.size
            self.content.flush(oid)
            new = _NewFile(path, ObjectId(oid), size, DEFAULT_FILE_MODE, None)
            return self._stage_files(name, [new], None, None)[0][0]

    def adopt_files(
        self,
        spec: str,
        files: Sequence[tuple[str, Path]],
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[Entry]:
        """Move finished temp files (from :meth:`open_temp`) in as ``(path, temp)`` pairs,
        all or nothing: every file is checked against the rules before one transaction
        stages them all (a multipart upload is one batch, SPEC promise 5)."""
        name = self._writable(spec)
        paths = [names.file_path(path) for path, _ in files]
        if len(set(paths)) != len(paths):
            raise InvalidRequest("two files go to the same path")
        _check_metadata(metadata)
        self.dataset(name)
        written: list[ObjectId] = []
        with (
            flock(self.locks / "gc.lock", exclusive=False),
            _expire_on_failure(self.objects, written),
        ):
            new = []
            for path, (_, src) in zip(paths, files, strict=True):
                oid, size = self.objects.adopt(src)
                written.append(oid)
                new.append(_NewFile(path, oid, size, DEFAULT_FILE_MODE, None))
            return [e for e, _ in self._stage_files(name, new, description, metadata)]

    def open_temp(self) -> TempFile:
        """A scratch file on the store's filesystem that gc leaves alone while it is open.

        Write it, hand ``temp.path`` to :meth:`put_file_at` with ``adopt=True`` (no copy),
        and only then close it; :meth:`TempFile.discard` drops it.
        """
        return self.objects.open_temp()

    def _stage_files(
        self,
        name: str,
        files: Sequence[_NewFile],
        description: str | None,
        metadata: dict[str, Any] | None,
        if_absent: bool = False,
        before_commit: Callable[[str, str], None] | None = None,
        durable: bool = True,
    ) -> list[tuple[Entry, bool]]:
        """Stage stored objects as head files in one transaction, after every file has
        passed the dataset's rules (and ``before_commit``); returns (entry, created).

        ``durable=False``: the objects were stored unflushed and the commit flushes
        nothing; each file is noted in ``unsynced`` so that, after a power cut, an
        object that never reached the disk takes its row with it (:meth:`init`); see
        :meth:`_note_unsynced` for the case that flushes instead."""
        row = self.dataset(name)
        head = Version(row, None, None)
        rules = ds_rules.parse(row.rules)
        rows: list[dict[str, Any]] = []
        out: list[tuple[Entry, Entry | None]] = []
        for f in files:
            old = self._lookup(head, f.path)
            info = old.info if old is not None and old.is_file else {}
            if description is not None:
                info["description"] = description
            if metadata is not None:
                info["metadata"] = metadata
            if f.owner is not None:
                info["uid"], info["gid"] = f.owner
            meta = self._file_meta(f.path, f.object, info)
            category = json.loads(meta)["category"]
            ds_rules.check(rules, f.path, f.size, category)
            if before_commit is not None:
                before_commit(f.path, category)
            mtime = f.mtime_ns or time.time_ns()
            entry = Entry(f.path, KIND_FILE, f.object, f.size, f.mode, mtime, meta)
            rows.append({**entry.row(), "deleted": False})
            out.append((entry, old))
        rows.extend(self._new_dirs(row, _ancestors([f.path for f in files], "")))
        self._check_shapes(row, rows, {e.path: old for e, old in out if old is not None})
        rows = self._noting_base(row, rows)
        with self.catalog.write(durable=durable) as db:
            self._dataset_in(db, name)
            for entry, old in out if if_absent else ():
                current = self.catalog.staged_entry(row.id, *split_path(entry.path))
                if (old is not None) if current is None else not current["deleted"]:
                    raise PreconditionFailed(f"{entry.path!r} already exists in {name}")
            if not durable:
                self._note_unsynced(db, row, [e for e, _ in out])
            self.catalog.stage(db, row.id, rows)
            self.catalog.update_dataset(db, row.id, updated_at=utc_now())
        return [(entry, old is None) for entry, old in out]

    def _note_unsynced(self, db: Any, row: DatasetRow, entries: Sequence[Entry]) -> None:
        """Note unflushed files in ``unsynced``, or, where one replaces a durably written
        staged row, flush the objects instead: then whichever row a power cut leaves, the
        old or the new, names a whole object, and there is nothing to note."""
        keys = [split_path(e.path) for e in entries]
        if any(self.catalog.holds_durable(db, row.id, *k) for k in keys):
            for e in entries:
                assert e.object is not None
                self.content.flush(e.object)
            self.catalog.forget_unsynced(db, None, [(row.id, *k) for k in keys])
            return
        notes = [(*k, e.object or "", e.size) for k, e in zip(keys, entries, strict=True)]
        self.catalog.mark_unsynced(db, row.id, notes)

    def rm(self, spec: str, paths: Sequence[str]) -> list[str]:
        """Remove files or whole directories from the head; all paths must exist."""
        name = self._writable(spec)
        row = self.dataset(name)
        head = Version(row, None, None)
        removed: list[Entry] = []
        for path in paths:
            path = names.file_path(path.strip("/"))
            entry = self._lookup(head, path)
            if entry is None:
                raise FileNotFound(f"{path!r} not found in {name}")
            removed.append(entry)
            if entry.is_dir:
                removed.extend(self._head_listing(row, path, True))
        changes = self._head_changes(row, [{**e.row(), "deleted": True} for e in removed])
        with self.catalog.write() as db:
            self._dataset_in(db, name)
            self._stage_changes(db, row, changes)
            self.catalog.update_dataset(db, row.id, updated_at=utc_now())
        return [e.path for e in removed if not e.is_dir]

    def rename(self, spec: str, src: str, dst: str) -> None:
        """Move a file or directory within one head; replaces a file or empty dir at ``dst``."""
        name = self._writable(spec)
        src, dst = names.file_path(src), names.file_path(dst)
        row = self.dataset(name)
        head = Version(row, None, None)
        entry = self._lookup(head, src)
        if entry is None:
            raise FileNotFound(f"{src!r} not found in {name}")
        if dst == src:
            return
        if dst.startswith(src + "/"):
            raise InvalidRequest(f"cannot move {src!r} into itself")
        target = self._lookup(head, dst)
        rows: list[dict[str, Any]] = []
        if target is not None:
            if target.is_dir != entry.is_dir:
                raise Conflict(f"{dst!r} exists and is not the same kind as {src!r}")
            if target.is_dir and self._head_listing(row, dst, False):
                raise Conflict(f"directory {dst!r} is not empty")
        moving = [entry] + (self._head_listing(row, src, True) if entry.is_dir else [])
        for e in moving:
            rows.append({**e.row(), "deleted": True})
            new_path = dst + e.path[len(src) :]
            meta = _with_info(e.meta, ctime_ns=time.time_ns()) if e is entry else e.meta
            rows.append({**replace(e, path=new_path, meta=meta).row(), "deleted": False})
        rows.extend(self._new_dirs(row, _ancestors([dst], "")))
        changes = self._head_changes(row, _last_wins(rows))
        # a moved file is durable under its new name: the rename commits durably, and a
        # file closed unflushed under the old one would otherwise point at an object a
        # power cut may take (rename-over-after-write must keep the old or the new file)
        unsynced = self.catalog.unsynced_in(row.id, [split_path(e.path) for e in moving])
        if len(unsynced) > FLUSH_ONE_BY_ONE:
            self.objects.sync()  # a directory of fresh files: one syncfs, not an fsync each
        else:
            for _, _, oid in unsynced:
                self.content.flush(oid)
        with self.catalog.write() as db:
            self._dataset_in(db, name)
            self._stage_changes(db, row, changes)
            self.catalog.forget_unsynced(db, None, [(row.id, d, n) for d, n, _ in unsynced])
            self.catalog.update_dataset(db, row.id, updated_at=utc_now())

    def _head_changes(self, row: DatasetRow, rows: list[dict[str, Any]]) -> _HeadChanges:
        """Rows to stage, except the removal of a path the base snapshot does not hold:
        that only drops the staged row, so a head whose additions were all removed again
        is clean, with no tombstone to list past. Worked out before the write transaction,
        so reading the base's ranges never holds the catalog's write lock."""
        gone = [(r["dir"], r["name"]) for r in rows if r["deleted"]]
        needless = self._not_in_base(row, gone)
        keep = [r for r in rows if not (r["deleted"] and (r["dir"], r["name"]) in needless)]
        return _HeadChanges(sorted(needless), self._noting_base(row, keep))

    def _stage_changes(self, db: Any, row: DatasetRow, changes: _HeadChanges) -> None:
        self.catalog.unstage(db, row.id, changes.unstage)
        self.catalog.stage(db, row.id, changes.stage)

    def _not_in_base(self, row: DatasetRow, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``keys`` the base snapshot does not hold (looked up when few; a large
        removal under a base keeps its tombstones, which are correct, just not minimal)."""
        if not keys:
            return set()
        if row.base is None:
            return set(keys)
        if len(keys) > LOOKUP_LIMIT:
            return set()
        base = self.catalog.manifest(row.base)
        return {k for k in keys if self.manifests.lookup(base, join_path(*k)) is None}

    def mkdir(
        self,
        spec: str,
        path: str,
        mode: int = DEFAULT_DIR_MODE,
        owner: tuple[int, int] | None = None,
    ) -> Entry:
        """An explicit directory; ``owner`` (uid, gid) is stored as chown would store it."""
        path = names.file_path(path)
        meta = _with_info("", owner)
        return self._add_entry(spec, Entry(path, KIND_DIR, None, 0, mode, time.time_ns(), meta))

    def symlink(
        self, spec: str, path: str, target: str, owner: tuple[int, int] | None = None
    ) -> Entry:
        """A symbolic link at ``path`` to ``target``. The store keeps the text and never
        follows it: reads, checkouts and downloads see a link, not what it points at."""
        path, target = names.file_path(path), names.link_target(target)
        return self._add_entry(
            spec, link_entry(path, target, time.time_ns(), _with_info("", owner))
        )

    def _add_entry(self, spec: str, entry: Entry) -> Entry:
        """Stage a new directory or link (with any missing parent) where nothing is yet."""
        name = self._writable(spec)
        row = self.dataset(name)
        if self._lookup(Version(row, None, None), entry.path) is not None:
            raise Conflict(f"{entry.path!r} already exists in {name}")
        rows = [
            {**entry.row(), "deleted": False},
            *self._new_dirs(row, _ancestors([entry.path], "")),
        ]
        if entry.is_link:
            self._require_format(LINKS_FORMAT)
        rows = self._noting_base(row, rows)
        with self.catalog.write() as db:
            self._dataset_in(db, name)
            self.catalog.stage(db, row.id, rows)
        return entry

    def _require_format(self, version: int) -> None:
        """A store of an older format is rewritten as the current one before it holds the
        first thing the older format lacks (a link: 2; a packed object: 3), so a ds too
        old to know it refuses the store instead of misreading it (a link as a file, a
        packed object as missing)."""
        if self.format_version < version:
            self._write_format(self.root / "FORMAT")
            self.format_version = FORMAT_VERSION

    def rmdir(self, spec: str, path: str) -> None:
        name = self._writable(spec)
        path = names.file_path(path)
        row = self.dataset(name)
        entry = self._lookup(Version(row, None, None), path)
        if entry is None:
            raise FileNotFound(f"{path!r} not found in {name}")
        if not entry.is_dir:
            raise Conflict(f"{path!r} is not a directory")
        if self._head_listing(row, path, False):
            raise Conflict(f"directory {path!r} is not empty")
        changes = self._head_changes(row, [{**entry.row(), "deleted": True}])
        with self.catalog.write() as db:
            self._dataset_in(db, name)  # a concurrent delete must not leave orphan rows
            self._stage_changes(db, row, changes)

    def set_attrs(
        self,
        spec: str,
        path: str,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        owner: tuple[int, int] | None = None,
        atime_ns: int | None = None,
    ) -> Entry:
        """chmod, utimens and chown on a head entry (or the dataset root when ``path`` is
        ''). Who may change what is the view's rule (the mount checks the caller). Any
        change sets the entry's ctime, as on a local filesystem."""
        name = self._writable(spec)
        path = names.dir_path(path)
        row = self.dataset(name)
        if mode is None and mtime_ns is None and owner is None and atime_ns is None:
            return self.stat(name, path)
        stamps = {"ctime_ns": time.time_ns(), "atime_ns": atime_ns}
        if path == "":
            fields: dict[str, Any] = {"root_meta": _with_info(row.root_meta, owner, **stamps)}
            if mode is not None:
                fields["root_mode"] = statmod.S_IMODE(mode)
            if mtime_ns is not None:
                fields["root_mtime_ns"] = mtime_ns
            with self.catalog.write() as db:
                self._dataset_in(db, name)
                self.catalog.update_dataset(db, row.id, **fields)
            return self.stat(name, "")
        entry = self._lookup(Version(row, None, None), path)
        if entry is None:
            raise FileNotFound(f"{path!r} not found in {name}")
        changed = replace(
            entry,
            mode=statmod.S_IMODE(mode) if mode is not None else entry.mode,
            mtime_ns=mtime_ns if mtime_ns is not None else entry.mtime_ns,
            meta=_with_info(entry.meta, owner, **stamps),
        )
        rows = self._noting_base(row, [{**changed.row(), "deleted": False}])
        with self.catalog.write() as db:
            self._dataset_in(db, name)  # a concurrent delete must not leave orphan rows
            self.catalog.stage(db, row.id, rows)
        return changed

    # snapshots ---------------------------------------------------------------

    def snapshot(
        self,
        spec: str,
        tag: str | None = None,
        message: str = "",
        sources: Sequence[str] = (),
        author: str | None = None,
    ) -> tuple[Snapshot, bool]:
        """Freeze the head; returns (snapshot, created). A clean head makes no new one,
        unless ``sources`` are named: the same content derived from new upstream versions
        is a new version of its lineage.

        Order: ranges written and flushed, then one transaction inserts the snapshot,
        moves the base, clears exactly the staged rows it captured and creates the tag.
        Rows staged while it ran keep a higher sequence number and stay staged.
        """
        name = self._writable(spec)
        row = self.dataset(name)
        if tag is not None:
            names.tag_name(tag)
        resolved_sources = [self._source(s) for s in sources]
        who = author or _os_user()
        with flock(self.locks / f"dataset-{row.id}.lock", exclusive=True):
            row = self.dataset(name)
            if tag is not None and self.catalog.tag(row.id, tag) is not None:
                raise TagExists(f"tag {tag!r} already exists in {name}")
            head, upto = self._head_manifest(row)
            base = self._base_manifest(row.base)
            if not resolved_sources and row.base and self.manifests.same(base, head):
                return self._clean_snapshot(row, tag, upto, who), False
            with flock(self.locks / "gc.lock", exclusive=False):
                written = self.manifests.write_all(head, durable=False)
                covered = self.catalog.unsynced_mark()
                self.manifests.sync()  # one syncfs: the ranges and every unflushed object
                snap = SnapshotRow(
                    id=uuid.uuid4().hex,
                    dataset_id=row.id,
                    parent=row.base,
                    created_at=utc_now(),
                    message=message or "",
                    author=who,
                    sources=resolved_sources,
                    file_count=written.files,
                    size_bytes=written.bytes,
                )
                with self.catalog.write() as db:
                    current = self._dataset_in(db, name)
                    if current.id != row.id or current.base != row.base:
                        raise Conflict(f"{name} changed while the snapshot was taken; retry")
                    self.catalog.insert_snapshot(db, snap, written)
                    self.catalog.update_dataset(db, row.id, base=snap.id)
                    self.catalog.clear_staged(db, row.id, upto)
                    self.catalog.forget_unsynced(db, covered)
                    if tag is not None and not self.catalog.set_tag(
                        db, row.id, tag, snap.id, None, snap.created_at, who
                    ):
                        raise TagExists(f"tag {tag!r} already exists in {name}")
        self.catalog.release_free_pages()
        return Snapshot(snap, name, [tag] if tag else []), True

    def _clean_snapshot(self, row: DatasetRow, tag: str | None, upto: int, who: str) -> Snapshot:
        latest = self._latest(row) or ""
        with self.catalog.write() as db:
            self.catalog.clear_staged(db, row.id, upto)
            if tag is not None and not self.catalog.set_tag(
                db, row.id, tag, latest, None, utc_now(), who
            ):
                raise TagExists(f"tag {tag!r} already exists in {row.name}")
        return self.get_snapshot(row.name, latest)

    def _source(self, spec: str) -> dict[str, str]:
        version = self.resolve(spec)
        if version.snapshot is None:
            raise InvalidRequest(f"source {spec!r} must name a version: NAME@REF")
        return {"dataset": version.name, "snapshot": version.snapshot}

    def get_snapshot(self, name: str, ref: str) -> Snapshot:
        version = self.resolve(f"{name}@{ref}")
        assert version.snapshot is not None
        row = self.catalog.snapshot(version.snapshot)
        if row is None:
            raise RefNotFound(f"snapshot {ref!r} not found in {name}")
        return Snapshot(row, name, self.catalog.tags_of(row.id))

    def log(
        self, name: str, limit: int | None = None, since: datetime | None = None
    ) -> list[Snapshot]:
        """Snapshots, newest first: at most ``limit``, none taken before ``since``."""
        row = self.dataset(names.split_ref(name)[0])
        if limit is not None and limit < 0:
            raise InvalidRequest("a log limit must not be negative")
        tags: dict[str, list[str]] = {}
        for tag, sid in self.catalog.tags(row.id).items():
            tags.setdefault(sid, []).append(tag)
        snaps = self.catalog.snapshots(row.id)
        if since is not None:
            snaps = [s for s in snaps if parse_utc(s.created_at) >= since]
        return [Snapshot(s, row.name, tags.get(s.id, [])) for s in snaps[:limit]]

    # tags --------------------------------------------------------------------

    def tag(
        self, name: str, ref: str, tag: str, force: bool = False, by: str | None = None
    ) -> tuple[str, TagOutcome]:
        """Point ``tag`` at ``ref``; returns (snapshot id, "created" | "moved" |
        "unchanged"). Moves need ``force``."""
        names.tag_name(tag)
        version = self.resolve(f"{names.dataset_name(name)}@{names.ref_text(ref)}")
        if version.snapshot is None:
            raise InvalidRequest(f"{ref!r} is the head; a tag names a snapshot")
        row = version.dataset
        who = by or _os_user()
        current = self.catalog.tag(row.id, tag)
        if current == version.snapshot:
            return current, "unchanged"
        if current is not None and not force:
            raise TagExists(f"tag {tag!r} already points at {current}; use force to move it")
        with self.catalog.write() as db:
            if not self.catalog.set_tag(db, row.id, tag, version.snapshot, current, utc_now(), who):
                raise Conflict(f"tag {tag!r} moved concurrently; retry")
        return version.snapshot, "created" if current is None else "moved"

    def untag(self, name: str, tag: str, by: str | None = None) -> None:
        """Remove a tag; its history keeps every move, the removal included (SPEC 11)."""
        row = self.dataset(name)
        names.tag_name(tag)
        with self.catalog.write() as db:
            if not self.catalog.delete_tag(db, row.id, tag, utc_now(), by or _os_user()):
                raise RefNotFound(f"no tag {tag!r} in {name}")

    def tag_history(self, name: str, tag: str) -> tuple[str | None, list[TagEvent]]:
        """Where ``tag`` points now (None once removed) and every move it made."""
        row = self.dataset(name)
        names.tag_name(tag)
        current = self.catalog.tag(row.id, tag)
        history = self.catalog.tag_history(row.id, tag)
        if current is None and not history:
            raise RefNotFound(f"no tag {tag!r} in {name}")
        return current, history

    # forgetting ----------------------------------------------------------------

    def forget(
        self,
        name: str,
        refs: Sequence[str] = (),
        rules: KeepRules | None = None,
        dry_run: bool = False,
        by: str | None = None,
    ) -> Forgetting:
        """Drop the named snapshots and, when keep rules are given, every snapshot no rule
        keeps. A tagged snapshot goes only when named (its tags go with it, kept in their
        history); the head's base always stays. gc then reclaims what only they held."""
        rules = rules or KeepRules()
        name = names.dataset_name(self._writable(name))
        if not refs and not rules.given():
            raise InvalidRequest("name the snapshots to forget or give a keep rule")
        with self.catalog.write() as db:
            row = self._dataset_in(db, name)
            named = {self._forget_ref(row, ref) for ref in refs}
            if row.base in named:
                raise Conflict(
                    f"snapshot {row.base} is the base of {row.name}'s head and cannot be"
                    " forgotten; snapshot the head first"
                )
            snaps = self.catalog.snapshots(row.id)
            drop = set(named)
            if rules.given():
                dated = [Dated(s.id, parse_utc(s.created_at)) for s in snaps]
                keep = kept(dated, rules) | set(self.catalog.tags(row.id).values())
                keep.add(row.base or "")
                drop |= {s.id for s in snaps if s.id not in keep}
            forgotten = [s.id for s in snaps if s.id in drop]
            if not dry_run and forgotten:
                self.catalog.forget_snapshots(db, row.id, forgotten, utc_now(), by or _os_user())
        return Forgetting(row.name, forgotten, [s.id for s in snaps if s.id not in drop], dry_run)

    def _forget_ref(self, row: DatasetRow, ref: str) -> str:
        names.ref_text(ref)
        if ref == names.HEAD_REF:
            raise InvalidRequest("the head is not a snapshot; name snapshots to forget")
        return self._resolve_ref(row, ref)

    def lineage(
        self, spec: str, visible: Callable[[DatasetRow], bool] = lambda row: True
    ) -> dict[str, Any]:
        """Parents of a version (the latest snapshot for a head), its upstream sources,
        and the datasets ``visible`` admits that were built from this one."""
        from datastore.catalog.lineage import lineage

        version = self.resolve(spec)
        return lineage(self.catalog, version.dataset, version.snapshot, visible)

    # comparing, materializing -------------------------------------------------

    def diff(self, a: str, b: str | None = None) -> dict[str, Any]:
        """Files added, removed, modified and renamed from version ``a`` to ``b`` (or head)."""
        from datastore.maintenance.diff import diff_manifests

        va = self.resolve(a)
        vb = self.resolve(b if b is not None else va.name)
        result = diff_manifests(self.manifests, self.manifest(va), self.manifest(vb))
        return {"from": va.label, "to": vb.label, **result}

    def status(self, name: str) -> dict[str, Any]:
        row = self.dataset(self._writable(name))
        from datastore.maintenance.diff import diff_manifests

        base = self._base_manifest(row.base)
        head = self._head_manifest(row)[0]
        changes = diff_manifests(self.manifests, base, head)
        staged = {
            "added": [e["path"] for e in changes["added"]],
            "modified": [e["path"] for e in changes["modified"]],
            "removed": [e["path"] for e in changes["removed"]],
            "renamed": [{"from": e["from"], "to": e["to"]} for e in changes["renamed"]],
        }
        dirty = not self.manifests.same(base, head)
        return {"dataset": row.name, "base": row.base, "dirty": dirty, "staged": staged}

    def entries(self, spec: str) -> list[Entry]:
        """Every entry of a version, in manifest order."""
        version = self.resolve(spec)
        out: list[Entry] = []
        for table in self.manifests.iter_tables(self.manifest(version)):
            out.extend(table_entries(table))
        return out

    def checkout(
        self,
        spec: str,
        dest: str | Path,
        progress: Progress = _no_progress,
        *,
        link: bool = False,
    ) -> int:
        """Write version ``spec`` under ``dest`` as plain files: reflink, else copy.

        ``link=True`` hard-links the stored objects instead (fast, no space), which is only
        safe while nothing writes through the links: a write changes the stored object.
        """
        from datastore.maintenance.checkout import materialize

        version = self.resolve(spec)
        return materialize(self.parts, self.manifest(version), Path(dest), progress, link)

    def head_changes(self, since: int) -> tuple[int, list[tuple[str, str, str | None]]]:
        """(counter, [(dataset, path, kind)]) of head entries staged after counter
        ``since``; the kind is the entry's (a removal's too), None for a change dropped
        again (it may have been anything).

        For views that cache what they show (the mount's kernel cache): poll with the last
        counter, refresh the paths returned. A snapshot can clear rows before a poll sees
        them; such a view also compares each dataset's ``base`` (the content is the same,
        but a path it never saw may have changed in between).
        """
        with self.catalog.read():
            counter = self.catalog.staged_seq()
            if counter == since:
                return counter, []
            rows = self.catalog.staged_after(since)
        return counter, [(name, join_path(d, n), kind) for name, d, n, kind in rows]

    def physical_bytes(self) -> int:
        """Bytes the store's content takes, loose objects and packs (for store totals)."""
        loose = sum(self.objects.size(oid) for oid in self.objects.iter_ids())
        return loose + sum(size for size, _ in self.catalog.packs().values())

    def access(self) -> Access:
        """Tokens, grants and checksums over this store (the views' one way to them)."""
        from datastore.catalog.access import Access

        return Access(self.catalog, self.content, self.root)

    def du(self, name: str | None = None) -> list[dict[str, Any]]:
        from datastore.maintenance.usage import disk_usage

        if name is not None:
            self.dataset(name)
        return disk_usage(self.parts, self._du_head, name)

    def _du_head(self, name: str) -> tuple[Manifest, bool]:
        """A head as ``du`` counts it: its manifest, and whether it differs from its base."""
        version = self.resolve(name)
        head = self.manifest(version)
        return head, self._head_differs(version.dataset, head)

    def gc(
        self, grace_seconds: float = 900, dry_run: bool = False, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        from datastore.maintenance.gc import collect

        return collect(
            self.parts,
            grace_seconds,
            dry_run,
            progress,
            lambda: self._require_format(PACKS_FORMAT),
        )

    def upgrade(self, progress: Progress = _no_progress) -> dict[str, Any]:
        """Bring the store to the current format now: ``FORMAT`` rewritten, every live
        loose object packed (gc would pack them once older than its grace period).
        Writers wait meanwhile, as during gc."""
        from datastore.maintenance.packing import pack_loose
        from datastore.maintenance.references import live_objects

        with flock(self.locks / "gc.lock", exclusive=True):
            self._require_format(PACKS_FORMAT)
            live = live_objects(self.parts)
            loose = [oid for oid in self.objects.iter_ids() if oid in live]
            report = pack_loose(self.parts, loose, False, progress)
        return {"format": self.format_version, **report}

    def fsck(self, progress: Progress = _no_progress) -> dict[str, Any]:
        from datastore.maintenance.fsck import check

        return check(self.parts, progress)


@dataclass(frozen=True, slots=True)
class _HeadChanges:
    """What a head change writes: staged rows dropped (by dir, name) and rows staged."""

    unstage: list[tuple[str, str]]
    stage: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _NewFile:
    """A stored object about to become a head file."""

    path: str
    object: ObjectId
    size: int
    mode: int
    mtime_ns: int | None
    owner: tuple[int, int] | None = None


#: a file to import: (source path, dataset path, its stat)
_Planned = tuple[str, str, os.stat_result]


@dataclass
class _ImportPlan:
    files: list[_Planned]
    dirs: set[str]
    links: list[tuple[str, str, str, os.stat_result]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, why)


@contextmanager
def _expire_on_failure(
    objects: ObjectStore, written: list[ObjectId], batch: ImportBatch | None = None
) -> Iterator[None]:
    """A failed import (a full disk, a refused file) leaves its objects to the next gc at
    once, and drops the packs it wrote (no index row names them yet): 'delete something
    and gc' must free the space it took."""
    try:
        yield
    except BaseException:
        objects.expire(written)
        if batch is not None:
            batch.discard()
        raise


def _plan_import(sources: Sequence[str | Path], to: str, follow_links: bool) -> _ImportPlan:
    """Walk sources into (absolute source, dataset path, stat); validate every path first."""
    if not sources:
        raise InvalidRequest("nothing to put: give at least one file or directory")
    plan = _ImportPlan([], set())
    for src in sources:
        src_path = Path(src)
        if not src_path.exists():
            raise FileNotFound(f"source {str(src)!r} does not exist")
        if src_path.is_dir():
            _walk_dir(src_path, to, plan, follow_links)
        elif src_path.is_file():  # named on the command line: a link to a file is followed
            dest = names.file_path(join_path(to, src_path.name))
            plan.files.append((str(src_path.resolve()), dest, src_path.stat()))
        else:
            plan.skipped.append((str(src), "not a regular file (a FIFO, socket or device)"))
    seen: set[str] = set()
    for dest in [f[1] for f in plan.files] + [link[1] for link in plan.links]:
        if dest in seen:
            raise InvalidRequest(f"two sources map to {dest!r}")
        seen.add(dest)
    return plan


def _plan_files(sources: Sequence[str | Path], dests: Sequence[str]) -> _ImportPlan:
    """One planned file per (source, dataset path) pair, paths validated first."""
    if len(sources) != len(dests):
        raise InvalidRequest("each source needs exactly one destination path")
    plan = _ImportPlan([], set())
    for src, dest in zip(sources, dests, strict=True):
        try:
            st = os.stat(src)  # no pathlib here: a batch is thousands of small files
        except FileNotFoundError as exc:
            raise FileNotFound(f"source {str(src)!r} does not exist") from exc
        plan.files.append((os.fspath(src), names.file_path(dest), st))
    if len({dest for _, dest, _ in plan.files}) != len(plan.files):
        raise InvalidRequest("two sources map to the same path")
    return plan


def _check_rules(rules: ds_rules.Rules, rows: Sequence[dict[str, Any]]) -> None:
    """Every file a batch would stage must pass the dataset's rules, or none is staged."""
    if rules == ds_rules.Rules():
        return
    for r in rows:
        if r["kind"] == KIND_FILE:
            category = json.loads(r["meta"]).get("category", "binary") if r["meta"] else "binary"
            ds_rules.check(rules, join_path(r["dir"], r["name"]), r["size"], category)


def _walk_dir(root: Path, to: str, plan: _ImportPlan, follow_links: bool) -> None:
    """Plan a directory tree. Followed links to a directory are walked unless they lead
    back into a directory being walked (a loop, skipped and said so); without
    ``follow_links`` no loop can form, and no directory's real path is looked up."""
    root = root.resolve()
    stack = [(root, to, frozenset({str(root)}))]
    while stack:
        folder, dest_dir, above = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        if not entries and dest_dir:
            plan.dirs.add(dest_dir)
        for e in entries:
            dest = names.file_path(join_path(dest_dir, e.name))
            if e.is_symlink() and not follow_links:
                target = names.link_target(os.readlink(e.path))
                plan.links.append((e.path, dest, target, e.stat(follow_symlinks=False)))
            elif e.is_dir():  # a link is followed here only with follow_links
                real = os.path.realpath(e.path) if follow_links else None
                if real in above:
                    plan.skipped.append((e.path, "symbolic link loop (not followed)"))
                    continue
                plan.dirs.add(dest)
                stack.append((Path(e.path), dest, above if real is None else above | {real}))
            elif e.is_file():
                plan.files.append((e.path, dest, e.stat()))
            elif e.is_symlink():
                plan.skipped.append((e.path, "dangling symbolic link (not followed)"))
            else:
                plan.skipped.append((e.path, "not a regular file (a FIFO, socket or device)"))


def _ancestors(paths: Iterable[str], to: str) -> set[str]:
    out: set[str] = set()
    for p in paths:
        d = split_path(p)[0]
        while d and d not in out:
            out.add(d)
            d = split_path(d)[0]
    d = to
    while d:
        out.add(d)
        d = split_path(d)[0]
    return out


def _last_wins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(r["dir"], r["name"]): r for r in rows}
    return list(by_key.values())


def _with_info(meta: str, owner: tuple[int, int] | None = None, **stamps: int | None) -> str:
    """``meta`` with an owner and time stamps (``atime_ns``, ``ctime_ns``) set where given."""
    info = json.loads(meta) if meta else {}
    if owner is not None:
        info["uid"], info["gid"] = owner
    info.update({k: v for k, v in stamps.items() if v is not None})
    return encode_meta(info)


def _check_metadata(metadata: Any) -> None:
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be a JSON object")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
