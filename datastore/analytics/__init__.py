"""Table analytics over committed files: schema, preview, stats, quality, compare, export.

The views (CLI, API) call :class:`Analytics`; it resolves ``name[@ref]`` and a path to the
entry's object, detects the table format (:mod:`datastore.analytics.tabular`), runs DuckDB over the
object file in place, and answers with the JSON documents of SPEC sections 6 and 11.

Results are cached in the catalog by object id (plus kind and parameters): the bytes
behind an object never change, so the same bytes are never profiled twice, whichever
dataset, version or path they appear under, and an unchanged file costs nothing in a
new snapshot. ``CACHE_VERSION`` is part of every cache key so that a change to how a
figure is computed invalidates what was cached before.

Quality score (``overall_score``, 0-100): each check scores in [0, 1] and the score is
100 times their weighted mean —

=================  ======  ===============================================
check              weight  score
=================  ======  ===============================================
missing_values     0.30    1 - missing cells / all cells
duplicate_rows     0.20    1 - duplicate rows / rows
constant_columns   0.15    1 - constant columns / columns
mixed_types        0.15    1 - mixed-type columns / columns
outliers           0.20    1 - outlier values (1.5 IQR) / numeric values
=================  ======  ===============================================

An empty file (no rows) scores 0 and fails ``empty_file``. A check passes when missing
cells stay at or under 5% in every column, duplicates under 1% of rows, no column is
constant or of mixed types, and outliers stay under 5% of numeric values.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datastore import names
from datastore.analytics import profile as profiling
from datastore.analytics.profile import Progress, empty_profile, json_value
from datastore.analytics.tabular import (
    TABLE,
    Limits,
    TableFile,
    columns,
    detect,
    dtype,
    open_table,
    quote,
    resniff,
    run,
)
from datastore.errors import InvalidRequest, MalformedTable
from datastore.storage.manifest import Entry
from datastore.store import Store

CACHE_VERSION = "1"
PREVIEW_DEFAULT = 20
PREVIEW_MAX = 1000
MIXED_KEY = f"mixed/v{CACHE_VERSION}"
EXPORT_FORMATS = {
    "csv": ("text/csv", "(FORMAT csv, HEADER true)"),
    "parquet": ("application/vnd.apache.parquet", "(FORMAT parquet)"),
    "jsonl": ("application/x-ndjson", "(FORMAT json)"),
}


class Analytics:
    """Table analytics over one store; safe to share across threads."""

    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        self.limits = limits or Limits.from_env()
        self.scratch = store.root / "tmp-analytics"
        # per document: concurrent requests for the same uncached bytes wait for one
        # profile, and a document computed from another (quality from stats) never waits
        # on itself, as it could on a lock stripe both keys hash to
        self._guard = threading.Lock()
        self._busy: dict[tuple[str, str, str], list[Any]] = {}

    # locating tables -----------------------------------------------------------------

    def entry(self, spec: str, path: str) -> tuple[Entry, str]:
        """The file entry at ``path`` in ``name[@ref]`` and its object id."""
        path = names.file_path(path)
        entry = self.store.stat(spec, path)
        return entry, entry.file_object()

    def table(self, entry: Entry) -> TableFile:
        """The entry's object as a table file (``not_tabular`` if it is none); this reads
        the file's first bytes, so cache hits skip it."""
        assert entry.object is not None
        return detect(self.store.object_path(entry.object), entry.path, entry.object)

    def locate(self, spec: str, path: str) -> tuple[Entry, TableFile]:
        entry, _ = self.entry(spec, path)
        return entry, self.table(entry)

    @contextmanager
    def connection(self, table: TableFile, materialize: bool = True) -> Iterator[Any]:
        with open_table(table, self.scratch, self.limits, materialize) as con:
            yield con

    # the cache -----------------------------------------------------------------------

    def cached(
        self, oid: str, kind: str, params: str, compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The cached document for (object, kind, params), computed once when missing."""
        key = f"{kind}/v{CACHE_VERSION}"
        hit = self.store.catalog.cached_analysis(oid, key, params)
        if hit is not None:
            return json.loads(hit)
        with self._computing((oid, key, params)):
            hit = self.store.catalog.cached_analysis(oid, key, params)
            if hit is not None:
                return json.loads(hit)
            doc = compute()
            self.store.catalog.cache_analysis(oid, key, params, json.dumps(doc))
            return doc

    @contextmanager
    def _computing(self, doc: tuple[str, str, str]) -> Iterator[None]:
        """Held while one document is computed; the lock lives while anyone waits on it."""
        with self._guard:
            entry = self._busy.setdefault(doc, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._busy[doc]

    # schema and preview -----------------------------------------------------------------

    def schema(self, spec: str, path: str) -> dict[str, Any]:
        """``{"path", "object", "format", "columns": [{"name", "dtype"}], "row_count"}``."""
        entry, oid = self.entry(spec, path)
        doc = self.cached(oid, "schema", "", lambda: self._schema(self.table(entry)))
        return {"path": entry.path, **doc}

    def _schema(self, table: TableFile) -> dict[str, Any]:
        head = {"object": _oid(table), "format": table.format}
        if table.empty:
            return {**head, "columns": [], "row_count": 0}
        with self.connection(table, materialize=False) as con:
            cols = _column_docs(con)
            rows = int(_read(con, table, f"SELECT count(*) FROM {TABLE}")[0][0])
        return {**head, "columns": cols, "row_count": rows}

    def preview(self, spec: str, path: str, limit: int = PREVIEW_DEFAULT) -> dict[str, Any]:
        """The first ``limit`` rows in file order: ``{"columns", "rows": [{...}]}``."""
        if limit < 0:
            raise InvalidRequest("limit must be zero or more")
        limit = min(limit, PREVIEW_MAX)
        entry, oid = self.entry(spec, path)
        doc = self.cached(
            oid, "preview", str(limit), lambda: self._preview(self.table(entry), limit)
        )
        return {"path": entry.path, **doc}

    def _preview(self, table: TableFile, limit: int) -> dict[str, Any]:
        head = {"object": _oid(table), "format": table.format}
        if table.empty:
            return {**head, "columns": [], "rows": []}
        with self.connection(table, materialize=False) as con:
            con.execute("SET preserve_insertion_order=true")
            cols = _column_docs(con)
            sql = f"SELECT * FROM {TABLE} LIMIT {int(limit)}"
            got = _read(con, table, sql)
        names_ = [c["name"] for c in cols]
        rows = [{n: json_value(v) for n, v in zip(names_, r, strict=True)} for r in got]
        return {**head, "columns": cols, "rows": rows}

    # statistics and quality -------------------------------------------------------------

    def stats(self, spec: str, path: str, progress: Progress | None = None) -> dict[str, Any]:
        """SPEC's statistics document (section 6 and 11), cached by object id;
        ``progress(done, total)`` hears of each profiling pass."""
        entry, oid = self.entry(spec, path)
        doc = self.cached(oid, "stats", "", lambda: self._stats(self.table(entry), progress))
        return {"path": entry.path, **doc}

    def stats_of(self, table: TableFile) -> dict[str, Any]:
        return self.cached(_oid(table), "stats", "", lambda: self._stats(table))

    def _stats(self, table: TableFile, progress: Progress | None = None) -> dict[str, Any]:
        head = {"object": _oid(table), "format": table.format}
        if table.empty:
            return {**head, **empty_profile()}
        with self.connection(table) as con:
            doc = profiling.profile(con, table, self.limits.exact_values(), progress)
        mixed = doc.pop("mixed_types")  # kept for the quality report, not shown in stats
        self.store.catalog.cache_analysis(_oid(table), MIXED_KEY, "", json.dumps(mixed))
        return {**head, **doc}

    def quality(self, spec: str, path: str) -> dict[str, Any]:
        """``{"overall_score", "checks": [{"name", "passed", "details", "score"}]}``."""
        entry, oid = self.entry(spec, path)
        doc = self.cached(oid, "quality", "", lambda: self._quality(self.table(entry)))
        return {"path": entry.path, **doc}

    def _quality(self, table: TableFile) -> dict[str, Any]:
        stats = self.stats_of(table)
        mixed = self._mixed_type_columns(table, stats)
        from datastore.analytics.quality import report

        return {"object": _oid(table), "format": table.format, **report(stats, mixed)}

    def _mixed_type_columns(self, table: TableFile, stats: dict[str, Any]) -> list[str]:
        """Text columns holding both numbers and non-numbers (a CSV column typed object)."""
        text = [n for n, c in stats["columns"].items() if c["type"] == "object"]
        if not text or not stats["row_count"]:
            return []
        known = self.store.catalog.cached_analysis(_oid(table), MIXED_KEY, "")
        if known is not None:  # found by the profile, which read every value already
            return list(json.loads(known))
        exprs = []
        for n in text:
            exprs.append(f"count(*) FILTER (WHERE TRY_CAST({quote(n)} AS DOUBLE) IS NOT NULL)")
            exprs.append(f"count({quote(n)})")
        with self.connection(table, materialize=False) as con:  # one pass: no copy
            got = _read(con, table, f"SELECT {', '.join(exprs)} FROM {TABLE}")[0]
        return [n for i, n in enumerate(text) if 0 < got[2 * i] < got[2 * i + 1]]

    # compare and export -------------------------------------------------------------------

    def compare(
        self, name: str, path: str, from_ref: str, to_ref: str | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """Schema diff, drift per column and (with ``key``) row-level changes between two
        versions of one table; ``to_ref`` None is the head."""
        from datastore.analytics.compare import compare_tables

        base = names.split_ref(name)[0]
        from_spec = f"{base}@{from_ref}"
        to_spec = f"{base}@{to_ref}" if to_ref else base
        from_version = self.store.resolve(from_spec)
        to_version = self.store.resolve(to_spec)
        _, a = self.locate(from_spec, path)
        _, b = self.locate(to_spec, path)
        params = f"{_oid(b)}|{key or ''}"
        doc = self.cached(_oid(a), "compare", params, lambda: compare_tables(self, a, b, key))
        doc["summary"] = {
            "from": from_spec,
            "to": to_spec,
            "from_snapshot": from_version.snapshot,
            "to_snapshot": to_version.snapshot,
            **doc["summary"],
        }
        return {"path": names.file_path(path), **doc}

    def export(self, spec: str, path: str, fmt: str, dest: Path) -> str:
        """Write the table to ``dest`` as csv, parquet or jsonl; returns the content type."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidRequest(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
        content_type, options = EXPORT_FORMATS[fmt]
        _, table = self.locate(spec, path)
        if table.empty:
            dest.write_bytes(b"")
            return content_type
        target = str(dest).replace("'", "''")
        with self.connection(table, materialize=False) as con:
            con.execute("SET preserve_insertion_order=true")
            _read(con, table, f"COPY (SELECT * FROM {TABLE}) TO '{target}' {options}")
        return content_type

    @contextmanager
    def exported(self, spec: str, path: str, fmt: str) -> Iterator[tuple[Path, str]]:
        """The table converted into a scratch file, for a view to stream; yields (file,
        content type) and removes the file afterwards. The scratch lives with the other
        analytics scratch, where gc never looks (DuckDB replaces a file it writes, so a
        locked store temp would not protect it)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="export-", dir=self.scratch)
        os.close(fd)
        target = Path(name)
        try:
            yield target, self.export(spec, path, fmt, target)
        finally:
            target.unlink(missing_ok=True)


def _column_docs(con: Any) -> list[dict[str, str]]:
    return [{"name": n, "dtype": dtype(t)} for n, t in columns(con)]


def _read(con: Any, table: TableFile, sql: str) -> list[tuple[Any, ...]]:
    """Run a query that reads the file directly, re-sniffing types once if a row past
    DuckDB's sample does not fit the sniffed type."""
    import duckdb

    try:
        return run(con, sql, table)
    except MalformedTable as exc:
        if table.format != "csv.gz" and table.format not in ("csv", "tsv"):
            raise
        if not isinstance(exc.__cause__, duckdb.ConversionException):
            raise
    resniff(con, table)
    return run(con, sql, table)


def _oid(table: TableFile) -> str:
    return table.object
