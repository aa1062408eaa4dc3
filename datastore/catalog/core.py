"""The catalog: every SQL statement of ds lives here, over SQLite in WAL mode.

Datasets, snapshots and their range lists, tags with history, the head's staged changes,
the import cache, and the tables later views need (tokens, grants, tasks, analytics
cache). Keeping SQL behind this one module is what lets PostgreSQL replace SQLite for
many hosts later. A snapshot becomes visible only when its row commits, after its
objects and ranges are durable on disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datastore import names
from datastore.errors import DatasetNotFound, StoreCorrupt
from datastore.storage.delta import PREV
from datastore.storage.lru import BoundedCache
from datastore.storage.manifest import Manifest, RangeId, RangeRef
from datastore.storage.packs import BlobRef

SCHEMA_VERSION = 10
UNSTAGED_KEEP_SECONDS = 3600  # how long a watcher may take to see a dropped staged row
#: what a staged row may note of its base: the snapshot, and its entry at the path
NOTED = ("prev_base", *PREV)

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}',
        rules TEXT NOT NULL DEFAULT '{}',
        root_mode INTEGER NOT NULL DEFAULT 493,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        base TEXT
    );
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        parent TEXT,
        created_at TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        sources TEXT NOT NULL DEFAULT '[]',
        file_count INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL
    );
    CREATE INDEX snapshots_by_dataset ON snapshots (dataset_id, created_at);
    CREATE TABLE snapshot_ranges (
        snapshot_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        range_id TEXT NOT NULL,
        first_dir TEXT NOT NULL,
        first_name TEXT NOT NULL,
        count INTEGER NOT NULL,
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (snapshot_id, seq)
    );
    CREATE TABLE tags (
        dataset_id TEXT NOT NULL,
        name TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        PRIMARY KEY (dataset_id, name)
    );
    CREATE TABLE tag_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dataset_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        at TEXT NOT NULL,
        by TEXT NOT NULL
    );
    CREATE TABLE staged (
        dataset_id TEXT NOT NULL,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        object TEXT,
        size INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        meta TEXT NOT NULL DEFAULT '',
        deleted INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, dir, name)
    );
    CREATE TABLE import_cache (
        dataset_id TEXT NOT NULL,
        src TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        object TEXT NOT NULL,
        PRIMARY KEY (dataset_id, src)
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters VALUES ('staged_seq', 0);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        admin INTEGER NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE grants (
        dataset_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        permission TEXT NOT NULL,
        PRIMARY KEY (dataset_id, principal)
    );
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        progress TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE TABLE analytics_cache (
        object TEXT NOT NULL,
        kind TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL,
        PRIMARY KEY (object, kind, params)
    );
    """,
    # staged rows and the import cache keyed by their primary key alone (WITHOUT ROWID):
    # the rowid tables kept every path twice, in the row and in the key's index
    2: """
    CREATE TABLE staged_keyed (
        dataset_id TEXT NOT NULL,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        object TEXT,
        size INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        meta TEXT NOT NULL DEFAULT '',
        deleted INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, dir, name)
    ) WITHOUT ROWID;
    INSERT INTO staged_keyed SELECT dataset_id, dir, name, kind, object, size, mode, mtime_ns,
        meta, deleted, seq FROM staged;
    DROP TABLE staged;
    ALTER TABLE staged_keyed RENAME TO staged;
    CREATE TABLE import_cache_keyed (
        dataset_id TEXT NOT NULL,
        src TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        object TEXT NOT NULL,
        PRIMARY KEY (dataset_id, src)
    ) WITHOUT ROWID;
    INSERT INTO import_cache_keyed SELECT dataset_id, src, size, mtime_ns, inode, object
        FROM import_cache;
    DROP TABLE import_cache;
    ALTER TABLE import_cache_keyed RENAME TO import_cache;
    """,
    3: """
    CREATE TABLE unstaged (
        seq INTEGER PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    # what ds forget dropped: lineage and refs name a forgotten snapshot instead of failing
    4: """
    CREATE TABLE forgotten (
        id TEXT PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        parent TEXT,
        created_at TEXT NOT NULL,
        forgotten_at TEXT NOT NULL,
        by TEXT NOT NULL
    );
    CREATE INDEX forgotten_by_dataset ON forgotten (dataset_id);
    """,
    # the dataset directory's owner (entry meta format) and mtime, stored like root_mode
    5: """
    ALTER TABLE datasets ADD COLUMN root_meta TEXT NOT NULL DEFAULT '';
    ALTER TABLE datasets ADD COLUMN root_mtime_ns INTEGER NOT NULL DEFAULT 0;
    """,
    # head files staged by a close that flushed nothing (the mount): their objects may not
    # have reached the disk yet; dropped once a syncfs has covered them
    6: """
    CREATE TABLE unsynced (
        seq INTEGER PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        object TEXT NOT NULL,
        size INTEGER NOT NULL,
        UNIQUE (dataset_id, dir, name)
    );
    """,
    # format 3: where each blob is in which pack (docs/design.md "Format 3")
    7: """
    CREATE TABLE packs (
        id TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        blobs INTEGER NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE blobs (
        id TEXT PRIMARY KEY,
        pack TEXT NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        raw_length INTEGER NOT NULL,
        codec INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX blobs_by_pack ON blobs (pack);
    """,
    # format 3: large files as lists of content-defined chunks (datastore/storage/chunker.py)
    8: """
    CREATE TABLE chunked (
        id TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        chunks BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    # a snapshot's manifest may be a base and a delta over it (datastore/storage/delta.py)
    9: """
    ALTER TABLE snapshot_ranges ADD COLUMN delta INTEGER NOT NULL DEFAULT 0;
    """,
    # a staged row notes the entry its base snapshot holds at the path (delta.py)
    10: """
    ALTER TABLE staged ADD COLUMN prev_base TEXT;
    ALTER TABLE staged ADD COLUMN prev_kind TEXT;
    ALTER TABLE staged ADD COLUMN prev_object TEXT;
    ALTER TABLE staged ADD COLUMN prev_size INTEGER;
    ALTER TABLE staged ADD COLUMN prev_mode INTEGER;
    ALTER TABLE staged ADD COLUMN prev_mtime_ns INTEGER;
    ALTER TABLE staged ADD COLUMN prev_meta TEXT;
    """,
}


REMOVED = ""  # tag_history.snapshot_id of an untag


@dataclass(frozen=True, slots=True)
class DatasetRow:
    id: str
    name: str
    description: str
    metadata: dict[str, Any]
    rules: dict[str, Any]
    root_mode: int
    created_at: str
    updated_at: str
    base: str | None
    root_meta: str = ""  # the dataset directory's owner, as an entry's meta holds it
    root_mtime_ns: int = 0  # 0: the directory shows updated_at


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    id: str
    dataset_id: str
    parent: str | None
    created_at: str
    message: str
    author: str
    sources: list[dict[str, str]]
    file_count: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ForgottenRow:
    id: str
    dataset_id: str
    parent: str | None
    created_at: str
    forgotten_at: str
    by: str


@dataclass(frozen=True, slots=True)
class TagEvent:
    snapshot: str | None  # None: the tag was removed
    at: str
    by: str


@dataclass
class _ThreadState:
    """What one OS thread keeps: its connection, and the dataset rows it read since the
    catalog last changed (``stamp``: see :meth:`Catalog.dataset`)."""

    conn: sqlite3.Connection
    stamp: tuple[int, int] | None = None
    datasets: dict[str, DatasetRow | None] = field(default_factory=dict)


_OPEN: weakref.WeakSet[Catalog] = weakref.WeakSet()
_INHERITED: list[sqlite3.Connection] = []  # a forked child's copies of its parent's


def _forget_inherited_connections() -> None:
    for catalog in list(_OPEN):
        catalog._after_fork()


os.register_at_fork(after_in_child=_forget_inherited_connections)


class Catalog:
    """One SQLite connection per OS thread; writers serialize with BEGIN IMMEDIATE.

    Connections are keyed by the kernel's thread id, not kept in a ``threading.local``:
    libfuse calls the mount from its own threads through ctypes, which gives each call a
    fresh Python thread state, so thread-local data lasted one request and every FUSE
    request opened (and set up) a new connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads: dict[int, _ThreadState] = {}
        self._threads_lock = threading.Lock()
        _OPEN.add(self)
        self._commits = 0  # write transactions this process committed (see dataset())
        self._ranges: BoundedCache[Manifest] = BoundedCache(64)

    def init(self) -> None:
        self.migrate()

    @property
    def db(self) -> sqlite3.Connection:
        return self._mine().conn

    def _mine(self) -> _ThreadState:
        tid = threading.get_native_id()
        mine = self._threads.get(tid)
        if mine is None:
            mine = _ThreadState(self._connect())
            with self._threads_lock:
                self._forget_dead_threads()
                self._threads[tid] = mine
        return mine

    def _connect(self) -> sqlite3.Connection:
        # only its own thread uses it; the id check is ours (a kernel id may be reused)
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        # only takes effect on a new catalog (before its first table); lets
        # release_free_pages hand cleared staged rows back to the filesystem
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def _after_fork(self) -> None:
        """In a forked child: the parent's connections are never used here (SQLite forbids
        it; a reused thread id could pick one up) and never closed either (closing a
        descriptor of the database drops every POSIX lock the child holds on it), so they
        are kept aside until the child exits."""
        _INHERITED.extend(state.conn for state in self._threads.values())
        self._threads = {}
        self._threads_lock = threading.Lock()

    def _forget_dead_threads(self) -> None:
        """Close the connections of threads that have ended (checked when the table grows)."""
        if len(self._threads) < 32:
            return
        for tid in [t for t in self._threads if not os.path.exists(f"/proc/self/task/{t}")]:
            self._threads.pop(tid).conn.close()

    def close(self) -> None:
        """Close the calling thread's connection."""
        with self._threads_lock:
            mine = self._threads.pop(threading.get_native_id(), None)
        if mine is not None:
            mine.conn.close()

    def migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self.write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreCorrupt(
                    f"catalog schema {version} is newer than this ds ({SCHEMA_VERSION})"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={step}")

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front, so concurrent writers queue, never deadlock.

        ``durable=False`` commits without flushing the WAL (``synchronous=NORMAL``): the
        commit survives the process being killed, not a power cut, until a later flushed
        commit (the WAL is one file: flushing it covers earlier commits). Never flush the
        catalog's files from outside SQLite: closing any descriptor of the database file
        drops every POSIX lock this process holds on it, and concurrent connections then
        corrupt it.
        """
        db = self.db
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            with self._threads_lock:  # a lost increment could leave a stale row looking fresh
                self._commits += 1
        finally:
            if not durable:
                db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent view across several SELECTs."""
        db = self.db
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    # datasets ---------------------------------------------------------------

    def insert_dataset(self, db: sqlite3.Connection, row: DatasetRow) -> None:
        db.execute(
            "INSERT INTO datasets (id, name, description, metadata, rules, root_mode,"
            " created_at, updated_at, base) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                row.id,
                row.name,
                row.description,
                json.dumps(row.metadata),
                json.dumps(row.rules),
                row.root_mode,
                row.created_at,
                row.updated_at,
                row.base,
            ),
        )

    def dataset(self, name: str, db: sqlite3.Connection | None = None) -> DatasetRow | None:
        """The dataset row by name. Outside a transaction (no ``db``), rows are reused until
        anything commits: another connection's commit changes ``PRAGMA data_version``,
        one of this process's bumps ``_commits``. A file created through the mount asks
        for its dataset's row about seven times between two commits."""
        if db is not None:
            return self._dataset_row(db, name)
        mine = self._mine()
        stamp = (mine.conn.execute("PRAGMA data_version").fetchone()[0], self._commits)
        if mine.stamp != stamp:
            mine.stamp, mine.datasets = stamp, {}
        if name not in mine.datasets:
            mine.datasets[name] = self._dataset_row(mine.conn, name)
        return mine.datasets[name]

    @staticmethod
    def _dataset_row(db: sqlite3.Connection, name: str) -> DatasetRow | None:
        row = db.execute("SELECT * FROM datasets WHERE name=?", (name,)).fetchone()
        return _dataset(row) if row else None

    def existing(self, name: str) -> DatasetRow:
        """The dataset called ``name``: a bad name is InvalidName, an unknown one
        DatasetNotFound (the one lookup every caller that needs a dataset shares)."""
        row = self.dataset(names.dataset_name(name))
        if row is None:
            raise DatasetNotFound(f"dataset {name!r} not found")
        return row

    def datasets(self) -> list[DatasetRow]:
        return [_dataset(r) for r in self.db.execute("SELECT * FROM datasets ORDER BY name")]

    def update_dataset(self, db: sqlite3.Connection, dataset_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        values = [json.dumps(v) if isinstance(v, dict) else v for v in fields.values()]
        db.execute(f"UPDATE datasets SET {sets} WHERE id=?", (*values, dataset_id))

    def delete_dataset(self, db: sqlite3.Connection, dataset_id: str) -> None:
        snaps = "SELECT id FROM snapshots WHERE dataset_id=?"
        db.execute(f"DELETE FROM snapshot_ranges WHERE snapshot_id IN ({snaps})", (dataset_id,))
        for table in (
            "snapshots",
            "tags",
            "tag_history",
            "staged",
            "unstaged",
            "import_cache",
            "grants",
            "forgotten",
        ):
            db.execute(f"DELETE FROM {table} WHERE dataset_id=?", (dataset_id,))
        db.execute("DELETE FROM datasets WHERE id=?", (dataset_id,))

    # snapshots --------------------------------------------------------------

    def insert_snapshot(self, db: sqlite3.Connection, row: SnapshotRow, manifest: Manifest) -> None:
        db.execute(
            "INSERT INTO snapshots (id, dataset_id, parent, created_at, message, author,"
            " sources, file_count, size_bytes) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                row.id,
                row.dataset_id,
                row.parent,
                row.created_at,
                row.message,
                row.author,
                json.dumps(row.sources),
                row.file_count,
                row.size_bytes,
            ),
        )
        db.executemany(
            "INSERT INTO snapshot_ranges VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (row.id, i, r.id, r.first[0], r.first[1], r.count, r.files, r.bytes, delta)
                for i, (r, delta) in enumerate(_layered(manifest))
            ],
        )

    def snapshot(self, snapshot_id: str) -> SnapshotRow | None:
        row = self.db.execute("SELECT * FROM snapshots WHERE id=?", (snapshot_id,)).fetchone()
        return _snapshot(row) if row else None

    def snapshots(self, dataset_id: str) -> list[SnapshotRow]:
        rows = self.db.execute(
            "SELECT * FROM snapshots WHERE dataset_id=? ORDER BY created_at DESC, rowid DESC",
            (dataset_id,),
        )
        return [_snapshot(r) for r in rows]

    def snapshots_by_prefix(self, dataset_id: str, prefix: str) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM snapshots WHERE dataset_id=? AND id >= ? AND id < ? LIMIT 2",
            (dataset_id, prefix, prefix + "g"),
        )
        return [r[0] for r in rows]

    def latest_snapshot(self, dataset_id: str) -> str | None:
        row = self.db.execute(
            "SELECT id FROM snapshots WHERE dataset_id=? ORDER BY created_at DESC, rowid DESC"
            " LIMIT 1",
            (dataset_id,),
        ).fetchone()
        return row[0] if row else None

    def snapshot_at(self, dataset_id: str, at: str) -> str | None:
        row = self.db.execute(
            "SELECT id FROM snapshots WHERE dataset_id=? AND created_at <= ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (dataset_id, at),
        ).fetchone()
        return row[0] if row else None

    def manifest(self, snapshot_id: str) -> Manifest:
        """A snapshot's ranges (base, then delta), remembered: snapshots never change once
        committed, and a path lookup in a 1M-entry version would otherwise spend most of
        its time here."""
        known = self._ranges.get(snapshot_id)
        if known is not None:
            return known
        rows = self.db.execute(
            "SELECT range_id, first_dir, first_name, count, files, bytes, delta"
            " FROM snapshot_ranges WHERE snapshot_id=? ORDER BY seq",
            (snapshot_id,),
        ).fetchall()
        refs = [(RangeRef(RangeId(r[0]), (r[1], r[2]), r[3], r[4], r[5]), r[6]) for r in rows]
        found = Manifest(
            tuple(r for r, delta in refs if not delta), tuple(r for r, delta in refs if delta)
        )
        if refs:
            self._ranges.put(snapshot_id, found)
        return found

    def all_range_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT range_id FROM snapshot_ranges")}

    def range_users(self, range_id: str) -> list[tuple[str, str]]:
        """(dataset name, snapshot id) pairs that list a range, for fsck's report."""
        rows = self.db.execute(
            "SELECT d.name, s.id FROM snapshot_ranges r JOIN snapshots s ON s.id=r.snapshot_id"
            " JOIN datasets d ON d.id=s.dataset_id WHERE r.range_id=?",
            (range_id,),
        )
        return [(r[0], r[1]) for r in rows]

    def all_snapshots(self) -> list[tuple[str, SnapshotRow]]:
        rows = self.db.execute(
            "SELECT d.name AS dataset_name, s.* FROM snapshots s JOIN datasets d"
            " ON d.id=s.dataset_id ORDER BY d.name, s.created_at"
        )
        return [(r["dataset_name"], _snapshot(r)) for r in rows]

    def forget_snapshots(
        self, db: sqlite3.Connection, dataset_id: str, ids: Sequence[str], at: str, by: str
    ) -> None:
        """Drop snapshots and their range lists, remembering each as forgotten; a tag on
        one is removed as ``untag`` removes it (its history stays)."""
        for sid in ids:
            for tag in db.execute(
                "SELECT name FROM tags WHERE dataset_id=? AND snapshot_id=?", (dataset_id, sid)
            ).fetchall():
                self.delete_tag(db, dataset_id, tag[0], at, by)
            db.execute(
                "INSERT INTO forgotten SELECT id, dataset_id, parent, created_at, ?, ?"
                " FROM snapshots WHERE id=? AND dataset_id=?",
                (at, by, sid, dataset_id),
            )
            db.execute("DELETE FROM snapshot_ranges WHERE snapshot_id=?", (sid,))
            db.execute("DELETE FROM snapshots WHERE id=?", (sid,))

    def forgotten(self, dataset_id: str, prefix: str = "", limit: int = -1) -> list[ForgottenRow]:
        """Forgotten snapshots of a dataset whose id starts with ``prefix``."""
        rows = self.db.execute(
            "SELECT * FROM forgotten WHERE dataset_id=? AND id >= ? AND id < ? LIMIT ?",
            (dataset_id, prefix, prefix + "g", limit),
        )
        return [ForgottenRow(**dict(r)) for r in rows]

    def forgotten_snapshot(self, snapshot_id: str) -> ForgottenRow | None:
        row = self.db.execute("SELECT * FROM forgotten WHERE id=?", (snapshot_id,)).fetchone()
        return ForgottenRow(**dict(row)) if row else None

    # tags -------------------------------------------------------------------

    def tags(self, dataset_id: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT name, snapshot_id FROM tags WHERE dataset_id=? ORDER BY name", (dataset_id,)
        )
        return {r[0]: r[1] for r in rows}

    def tag(self, dataset_id: str, tag: str) -> str | None:
        row = self.db.execute(
            "SELECT snapshot_id FROM tags WHERE dataset_id=? AND name=?", (dataset_id, tag)
        ).fetchone()
        return row[0] if row else None

    def set_tag(
        self,
        db: sqlite3.Connection,
        dataset_id: str,
        tag: str,
        snapshot_id: str,
        expected: str | None,
        at: str,
        by: str,
    ) -> bool:
        """Compare-and-set: create when ``expected`` is None, else move only from it."""
        if expected is None:
            cur = db.execute(
                "INSERT OR IGNORE INTO tags VALUES (?,?,?)", (dataset_id, tag, snapshot_id)
            )
        else:
            cur = db.execute(
                "UPDATE tags SET snapshot_id=? WHERE dataset_id=? AND name=? AND snapshot_id=?",
                (snapshot_id, dataset_id, tag, expected),
            )
        if cur.rowcount != 1:
            return False
        db.execute(
            "INSERT INTO tag_history (dataset_id, tag, snapshot_id, at, by) VALUES (?,?,?,?,?)",
            (dataset_id, tag, snapshot_id, at, by),
        )
        return True

    def delete_tag(
        self, db: sqlite3.Connection, dataset_id: str, tag: str, at: str, by: str
    ) -> bool:
        """Remove a tag; the removal is a move to nothing in its history (the empty
        snapshot id), so the history outlives the tag."""
        cur = db.execute("DELETE FROM tags WHERE dataset_id=? AND name=?", (dataset_id, tag))
        if cur.rowcount != 1:
            return False
        db.execute(
            "INSERT INTO tag_history (dataset_id, tag, snapshot_id, at, by) VALUES (?,?,?,?,?)",
            (dataset_id, tag, REMOVED, at, by),
        )
        return True

    def tag_history(self, dataset_id: str, tag: str) -> list[TagEvent]:
        rows = self.db.execute(
            "SELECT snapshot_id, at, by FROM tag_history WHERE dataset_id=? AND tag=? ORDER BY id",
            (dataset_id, tag),
        )
        return [TagEvent(r[0] if r[0] != REMOVED else None, r[1], r[2]) for r in rows]

    def tags_of(self, snapshot_id: str) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM tags WHERE snapshot_id=? ORDER BY name", (snapshot_id,)
        )
        return [r[0] for r in rows]

    # staged changes of the head ----------------------------------------------

    def stage(
        self, db: sqlite3.Connection, dataset_id: str, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Upsert staged rows; each gets a fresh sequence number for snapshot capture."""
        seq = db.execute(
            "UPDATE counters SET value=value+? WHERE name='staged_seq' RETURNING value",
            (len(rows),),
        ).fetchone()[0] - len(rows)
        db.executemany(
            "INSERT OR REPLACE INTO staged (dataset_id, dir, name, kind, object, size, mode,"
            " mtime_ns, meta, deleted, seq, prev_base, prev_kind, prev_object, prev_size,"
            " prev_mode, prev_mtime_ns, prev_meta) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    dataset_id,
                    r["dir"],
                    r["name"],
                    r["kind"],
                    r["object"],
                    r["size"],
                    r["mode"],
                    r["mtime_ns"],
                    r["meta"] or "",
                    int(r["deleted"]),
                    seq + i + 1,
                    *(r.get(c) for c in NOTED),
                )
                for i, r in enumerate(rows)
            ],
        )

    def staged(self, dataset_id: str, db: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        """A head's staged rows, with what each noted of its base (``NOTED``)."""
        rows = (db or self.db).execute(
            "SELECT dir, name, kind, object, size, mode, mtime_ns, meta, deleted, seq, "
            + ", ".join(NOTED)
            + " FROM staged WHERE dataset_id=? ORDER BY dir, name",
            (dataset_id,),
        )
        return [_staged(r) for r in rows]

    def staged_entry(self, dataset_id: str, d: str, n: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT dir, name, kind, object, size, mode, mtime_ns, meta, deleted, seq"
            " FROM staged WHERE dataset_id=? AND dir=? AND name=?",
            (dataset_id, d, n),
        ).fetchone()
        return _staged(row) if row else None

    def staged_dir(self, dataset_id: str, d: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT dir, name, kind, object, size, mode, mtime_ns, meta, deleted, seq"
            " FROM staged WHERE dataset_id=? AND dir=?",
            (dataset_id, d),
        )
        return [_staged(r) for r in rows]

    def staged_tree(self, dataset_id: str, prefix: str) -> list[dict[str, Any]]:
        if not prefix:
            return self.staged(dataset_id)
        rows = self.db.execute(
            "SELECT dir, name, kind, object, size, mode, mtime_ns, meta, deleted, seq"
            " FROM staged WHERE dataset_id=? AND (dir=? OR substr(dir, 1, ?)=?)",
            (dataset_id, prefix, len(prefix) + 1, prefix + "/"),
        )
        return [_staged(r) for r in rows]

    def staged_seq(self) -> int:
        """The last sequence number handed to a staged row, in any dataset."""
        return int(
            self.db.execute("SELECT value FROM counters WHERE name='staged_seq'").fetchone()[0]
        )

    def staged_after(self, seq: int) -> list[tuple[str, str, str, str | None]]:
        """(dataset name, dir, name, kind) of staged rows (and dropped ones, whose kind is
        None) numbered after ``seq``."""
        rows = self.db.execute(
            "SELECT d.name, s.dir, s.name, s.kind FROM staged s"
            " JOIN datasets d ON d.id=s.dataset_id WHERE s.seq>?"
            " UNION ALL SELECT d.name, u.dir, u.name, NULL FROM unstaged u"
            " JOIN datasets d ON d.id=u.dataset_id WHERE u.seq>?",
            (seq, seq),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def has_staged(self, dataset_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM staged WHERE dataset_id=? LIMIT 1", (dataset_id,))
        return row.fetchone() is not None

    def unstage(
        self, db: sqlite3.Connection, dataset_id: str, keys: Sequence[tuple[str, str]]
    ) -> None:
        """Drop staged rows by (dir, name): the head falls back to its base there.

        The drop is numbered like a staged row and journaled in ``unstaged`` for an hour,
        so a view polling :meth:`staged_after` still learns the path changed."""
        if not keys:
            return
        seq = db.execute(
            "UPDATE counters SET value=value+? WHERE name='staged_seq' RETURNING value",
            (len(keys),),
        ).fetchone()[0] - len(keys)
        now = time.time()
        db.executemany(
            "DELETE FROM staged WHERE dataset_id=? AND dir=? AND name=?",
            [(dataset_id, d, n) for d, n in keys],
        )
        db.execute("DELETE FROM unstaged WHERE at<?", (now - UNSTAGED_KEEP_SECONDS,))
        db.executemany(
            "INSERT INTO unstaged VALUES (?,?,?,?,?)",
            [(seq + i + 1, dataset_id, d, n, now) for i, (d, n) in enumerate(keys)],
        )

    def clear_staged(self, db: sqlite3.Connection, dataset_id: str, upto_seq: int) -> None:
        """Drop what a snapshot captured; rows staged after the capture stay staged."""
        db.execute("DELETE FROM staged WHERE dataset_id=? AND seq<=?", (dataset_id, upto_seq))

    # writes not yet flushed ----------------------------------------------------

    def mark_unsynced(
        self, db: sqlite3.Connection, dataset_id: str, files: Sequence[tuple[str, str, str, int]]
    ) -> None:
        """Note head files, as (dir, name, object, size), whose objects were stored
        without a flush; a note replaced or dropped later is renumbered or goes."""
        db.executemany(
            "INSERT OR REPLACE INTO unsynced (dataset_id, dir, name, object, size)"
            " VALUES (?,?,?,?,?)",
            [(dataset_id, *f) for f in files],
        )

    def holds_durable(self, db: sqlite3.Connection, dataset_id: str, dir: str, name: str) -> bool:
        """True when the head's staged row for a path (a file or a removal) was written
        durably: replacing it with an unflushed write could lose both at a power cut."""
        row = db.execute(
            "SELECT s.deleted, s.object, u.object FROM staged s LEFT JOIN unsynced u"
            " ON u.dataset_id=s.dataset_id AND u.dir=s.dir AND u.name=s.name"
            " WHERE s.dataset_id=? AND s.dir=? AND s.name=?",
            (dataset_id, dir, name),
        ).fetchone()
        return row is not None and (bool(row[0]) or row[2] is None or row[1] != row[2])

    def unsynced_in(
        self, dataset_id: str, keys: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str, str]]:
        """(dir, name, object) of the noted unflushed files among ``keys`` (notes are few:
        the mount flushes them every few seconds)."""
        wanted = set(keys)
        rows = self.db.execute(
            "SELECT dir, name, object FROM unsynced WHERE dataset_id=?", (dataset_id,)
        )
        return [(d, n, o) for d, n, o in rows if (d, n) in wanted]

    def unsynced_mark(self) -> int | None:
        """The newest note; a flush of the filesystem taken after reading it covers every
        note up to it (their objects were in place before they committed)."""
        row = self.db.execute("SELECT max(seq) FROM unsynced").fetchone()
        return row[0] if row else None

    def forget_unsynced(
        self, db: sqlite3.Connection, upto: int | None, keys: Sequence[tuple[str, str, str]] = ()
    ) -> None:
        """Drop notes a flush covered: all up to ``upto``, and the (dataset, dir, name) ``keys``."""
        if upto is not None:
            db.execute("DELETE FROM unsynced WHERE seq<=?", (upto,))
        db.executemany("DELETE FROM unsynced WHERE dataset_id=? AND dir=? AND name=?", keys)

    def unsynced_files(self) -> list[dict[str, Any]]:
        """Noted files the head still holds (the same object staged at the path)."""
        rows = self.db.execute(
            "SELECT u.dataset_id, u.dir, u.name, u.object, u.size FROM unsynced u"
            " JOIN staged s ON s.dataset_id=u.dataset_id AND s.dir=u.dir AND s.name=u.name"
            " WHERE s.object=u.object AND s.deleted=0"
        )
        return [dict(r) for r in rows]

    def release_free_pages(self) -> None:
        """Give pages freed by cleared staged rows back to the filesystem (outside a write
        transaction); a no-op on catalogs created before incremental vacuum was on."""
        self.db.executescript("PRAGMA incremental_vacuum;")

    def staged_objects(self) -> set[str]:
        rows = self.db.execute(
            "SELECT DISTINCT object FROM staged WHERE object IS NOT NULL AND deleted=0"
        )
        return {r[0] for r in rows}

    def staged_object_paths(self, objects: set[str]) -> list[tuple[str, str, str]]:
        """(dataset name, path, object) of staged rows holding any of ``objects``."""
        rows = self.db.execute(
            "SELECT d.name, s.dir, s.name, s.object FROM staged s JOIN datasets d"
            " ON d.id=s.dataset_id WHERE s.object IS NOT NULL AND s.deleted=0"
        )
        return [(r[0], f"{r[1]}/{r[2]}" if r[1] else r[2], r[3]) for r in rows if r[3] in objects]

    # import cache ------------------------------------------------------------

    def import_cache(self, dataset_id: str) -> dict[str, tuple[int, int, int, str]]:
        rows = self.db.execute(
            "SELECT src, size, mtime_ns, inode, object FROM import_cache WHERE dataset_id=?",
            (dataset_id,),
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def remember_imports(
        self,
        db: sqlite3.Connection,
        dataset_id: str,
        rows: Sequence[tuple[str, int, int, int, str]],
    ) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO import_cache VALUES (?,?,?,?,?,?)",
            [(dataset_id, *r) for r in rows],
        )

    # tokens and grants ---------------------------------------------------------
    # API tokens (secrets stored only as sha256 hashes), per-dataset grants, and the
    # cached checksums the API hands out; datastore.catalog.access is the only caller.

    def insert_token(
        self, token_id: str, user: str, admin: bool, secret_hash: str, created_at: str
    ) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO tokens (id, user, admin, secret_hash, created_at) VALUES (?,?,?,?,?)",
                (token_id, user, int(admin), secret_hash, created_at),
            )

    def insert_first_token(
        self, token_id: str, user: str, admin: bool, secret_hash: str, created_at: str
    ) -> bool:
        """Insert only when no token exists yet (the first start of a daemon); True if done."""
        with self.write() as db:
            if db.execute("SELECT 1 FROM tokens LIMIT 1").fetchone() is not None:
                return False
            db.execute(
                "INSERT INTO tokens (id, user, admin, secret_hash, created_at) VALUES (?,?,?,?,?)",
                (token_id, user, int(admin), secret_hash, created_at),
            )
        return True

    def token(self, token_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, user, admin, secret_hash, created_at FROM tokens WHERE id=?", (token_id,)
        ).fetchone()
        return self._token_row(row) if row else None

    def tokens(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, user, admin, secret_hash, created_at FROM tokens ORDER BY created_at, id"
        )
        return [self._token_row(r) for r in rows]

    def delete_token(self, token_id: str) -> bool:
        with self.write() as db:
            return db.execute("DELETE FROM tokens WHERE id=?", (token_id,)).rowcount == 1

    def grant(self, dataset_id: str, principal: str) -> str | None:
        row = self.db.execute(
            "SELECT permission FROM grants WHERE dataset_id=? AND principal=?",
            (dataset_id, principal),
        ).fetchone()
        return row[0] if row else None

    def grants(self, dataset_id: str) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT principal, permission FROM grants WHERE dataset_id=? ORDER BY principal",
            (dataset_id,),
        )
        return [(r[0], r[1]) for r in rows]

    def grants_of(self, principal: str) -> dict[str, str]:
        """dataset id -> permission for every grant a principal holds."""
        rows = self.db.execute(
            "SELECT dataset_id, permission FROM grants WHERE principal=?", (principal,)
        )
        return {r[0]: r[1] for r in rows}

    def set_grant(self, dataset_id: str, principal: str, permission: str) -> bool:
        """Create or replace a grant; True when it is new."""
        with self.write() as db:
            existed = db.execute(
                "SELECT 1 FROM grants WHERE dataset_id=? AND principal=?", (dataset_id, principal)
            ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO grants (dataset_id, principal, permission) VALUES (?,?,?)",
                (dataset_id, principal, permission),
            )
        return existed is None

    def delete_grant(self, dataset_id: str, principal: str) -> bool:
        with self.write() as db:
            cur = db.execute(
                "DELETE FROM grants WHERE dataset_id=? AND principal=?", (dataset_id, principal)
            )
            return cur.rowcount == 1

    def cached_checksum(self, oid: str, kind: str) -> str | None:
        return self.cached_analysis(oid, f"checksum:{kind}", "")

    def cache_checksum(self, oid: str, kind: str, digest: str) -> None:
        self.cache_analysis(oid, f"checksum:{kind}", "", digest)

    @staticmethod
    def _token_row(r: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": r[0],
            "user": r[1],
            "admin": bool(r[2]),
            "secret_hash": r[3],
            "created_at": r[4],
        }

    # end of tokens and grants --------------------------------------------------

    # blob index ----------------------------------------------------------------
    # Format 3: which pack holds each blob. Rows commit with the staged rows that first
    # reference their blobs, after the packs are durable (docs/design.md "Format 3").

    def blob(self, blob_id: str) -> BlobRef | None:
        row = self.db.execute(
            "SELECT pack, offset, length, raw_length, codec FROM blobs WHERE id=?", (blob_id,)
        ).fetchone()
        return None if row is None else BlobRef(blob_id, *row)

    def blobs(self, blob_ids: Sequence[str]) -> dict[str, BlobRef]:
        """The index rows of many blobs at once (a chunked object's chunks)."""
        select = "SELECT id, pack, offset, length, raw_length, codec FROM blobs"
        return {r[0]: BlobRef(*r) for r in self._by_ids(select, blob_ids)}

    def indexed_sizes(self, oids: Sequence[str]) -> dict[str, int]:
        """The sizes of those of ``oids`` the index holds, as blobs or as chunk lists."""
        found = dict(self._by_ids("SELECT id, raw_length FROM blobs", oids))
        rest = [o for o in oids if o not in found]
        found.update(self._by_ids("SELECT id, size FROM chunked", rest))
        return found

    def _by_ids(self, select: str, ids: Sequence[str]) -> Iterator[Any]:
        """``select`` (whose first column is ``id``) restricted to ``ids``, 500 at a time."""
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            yield from self.db.execute(f"{select} WHERE id IN ({','.join('?' * len(part))})", part)

    def chunk_list(self, oid: str) -> tuple[int, bytes] | None:
        """(size, encoded chunk list) of a chunked object."""
        row = self.db.execute("SELECT size, chunks FROM chunked WHERE id=?", (oid,)).fetchone()
        return None if row is None else (row[0], row[1])

    def chunked_objects(self) -> Iterator[tuple[str, int, bytes]]:
        yield from self.db.execute("SELECT id, size, chunks FROM chunked")

    def add_blobs(
        self,
        db: sqlite3.Connection,
        packs: dict[str, int],
        refs: Sequence[BlobRef],
        replace: Collection[str] = (),
        chunked: dict[str, tuple[int, bytes]] | None = None,
    ) -> None:
        """Index new packs' blobs and chunked objects. A blob already indexed keeps its
        row (another writer stored it first; this copy is dead bytes until a repack),
        unless it is in ``replace``: its stored copy was found damaged, or a repack
        moved it; then the new row points at the new copy."""
        db.executemany(
            "INSERT OR IGNORE INTO chunked (id, size, chunks) VALUES (?,?,?)",
            [(oid, size, chunks) for oid, (size, chunks) in (chunked or {}).items()],
        )
        counts: dict[str, int] = {}
        for r in refs:
            counts[r.pack] = counts.get(r.pack, 0) + 1
        now = time.time()
        db.executemany(
            "INSERT OR IGNORE INTO packs (id, size, blobs, created_at) VALUES (?,?,?,?)",
            [(p, size, counts.get(p, 0), now) for p, size in packs.items()],
        )
        rows = [(r.id, r.pack, r.offset, r.length, r.raw_length, r.codec) for r in refs]
        db.executemany(
            "INSERT OR IGNORE INTO blobs (id, pack, offset, length, raw_length, codec)"
            " VALUES (?,?,?,?,?,?)",
            [row for row in rows if row[0] not in replace],
        )
        db.executemany(
            "INSERT OR REPLACE INTO blobs (id, pack, offset, length, raw_length, codec)"
            " VALUES (?,?,?,?,?,?)",
            [row for row in rows if row[0] in replace],
        )

    def blob_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM blobs").fetchone()[0])

    def packs(self) -> dict[str, tuple[int, float]]:
        """Every indexed pack: (size, created_at)."""
        return {
            r[0]: (r[1], r[2]) for r in self.db.execute("SELECT id, size, created_at FROM packs")
        }

    def blob_refs(self) -> Iterator[BlobRef]:
        for r in self.db.execute(
            "SELECT id, pack, offset, length, raw_length, codec FROM blobs ORDER BY pack, offset"
        ):
            yield BlobRef(*r)

    def drop_chunked(self, db: sqlite3.Connection, oids: Sequence[str]) -> None:
        db.executemany("DELETE FROM chunked WHERE id=?", [(o,) for o in oids])

    def drop_packs(self, db: sqlite3.Connection, packs: Sequence[str]) -> None:
        """Forget packs gc removes, with every blob row that still places a blob in one."""
        db.executemany("DELETE FROM blobs WHERE pack=?", [(p,) for p in packs])
        db.executemany("DELETE FROM packs WHERE id=?", [(p,) for p in packs])

    # end of blob index ---------------------------------------------------------

    # analytics cache -----------------------------------------------------------
    # Table statistics, schemas, quality reports and compares by object id: the bytes
    # behind an id never change, so an entry is valid for as long as the object exists.

    def cached_analysis(self, oid: str, kind: str, params: str) -> str | None:
        row = self.db.execute(
            "SELECT result FROM analytics_cache WHERE object=? AND kind=? AND params=?",
            (oid, kind, params),
        ).fetchone()
        return row[0] if row else None

    def cache_analysis(self, oid: str, kind: str, params: str, result: str) -> None:
        with self.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO analytics_cache (object, kind, params, result)"
                " VALUES (?,?,?,?)",
                (oid, kind, params, result),
            )

    def forget_analyses(self, objects: Sequence[str]) -> None:
        """Drop what was computed from objects gc has removed."""
        with self.write() as db:
            db.executemany("DELETE FROM analytics_cache WHERE object=?", [(o,) for o in objects])

    # end of analytics cache ----------------------------------------------------

    # tasks ---------------------------------------------------------------------
    # Processing tasks (datastore.tasks.runner is the only caller). progress and errors are JSON
    # texts; at most one queued or processing task per dataset, checked in the insert's
    # own write transaction so two starters cannot both win.

    def insert_task(self, row: dict[str, Any]) -> str | None:
        """Insert a task unless the dataset has an active one; returns the blocker's id."""
        with self.write() as db:
            busy = db.execute(
                "SELECT id FROM tasks WHERE dataset_id=? AND status IN ('queued','processing')",
                (row["dataset_id"],),
            ).fetchone()
            if busy is not None:
                return str(busy[0])
            db.execute(
                "INSERT INTO tasks (id, dataset_id, action, status, progress, errors,"
                " created_at, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    row["id"],
                    row["dataset_id"],
                    row["action"],
                    row["status"],
                    json.dumps(row["progress"]),
                    json.dumps(row["errors"]),
                    row["created_at"],
                    row["started_at"],
                    row["finished_at"],
                ),
            )
        return None

    def update_task(self, task_id: str, only_active: bool = False, **fields: Any) -> bool:
        """Update a task; ``only_active`` never overwrites a finished one (recovery races)."""
        sets = ", ".join(f"{k}=?" for k in fields)
        values = [json.dumps(v) if isinstance(v, dict | list) else v for v in fields.values()]
        where = " AND status IN ('queued','processing')" if only_active else ""
        with self.write() as db:
            cur = db.execute(f"UPDATE tasks SET {sets} WHERE id=?{where}", (*values, task_id))
            return cur.rowcount == 1

    def task(self, task_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM tasks WHERE id=?", (task_id,)).fetchone()
        return _task(row) if row else None

    def latest_task(self, dataset_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM tasks WHERE dataset_id=? ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (dataset_id,),
        ).fetchone()
        return _task(row) if row else None

    def dataset_name_of(self, dataset_id: str) -> str | None:
        row = self.db.execute("SELECT name FROM datasets WHERE id=?", (dataset_id,)).fetchone()
        return str(row[0]) if row else None

    def active_tasks(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM tasks WHERE status IN ('queued','processing')")
        return [_task(r) for r in rows]

    # end of tasks ----------------------------------------------------------------


def _dataset(r: sqlite3.Row) -> DatasetRow:
    return DatasetRow(
        id=r["id"],
        name=r["name"],
        description=r["description"],
        metadata=json.loads(r["metadata"]),
        rules=json.loads(r["rules"]),
        root_mode=r["root_mode"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        base=r["base"],
        root_meta=r["root_meta"],
        root_mtime_ns=r["root_mtime_ns"],
    )


def _task(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "dataset_id": r["dataset_id"],
        "action": r["action"],
        "status": r["status"],
        "progress": json.loads(r["progress"]),
        "errors": json.loads(r["errors"]),
        "created_at": r["created_at"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
    }


def _layered(manifest: Manifest) -> list[tuple[RangeRef, int]]:
    """A written manifest's ranges in catalog order, each with its layer (1: delta)."""
    out: list[tuple[RangeRef, int]] = []
    for layer, ranges in ((0, manifest.base), (1, manifest.delta)):
        for r in ranges:
            if not isinstance(r, RangeRef):
                raise TypeError("a snapshot lists written ranges only")
            out.append((r, layer))
    return out


def _snapshot(r: sqlite3.Row) -> SnapshotRow:
    return SnapshotRow(
        id=r["id"],
        dataset_id=r["dataset_id"],
        parent=r["parent"],
        created_at=r["created_at"],
        message=r["message"],
        author=r["author"],
        sources=json.loads(r["sources"]),
        file_count=r["file_count"],
        size_bytes=r["size_bytes"],
    )


def _staged(r: sqlite3.Row) -> dict[str, Any]:
    noted = dict(zip(NOTED, r[10:], strict=True)) if len(r) > 10 else {}
    return noted | {
        "dir": r[0],
        "name": r[1],
        "kind": r[2],
        "object": r[3],
        "size": r[4],
        "mode": r[5],
        "mtime_ns": r[6],
        "meta": r[7],
        "deleted": bool(r[8]),
        "seq": r[9],
    }
