"""Snapshot manifests as sorted, content-addressed Parquet ranges.

Entries are sorted by (dir, name), so one directory's children sit together: listing a
directory or looking up a path reads only the one or two ranges that cover it, found by
bisecting the range list the catalog keeps. A new snapshot rewrites only the ranges its
changes fall in; every other range id is carried over, which is also what lets a diff
skip everything two versions share.

A range's id is the xxh3-128 of its canonical bytes (format header, then every field of
every row, NUL-separated), not of the Parquet file, so the same entries get the same id
on every machine and with every Parquet writer.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any, NewType, TypeVar

from datastore.errors import InvalidPath, StoreCorrupt
from datastore.storage import delta
from datastore.storage.arrow import pa, pc, pq
from datastore.storage.backend import Backend
from datastore.storage.lru import BoundedCache
from datastore.storage.objects import (
    HasherFactory,
    ObjectId,
    default_hasher,
)
from datastore.storage.pools import shared_pool

RangeId = NewType("RangeId", str)

FORMAT_HEADER = b"ds-manifest-range/1\n"
DELTA_HEADER = b"ds-manifest-delta/1\n"
TARGET_ROWS = 1024
MAX_ROWS = 2 * TARGET_ROWS
KIND_FILE = "file"
KIND_DIR = "dir"
KIND_LINK = "symlink"  # store format 2: the target is the meta's "target"


@cache
def schema() -> pa.Schema:
    """A range's columns (built on first use, so that importing this module loads no Arrow)."""
    return pa.schema(
        [
            ("dir", pa.string()),
            ("name", pa.string()),
            ("kind", pa.string()),
            ("object", pa.string()),
            ("size", pa.int64()),
            ("mode", pa.int32()),
            ("mtime_ns", pa.int64()),
            ("meta", pa.string()),
        ]
    )


@cache
def change_schema() -> pa.Schema:
    """A staged change: a range's columns and whether the path was deleted."""
    return schema().append(pa.field("deleted", pa.bool_()))


def delta_schema() -> pa.Schema:
    """A delta range's columns: a change and the base's entry it replaces."""
    return delta.delta_schema(schema())


def schema_of(table: pa.Table) -> pa.Schema:
    return delta_schema() if delta.is_delta(table) else schema()


Key = tuple[str, str]


def split_path(path: str) -> Key:
    d, _, n = path.rpartition("/")
    return d, n


