"""Delta ranges: a version's changes laid over an unchanged base, LSM style.

A snapshot of a few changes in a large dataset would touch most of its ranges (1,000
random changes hit ~630 of ~980 ranges at 1M entries), and reading, splicing and
rewriting each costs far more than the change. So a manifest is a *base* (sorted,
disjoint ranges, as before) and a *delta*: ranges of change rows, sorted by key, each a
new entry or a removal (``deleted``) plus the entry the base holds at that key (the
``prev_*`` columns, null where the base has none). The prev columns let a version's
totals, a diff against anything on the same base, and the dropping of changes that
restore the base state work from the delta alone, without reading base ranges.

A delta grows with each snapshot taken on its base; once it outgrows
:func:`compact_limit` the next snapshot folds it into the base (copy-on-write, only the
ranges it touches), and the delta starts again empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from datastore.storage.arrow import pa, pc

#: a delta may hold this many rows whatever the base's size (small datasets)...
DELTA_MIN_ROWS = 64
#: ...or this fraction of the base's rows: lookups and listings read the whole delta's
#: key span, and every snapshot on the base rewrites the delta
DELTA_FRACTION = 16

PREV = ("prev_kind", "prev_object", "prev_size", "prev_mode", "prev_mtime_ns", "prev_meta")
#: an entry's columns, as the prev columns name them
ENTRY_FIELDS = ("kind", "object", "size", "mode", "mtime_ns", "meta")

Key = tuple[str, str]


@cache
def delta_schema(entry: pa.Schema) -> pa.Schema:
    """A delta row: an entry's columns, ``deleted``, then the base's entry at that key."""
    fields = [entry.field(n) for n in entry.names]
    fields.append(pa.field("deleted", pa.bool_()))
    fields += [pa.field(p, entry.field(f).type) for p, f in zip(PREV, ENTRY_FIELDS, strict=True)]
    return pa.schema(fields)


def is_delta(table: pa.Table) -> bool:
    return "prev_kind" in table.schema.names


def compact_limit(base_rows: int) -> int:
    """How many rows a delta over ``base_rows`` base entries may hold before it is folded in."""
    return max(DELTA_MIN_ROWS, base_rows // DELTA_FRACTION)


def path_keys(table: pa.Table) -> pa.Array:
    """One string per entry, dir NUL name (no name holds a NUL), for set lookups."""
    joined = pc.binary_join_element_wise(table["dir"], table["name"], "\x00")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def overlay(base: pa.Table, changes: pa.Table, entry: pa.Schema) -> pa.Table:
    """Sorted entries with sorted changes (rows with ``deleted``) laid on: the base's
    rows at other keys, and every change that is not a removal, in key order."""
    if changes.num_rows == 0:
        return base
    return _merged(base.cast(entry), upserts(changes, entry), changes)


def supersede(older: pa.Table, newer: pa.Table) -> pa.Table:
    """Two sorted change tables as one: ``newer``'s row wins where both hold a key."""
    if older.num_rows == 0:
        return newer
    return _merged(older.select(newer.schema.names).cast(newer.schema), newer, newer)


def _merged(kept: pa.Table, added: pa.Table, keys_of: pa.Table) -> pa.Table:
    """``kept``'s rows at keys ``keys_of`` does not hold, and ``added``, in key order."""
    kept = kept.filter(pc.invert(pc.is_in(path_keys(kept), value_set=path_keys(keys_of))))
    merged = pa.concat_tables([kept, added])
    return merged.sort_by([("dir", "ascending"), ("name", "ascending")])


def extend(
    old: pa.Table,
    changes: pa.Table,
    base_entries: Callable[[Sequence[Key]], dict[Key, dict[str, Any]]],
    schema: pa.Schema,
    noted: dict[Key, dict[str, Any] | None] | None = None,
) -> pa.Table:
    """The delta after ``changes`` (sorted staged rows): the old delta's rows at other
    keys, and each change with the base's entry at its key: the old delta's prev where
    it held the key, else what staging ``noted`` (the base's entry, or None where it has
    none), else looked up in the base. A change that leaves a key as the base has it (a
    removal of a key the base lacks, an entry equal to the base's) drops out."""
    noted = noted or {}
    held = {(r["dir"], r["name"]): r for r in old.to_pylist()}
    rows = changes.to_pylist()
    keys = [(r["dir"], r["name"]) for r in rows]
    found = base_entries([k for k in keys if k not in held and k not in noted])
    out = dict(held)
    for key, r in zip(keys, rows, strict=True):
        before = held.get(key)
        if before is not None:
            prev = {p: before[p] for p in PREV}
        else:
            prev = prev_columns(noted[key] if key in noted else found.get(key))
        row = {n: r[n] for n in schema.names if n in r} | prev
        if _unchanged(row):
            out.pop(key, None)
        else:
            out[key] = row
    return pa.Table.from_pylist([out[k] for k in sorted(out)], schema=schema)


def prev_columns(entry: dict[str, Any] | None) -> dict[str, Any]:
    """An entry (or its absence) as a delta row's prev columns."""
    if entry is None:
        return dict.fromkeys(PREV)
    return {p: entry[f] for p, f in zip(PREV, ENTRY_FIELDS, strict=True)}


def prev_entry(row: dict[str, Any]) -> dict[str, Any] | None:
    """The entry a row's prev columns describe (None: there was none)."""
    if row["prev_kind"] is None:
        return None
    return {f: row[p] for p, f in zip(PREV, ENTRY_FIELDS, strict=True)}


def _unchanged(row: dict[str, Any]) -> bool:
    if row["deleted"]:
        return row["prev_kind"] is None
    return all(
        row[f] == row[p] or (f == "meta" and not row[f] and not row[p])
        for p, f in zip(PREV, ENTRY_FIELDS, strict=True)
    )


def net_totals(table: pa.Table, file_kind: str) -> tuple[int, int]:
    """(files, bytes) a delta adds to its base's totals (negative where it removes)."""
    live = table.filter(pc.and_(pc.invert(table["deleted"]), pc.equal(table["kind"], file_kind)))
    gone = table.filter(pc.equal(table["prev_kind"], file_kind))
    added = int(pc.sum(live["size"]).as_py() or 0)
    removed = int(pc.sum(gone["prev_size"]).as_py() or 0)
    return live.num_rows - gone.num_rows, added - removed


def base_side(table: pa.Table, entry: pa.Schema) -> pa.Table:
    """The base's entries at a delta's keys, as entries (keys the base lacks left out)."""
    held = table.filter(pc.is_valid(table["prev_kind"]))
    columns = [held["dir"], held["name"], *(held[p] for p in PREV)]
    return pa.Table.from_arrays(columns, schema=entry)


def upserts(table: pa.Table, entry: pa.Schema) -> pa.Table:
    """A delta's entries as they stand after it (removals left out)."""
    return table.filter(pc.invert(table["deleted"])).select(entry.names).cast(entry)
