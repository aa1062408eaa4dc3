"""File-level differences between two manifests, joined in Arrow over what they don't share.

Two versions on the same base differ only where their deltas do, and a delta row carries
the base's entry at its key, so their diff reads the two deltas and nothing else. Other
pairs usually still share most ranges (copy-on-write); a range as written listed by both
sides means identical entries there, so only the remaining pieces are joined. The join
is a hash lookup of each side's paths in the other's (``pyarrow.compute.index_in``), not
a DuckDB query: DuckDB's import and connection cost more than a whole small diff.

A symbolic link is compared by its target: inside the join it carries ``LINK`` + target
where a file carries its object id (no id holds a NUL), and comes out as ``target``.
"""

from __future__ import annotations

import json
from typing import Any

from datastore.storage import delta
from datastore.storage.arrow import pa, pc
from datastore.storage.manifest import (
    KIND_FILE,
    KIND_LINK,
    AnyRange,
    Manifest,
    ManifestStore,
    as_written,
    concat,
    join_path,
    schema,
)


def diff_manifests(manifests: ManifestStore, a: Manifest, b: Manifest) -> dict[str, Any]:
    if manifests.same_base(a, b):
        left, right = _delta_sides(manifests, a, b)
    else:
        la, lb = manifests.layout(a), manifests.layout(b)
        shared = _written_ids(la) & _written_ids(lb)
        left, right = _rest(manifests, la, shared), _rest(manifests, lb, shared)
    left, right = _files(left), _files(right)
    rows = _changed_rows(left, right) if left.num_rows or right.num_rows else []
    return _classify(rows)


def _delta_sides(manifests: ManifestStore, a: Manifest, b: Manifest) -> tuple[pa.Table, pa.Table]:
    """Each side's entries at the keys either delta holds: its own delta's, else the
    base's (the other delta's prev columns)."""
    da, db = manifests.delta_table(a), manifests.delta_table(b)

    def side(own: pa.Table, other: pa.Table) -> pa.Table:
        mine = delta.path_keys(own)
        rest = other.filter(pc.invert(pc.is_in(delta.path_keys(other), value_set=mine)))
        return pa.concat_tables([delta.upserts(own, schema()), delta.base_side(rest, schema())])

    return side(da, db), side(db, da)


Layout = list[tuple[AnyRange | None, pa.Table]]


def _written_ids(layout: Layout) -> set[str]:
    """Ids of the ranges a layout lists unchanged (no delta row in their span)."""
    return {r.id for rng, changes in layout if (r := as_written(rng, changes)) is not None}


def _rest(manifests: ManifestStore, layout: Layout, shared: set[str]) -> pa.Table:
    """The entries of a layout outside the ranges both sides list as written."""
    written: list[AnyRange] = []
    computed: list[pa.Table] = []
    for rng, changes in layout:
        unchanged = as_written(rng, changes)
        if unchanged is None:
            computed.append(manifests.piece(rng, changes))
        elif unchanged.id not in shared:
            written.append(unchanged)
    return concat(manifests.read_many(written) + computed)


LINK = "\x00link\x00"


def _files(table: pa.Table) -> pa.Table:
    """Files and links (a link's target standing in for the object), as ``_COLUMNS``."""
    files = table.filter(pc.equal(table["kind"], KIND_FILE)).select(list(_COLUMNS))
    links = table.filter(pc.equal(table["kind"], KIND_LINK))
    if not links.num_rows:
        return files
    targets = pa.array([LINK + json.loads(m)["target"] for m in links["meta"].to_pylist()])
    links = links.select(list(_COLUMNS)).set_column(2, "object", targets)
    return pa.concat_tables([files, links.cast(files.schema)])


def _changed_rows(left: pa.Table, right: pa.Table) -> list[tuple[Any, ...]]:
    """(dir, name, left object, right object, left size, right size) of every path whose
    object differs between the sides (None where a side lacks the path), by path."""
    left_keys, right_keys = _keys(left), _keys(right)
    at = pc.index_in(left_keys, value_set=right_keys)  # each left path's row on the right
    removed = left.filter(pc.is_null(at))
    matched = pc.is_valid(at)
    kept = left.filter(matched)
    counterpart = right.take(at.filter(matched))
    changed = pc.not_equal(kept["object"], counterpart["object"])
    before, after = kept.filter(changed), counterpart.filter(changed)
    added = right.filter(pc.invert(pc.is_in(right_keys, value_set=left_keys)))
    rows = [
        (d, n, None, o, None, s)
        for d, n, o, s in zip(*(added[c].to_pylist() for c in _COLUMNS), strict=True)
    ]
    rows += [
        (d, n, o, None, s, None)
        for d, n, o, s in zip(*(removed[c].to_pylist() for c in _COLUMNS), strict=True)
    ]
    rows += [
        (d, n, a, b, sa, sb)
        for d, n, a, sa, b, sb in zip(
            *(before[c].to_pylist() for c in _COLUMNS),
            after["object"].to_pylist(),
            after["size"].to_pylist(),
            strict=True,
        )
    ]
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


_COLUMNS = ("dir", "name", "object", "size")


def _keys(table: pa.Table) -> pa.ChunkedArray:
    """One string per path; NUL is the separator no name may hold."""
    return pc.binary_join_element_wise(table["dir"], table["name"], "\x00")


def _classify(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    modified: list[dict[str, Any]] = []
    for d, n, a_obj, b_obj, a_size, b_size in rows:
        path = join_path(d, n)
        if a_obj is None:
            added.append({"path": path, "object": b_obj, "size": b_size})
        elif b_obj is None:
            removed.append({"path": path, "object": a_obj, "size": a_size})
        else:
            modified.append(
                {
                    "path": path,
                    "from_object": a_obj,
                    "to_object": b_obj,
                    "from_size": a_size,
                    "to_size": b_size,
                }
            )
    renamed = _pair_renames(added, removed)
    for doc in (*added, *removed, *modified, *renamed):
        _name_targets(doc)
    return {
        "added": added,
        "removed": removed,
        "modified": modified,
        "renamed": renamed,
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "modified": len(modified),
            "renamed": len(renamed),
            "bytes_added": sum(e["size"] for e in added),
            "bytes_removed": sum(e["size"] for e in removed),
        },
    }


def _name_targets(doc: dict[str, Any]) -> None:
    """A link's stand-in object becomes its ``target`` (its object is None)."""
    for key in ("object", "from_object", "to_object"):
        value = doc.get(key)
        if value is not None and value.startswith(LINK):
            doc[key] = None
            doc[key.replace("object", "target")] = value[len(LINK) :]


def _pair_renames(
    added: list[dict[str, Any]], removed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A removed and an added file with the same content are one rename; pairs leave both lists."""
    gone: dict[str, list[dict[str, Any]]] = {}
    for e in removed:
        gone.setdefault(e["object"], []).append(e)
    renamed = []
    kept_added = []
    for e in added:
        candidates = gone.get(e["object"])
        if candidates:
            old = candidates.pop(0)
            renamed.append(
                {"from": old["path"], "to": e["path"], "object": e["object"], "size": e["size"]}
            )
        else:
            kept_added.append(e)
    paired = {r["from"] for r in renamed}
    added[:] = kept_added
    removed[:] = [e for e in removed if e["path"] not in paired]
    return renamed