def join_path(d: str, n: str) -> str:
    return f"{d}/{n}" if d else n


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of a manifest: a file (with its object), an explicit directory, or a
    symbolic link (its target in ``meta``, its size the target's length, as lstat has it)."""

    path: str
    kind: str
    object: ObjectId | None
    size: int
    mode: int
    mtime_ns: int
    meta: str = ""

    @property
    def is_dir(self) -> bool:
        return self.kind == KIND_DIR

    @property
    def is_file(self) -> bool:
        return self.kind == KIND_FILE

    @property
    def is_link(self) -> bool:
        return self.kind == KIND_LINK

    @property
    def target(self) -> str | None:
        """Where a symbolic link points (None for files and directories)."""
        return self.info.get("target") if self.is_link else None

    @property
    def key(self) -> Key:
        return split_path(self.path)

    def file_object(self) -> ObjectId:
        """The object holding a file's bytes; a directory or a link has none to read."""
        if self.is_link:
            raise InvalidPath(f"{self.path!r} is a symbolic link to {self.target!r}")
        if self.object is None:
            raise InvalidPath(f"{self.path!r} is a directory")
        return self.object

    @property
    def info(self) -> dict[str, Any]:
        """description, category and user metadata, kept as one JSON text per entry."""
        return json.loads(self.meta) if self.meta else {}

    @property
    def owner(self) -> tuple[int, int] | None:
        return owner_of(self.info)

    @property
    def times(self) -> tuple[int | None, int | None]:
        return times_of(self.info)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Entry:
        return cls(
            path=join_path(row["dir"], row["name"]),
            kind=row["kind"],
            object=row["object"],
            size=row["size"],
            mode=row["mode"],
            mtime_ns=row["mtime_ns"],
            meta=row["meta"] or "",
        )

    def row(self) -> dict[str, Any]:
        d, n = self.key
        return {
            "dir": d,
            "name": n,
            "kind": self.kind,
            "object": self.object,
            "size": self.size,
            "mode": self.mode,
            "mtime_ns": self.mtime_ns,
            "meta": self.meta,
        }


def owner_of(info: dict[str, Any]) -> tuple[int, int] | None:
    """(uid, gid) once chown stored one in an entry's info; None: whoever mounts owns it."""
    if "uid" not in info or "gid" not in info:
        return None
    return int(info["uid"]), int(info["gid"])


def times_of(info: dict[str, Any]) -> tuple[int | None, int | None]:
    """(atime, ctime) in ns as an entry's info holds them once set (utimens sets the atime;
    chmod, chown, utimens and rename the ctime); None: the mtime stands in."""
    return info.get("atime_ns"), info.get("ctime_ns")


def link_entry(path: str, target: str, mtime_ns: int, meta: str = "") -> Entry:
    """A symbolic link's row: the target joins the entry's info, the size is its length."""
    info = {**(json.loads(meta) if meta else {}), "target": target}
    return Entry(path, KIND_LINK, None, len(target.encode()), 0o777, mtime_ns, encode_meta(info))


def encode_meta(info: dict[str, Any]) -> str:
    """Canonical JSON for per-file info; empty values are dropped so ids stay stable."""
    kept = {k: v for k, v in info.items() if v not in (None, "", {})}
    return json.dumps(kept, sort_keys=True, separators=(",", ":")) if kept else ""


@dataclass(frozen=True, slots=True)
class RangeRef:
    """A range as a snapshot lists it: id, first key, rows, and the files and bytes in it.

    Carrying file and byte counts per range lets a snapshot's totals be summed from its
    range list, without reading the ranges its changes did not touch.
    """

    id: RangeId
    first: Key
    count: int
    files: int
    bytes: int


@dataclass(slots=True)
class PendingRange:
    """A range computed but not (yet) written: the head's view, or a snapshot in progress."""

    table: pa.Table
    first: Key = field(init=False)
    rid: RangeId | None = None

    def __post_init__(self) -> None:
        self.first = (self.table["dir"][0].as_py(), self.table["name"][0].as_py())

    @property
    def count(self) -> int:
        return self.table.num_rows

    @property
    def files(self) -> int:
        return file_totals(self.table)[0]

    @property
    def bytes(self) -> int:
        return file_totals(self.table)[1]


def file_totals(table: pa.Table) -> tuple[int, int]:
    """(files, bytes) a range lists; for a delta range, what it adds to its base's."""
    if delta.is_delta(table):
        return delta.net_totals(table, KIND_FILE)
    files = table.filter(pc.equal(table["kind"], KIND_FILE))
    return files.num_rows, int(pc.sum(files["size"]).as_py() or 0)


AnyRange = RangeRef | PendingRange


def as_written(rng: AnyRange | None, changes: pa.Table) -> RangeRef | None:
    """A piece of a manifest's layout that is a range as written (no delta row in its
    span), which every version listing it shares; None for a piece computed from both."""
    return rng if isinstance(rng, RangeRef) and changes.num_rows == 0 else None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A version's entries: a base of sorted, disjoint ranges and a delta over it
    (``datastore.storage.delta``); either may be empty."""

    base: tuple[AnyRange, ...] = ()
    delta: tuple[AnyRange, ...] = ()

    @property
    def ranges(self) -> tuple[AnyRange, ...]:
        return self.base + self.delta

    @property
    def files(self) -> int:
        return sum(r.files for r in self.ranges)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.ranges)

    @property
    def base_rows(self) -> int:
        return sum(r.count for r in self.base)


def entries_table(entries: Iterable[Entry]) -> pa.Table:
    return pa.Table.from_pylist([e.row() for e in entries], schema=schema())


def changes_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Staged rows (with a ``deleted`` flag) as a sorted Arrow table."""
    table = pa.Table.from_pylist(list(rows), schema=change_schema())
    return sort_table(table)


def sort_table(table: pa.Table) -> pa.Table:
    return table.sort_by([("dir", "ascending"), ("name", "ascending")])


def table_entries(table: pa.Table) -> list[Entry]:
    """Entries from a range's columns (column lists zipped: a dict per row costs twice)."""
    cols = [table[c].to_pylist() for c in ENTRY_COLUMNS]
    return [
        Entry(join_path(d, n), kind, obj, size, mode, mtime, meta or "")
        for d, n, kind, obj, size, mode, mtime, meta in zip(*cols, strict=True)
    ]


ENTRY_COLUMNS = ("dir", "name", "kind", "object", "size", "mode", "mtime_ns", "meta")


def canonical_id(table: pa.Table, hasher: HasherFactory = default_hasher) -> RangeId:
    """The id of a range's entries (a delta range's: its changes and prev columns too)."""
    cols = [
        table["dir"],
        table["name"],
        table["kind"],
        pc.fill_null(table["object"], ""),
        pc.cast(table["size"], pa.string()),
        pc.cast(table["mode"], pa.string()),
        pc.cast(table["mtime_ns"], pa.string()),
        pc.fill_null(table["meta"], ""),
    ]
    header = FORMAT_HEADER
    if delta.is_delta(table):
        header = DELTA_HEADER
        cols.append(pc.cast(table["deleted"], pa.string()))
        cols += [pc.fill_null(pc.cast(table[p], pa.string()), "") for p in delta.PREV]
    cols.append(pa.chunked_array([pa.array([""] * table.num_rows, pa.string())]))
    joined = pc.binary_join_element_wise(*cols, "\x00").combine_chunks()
    h = hasher()
    h.update(header)
    if len(joined):
        bufs = joined.buffers()
        offsets = pa.Array.from_buffers(
            pa.int32(), len(joined) + 1, [None, bufs[1]], offset=joined.offset
        )
        start, end = offsets[0].as_py(), offsets[-1].as_py()
        h.update(memoryview(bufs[2])[start:end])
    return RangeId(h.hexdigest())


class RangeCache:
    """Decoded ranges and their path indexes, kept while the range stays cached."""

    def __init__(self, capacity: int = 512) -> None:
        self._tables: BoundedCache[pa.Table] = BoundedCache(capacity, self._forget_index)
        self._index: dict[str, dict[Key, int]] = {}

    def get(self, rid: str) -> pa.Table | None:
        return self._tables.get(rid)

    def put(self, rid: str, table: pa.Table) -> None:
        self._tables.put(rid, table)

    def _forget_index(self, rid: str) -> None:
        self._index.pop(rid, None)

    def index(self, rid: str, table: pa.Table) -> dict[Key, int]:
        idx = self._index.get(rid)
        if idx is None:
            idx = {
                k: i
                for i, k in enumerate(
                    zip(table["dir"].to_pylist(), table["name"].to_pylist(), strict=True)
                )
            }
            with self._tables.lock:
                if rid in self._tables:
                    self._index[rid] = idx
        return idx


class ManifestStore:
    """Reads and writes ranges through a :class:`Backend` (locally
    ``manifests/ab/cdef....parquet``), keeping decoded ones in a :class:`RangeCache`."""

    def __init__(self, backend: Backend, hasher: HasherFactory = default_hasher) -> None:
        self.backend = backend
        self.hasher = hasher
        self.cache = RangeCache()

    def exists(self, rid: str) -> bool:
        return self.backend.stat(rid) is not None

    def sync(self) -> None:
        self.backend.sync()

    def write(self, table: pa.Table, *, durable: bool = True) -> RangeRef:
        return self.write_pending(PendingRange(table), durable=durable)

    def write_pending(self, rng: PendingRange, *, durable: bool = True) -> RangeRef:
        cols = schema_of(rng.table)
        table = rng.table = rng.table.select(cols.names).cast(cols)
        rid = self.range_id(rng)
        temp, fd = self.backend.new_temp("range")
        try:
            with os.fdopen(os.dup(fd), "wb") as out:
                pq.write_table(table, out, compression="zstd", use_dictionary=["dir", "kind"])
            self.backend.put_if_absent(temp, rid, durable)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        finally:
            os.close(fd)
        self.cache.put(rid, table)
        first = (table["dir"][0].as_py(), table["name"][0].as_py())
        return RangeRef(rid, first, table.num_rows, *file_totals(table))

    def read(self, rng: AnyRange) -> pa.Table:
        if isinstance(rng, PendingRange):
            return rng.table
        table = self.cache.get(rng.id)
        if table is None:
            try:
                table = self._decode(rng.id)
            except (OSError, pa.ArrowInvalid) as exc:
                raise StoreCorrupt(f"manifest range {rng.id} is missing or unreadable") from exc
            self.cache.put(rng.id, table)
        return table

    def read_many(self, ranges: Sequence[AnyRange]) -> list[pa.Table]:
        """Read ranges on a few threads: Parquet decoding releases the GIL."""
        return parallel_map(self.read, ranges)

    def verify(self, rid: str) -> bool:
        try:
            table = self._decode(rid)
        except (OSError, pa.ArrowInvalid):
            return False
        return canonical_id(table, self.hasher) == rid

    def _decode(self, rid: str) -> pa.Table:
        """ParquetFile.read is several times faster than read_table for small files;
        ranges are read on our own pool, so Arrow's threads would only add hand-offs."""
        data = pa.BufferReader(self.backend.get(rid))
        table = pq.ParquetFile(data, pre_buffer=False).read(use_threads=False)
        cols = schema_of(table)
        return table if table.schema.equals(cols) else table.select(cols.names).cast(cols)

    # a manifest: base and delta ----------------------------------------------

    def lookup(self, manifest: Manifest, path: str) -> Entry | None:
        key = split_path(path)
        found = self.entries(manifest, [key]).get(key)
        return None if found is None else Entry.from_row(found)

    def _find(self, ranges: Sequence[AnyRange], key: Key) -> dict[str, Any] | None:
        i = bisect.bisect_right([r.first for r in ranges], key) - 1
        if i < 0:
            return None
        rng = ranges[i]
        table = self.read(rng)
        if isinstance(rng, RangeRef):
            row = self.cache.index(rng.id, table).get(key)
        else:
            mask = pc.and_(pc.equal(table["dir"], key[0]), pc.equal(table["name"], key[1]))
            table = table.filter(mask)
            row = 0 if table.num_rows else None
        return None if row is None else table.slice(row, 1).to_pylist()[0]

    def list_dir(self, manifest: Manifest, d: str) -> pa.Table:
        """Direct children of directory ``d`` (``''`` is the root)."""

        def children(ranges: Sequence[AnyRange]) -> list[pa.Table]:
            tables = []
            for rng in self._covering(ranges, (d, ""), (d, "\U0010ffff")):
                table = self.read(rng)
                tables.append(table.filter(pc.equal(table["dir"], d)))
            return tables

        return self._layered(children, manifest)

    def list_tree(self, manifest: Manifest, prefix: str) -> pa.Table:
        """Every entry at or below directory ``prefix``."""
        if not prefix:
            return concat(list(self.iter_tables(manifest)))
        below = prefix + "/"

        def inside(ranges: Sequence[AnyRange]) -> list[pa.Table]:
            tables = []
            for rng in self._covering(ranges, (prefix, ""), (prefix + "0", "")):
                table = self.read(rng)
                mask = pc.or_(pc.equal(table["dir"], prefix), pc.starts_with(table["dir"], below))
                tables.append(table.filter(mask))
            return tables

        return self._layered(inside, manifest)

    def _layered(
        self, part: Callable[[Sequence[AnyRange]], list[pa.Table]], manifest: Manifest
    ) -> pa.Table:
        """The part of the base ``part`` selects, with the same part of the delta laid on."""
        base = concat(part(manifest.base))
        if not manifest.delta:
            return base
        return delta.overlay(base, concat(part(manifest.delta), delta_schema()), schema())

    def _covering(self, ranges: Sequence[AnyRange], lo: Key, hi: Key) -> list[AnyRange]:
        firsts = [r.first for r in ranges]
        start = max(bisect.bisect_right(firsts, lo) - 1, 0)
        end = bisect.bisect_right(firsts, hi)
        return list(ranges[start:end])

    def delta_table(self, manifest: Manifest) -> pa.Table:
        """A manifest's delta as one sorted table (empty when it has none)."""
        return concat(self.read_many(manifest.delta), delta_schema())

    def layout(self, manifest: Manifest) -> list[tuple[AnyRange | None, pa.Table]]:
        """The manifest in key order as (base range, the delta rows in its key span);
        an empty base is one piece, (None, the whole delta)."""
        changes = self.delta_table(manifest)
        if not manifest.base:
            return [(None, changes)] if changes.num_rows else []
        keys = list(zip(changes["dir"].to_pylist(), changes["name"].to_pylist(), strict=True))
        cuts = [0] + [bisect.bisect_left(keys, r.first) for r in manifest.base[1:]] + [len(keys)]
        return [
            (rng, changes.slice(cuts[i], cuts[i + 1] - cuts[i]))
            for i, rng in enumerate(manifest.base)
        ]

    def piece(self, rng: AnyRange | None, changes: pa.Table) -> pa.Table:
        """One piece of :meth:`layout` as the entries it stands for."""
        if rng is None:
            return delta.upserts(changes, schema())
        return delta.overlay(self.read(rng), changes, schema())

    def iter_tables(self, manifest: Manifest) -> Iterator[pa.Table]:
        """Every entry, in key order, a range (or so) at a time."""
        if not manifest.delta:
            yield from map(self.read, manifest.base)
            return
        for piece, changes in self.layout(manifest):
            yield self.piece(piece, changes)

    def apply(
        self,
        manifest: Manifest,
        changes: pa.Table,
        noted: dict[Key, dict[str, Any] | None] | None = None,
    ) -> Manifest:
        """The manifest with sorted staged changes laid on: a longer delta while it stays
        under :func:`delta.compact_limit`, else the delta and the changes folded into the
        base (rewriting only the ranges they touch). ``noted``: the manifest's entry (or
        None) at changed keys, where already known; the rest are looked up."""
        if changes.num_rows == 0:
            return manifest
        old = self.delta_table(manifest)
        if old.num_rows + changes.num_rows > delta.compact_limit(manifest.base_rows):
            folded = delta.supersede(old.select(change_schema().names), changes)
            return Manifest(tuple(self._apply_ranges(manifest.base, folded)))
        rows = delta.extend(
            old, changes, partial(self._entries, manifest.base), delta_schema(), noted
        )
        return Manifest(manifest.base, tuple(split_pending(rows)))

    def entries(self, manifest: Manifest, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """The entries a manifest holds at ``keys`` (keys it lacks left out)."""
        changed = self._entries(manifest.delta, keys)
        found = self._entries(manifest.base, [k for k in keys if k not in changed])
        found.update((k, row) for k, row in changed.items() if not row["deleted"])
        return found

    def _entries(
        self, ranges: Sequence[AnyRange], keys: Sequence[Key]
    ) -> dict[Key, dict[str, Any]]:
        """The rows ``ranges`` hold at ``keys`` (each covering range read once)."""
        firsts = [r.first for r in ranges]
        wanted: dict[int, list[Key]] = {}
        for key in keys:
            i = bisect.bisect_right(firsts, key) - 1
            if i >= 0:
                wanted.setdefault(i, []).append(key)

        def look(item: tuple[int, list[Key]]) -> list[tuple[Key, dict[str, Any] | None]]:
            i, held = item
            return [(key, self._find(ranges[i : i + 1], key)) for key in held]

        found = parallel_map(look, list(wanted.items()))
        return {key: row for pairs in found for key, row in pairs if row is not None}

    def _apply_ranges(self, ranges: Sequence[AnyRange], changes: pa.Table) -> list[AnyRange]:
        """Overlay sorted changes (with ``deleted``) on ranges, rewriting only those touched."""
        if changes.num_rows == 0:
            return list(ranges)
        keys = list(zip(changes["dir"].to_pylist(), changes["name"].to_pylist(), strict=True))
        if not ranges:
            return split_pending(delta.upserts(changes, schema()))
        firsts = [r.first for r in ranges]
        buckets: dict[int, list[int]] = {}
        for row, key in enumerate(keys):
            buckets.setdefault(max(bisect.bisect_right(firsts, key) - 1, 0), []).append(row)
        touched = sorted(buckets)
        merged = parallel_map(lambda i: self._merge(ranges[i], changes.take(buckets[i])), touched)
        rewritten = dict(zip(touched, merged, strict=True))
        out: list[AnyRange] = []
        for i, rng in enumerate(ranges):
            out.extend(rewritten.get(i, [rng]))
        return out

    def _merge(self, rng: AnyRange, changes: pa.Table) -> list[AnyRange]:
        """Splice sorted changes into a sorted range: slices of the base between them, so a
        range with one change costs a binary search, not a re-sort."""
        base = self.read(rng)
        keys = list(zip(base["dir"].to_pylist(), base["name"].to_pylist(), strict=True))
        changed = zip(changes["dir"].to_pylist(), changes["name"].to_pylist(), strict=True)
        deleted = changes["deleted"].to_pylist()
        upserts = changes.select(schema().names)
        pieces, start = [], 0
        for row, key in enumerate(changed):
            at = bisect.bisect_left(keys, key, start)
            pieces.append(base.slice(start, at - start))
            if not deleted[row]:
                pieces.append(upserts.slice(row, 1))
            start = at + 1 if at < len(keys) and keys[at] == key else at
        pieces.append(base.slice(start))
        return split_pending(pa.concat_tables(pieces).combine_chunks())

    def write_all(self, manifest: Manifest, *, durable: bool = True) -> Manifest:
        def one(r: AnyRange) -> RangeRef:
            return r if isinstance(r, RangeRef) else self.write_pending(r, durable=durable)

        written = parallel_map(one, manifest.ranges)
        return Manifest(tuple(written[: len(manifest.base)]), tuple(written[len(manifest.base) :]))

    def range_id(self, rng: AnyRange) -> RangeId:
        """The id a range has (or will have once written)."""
        if isinstance(rng, RangeRef):
            return rng.id
        if rng.rid is None:
            rng.rid = canonical_id(rng.table, self.hasher)
        return rng.rid

    def same(self, a: Manifest, b: Manifest) -> bool:
        """True when two manifests are the same ranges (so the same entries, laid out alike)."""
        return self._same_ids(a.base, b.base) and self._same_ids(a.delta, b.delta)

    def same_base(self, a: Manifest, b: Manifest) -> bool:
        """True when two manifests lay their deltas over the same base ranges."""
        return self._same_ids(a.base, b.base)

    def _same_ids(self, a: Sequence[AnyRange], b: Sequence[AnyRange]) -> bool:
        return len(a) == len(b) and all(
            self.range_id(x) == self.range_id(y) for x, y in zip(a, b, strict=True)
        )


RANGE_WORKERS = min(4, os.cpu_count() or 1)
T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Map on the shared range pool; small inputs stay on the calling thread."""
    if len(items) < 4:
        return [fn(x) for x in items]
    return list(shared_pool("ranges", RANGE_WORKERS).map(fn, items))


def split_pending(table: pa.Table) -> list[AnyRange]:
    if table.num_rows == 0:
        return []
    if table.num_rows <= MAX_ROWS:
        return [PendingRange(table)]
    parts = -(-table.num_rows // TARGET_ROWS)
    step = -(-table.num_rows // parts)
    return [PendingRange(table.slice(i, step)) for i in range(0, table.num_rows, step)]


def concat(tables: list[pa.Table], cols: pa.Schema | None = None) -> pa.Table:
    if not tables:
        return (cols or schema()).empty_table()
    return pa.concat_tables(tables)
