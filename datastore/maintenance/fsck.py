"""Verification: re-hash every object and range and name what damage would affect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datastore.errors import StoreCorrupt
from datastore.maintenance.parts import Parts
from datastore.maintenance.references import live_objects, snapshot_pieces
from datastore.storage import chunker
from datastore.storage.arrow import pa, pc
from datastore.storage.manifest import join_path
from datastore.storage.packs import BlobRef, intact, read_header
from datastore.storage.reader import iter_chunks


def check(parts: Parts, progress: Callable[[int, int], None]) -> dict[str, Any]:
    problems: list[dict[str, Any]] = []
    live_ranges = parts.catalog.all_range_ids()
    good_ranges: set[str] = set()
    for rid in sorted(live_ranges):
        state = _range_state(parts, rid)
        if state == "ok":
            good_ranges.add(rid)
            continue
        affected = [
            {"dataset": d, "snapshot": s, "path": None} for d, s in parts.catalog.range_users(rid)
        ]
        problems.append({"kind": "range", "id": rid, "problem": state, "affected": affected})
    loose: set[str] = set(parts.objects.iter_ids())
    corrupt: set[str] = set()
    for i, oid in enumerate(sorted(loose)):
        if not parts.objects.verify(oid):
            corrupt.add(oid)
        if i % 256 == 0 or i == len(loose) - 1:
            progress(i + 1, len(loose))
    packed, pack_problems = _check_packs(parts)
    chunked, owners = _check_chunked(parts, packed)
    # reads take a loose copy first: a damaged one is damage even beside an intact blob
    present = loose | set(packed) | set(chunked)
    corrupt |= {b for b, ok in packed.items() if not ok and b not in loose}
    corrupt |= {o for o, ok in chunked.items() if not ok and o not in loose and o not in packed}
    damaged = live_ranges - good_ranges
    referenced = live_objects(parts, damaged)
    missing = referenced - present
    # a damaged object nothing references holds no one's data: after a power cut, a file
    # closed unflushed through the mount can leave its object short with no row naming
    # it; it is listed, and gc removes it like any unreferenced object
    unreferenced = sorted(corrupt - referenced)
    bad = (corrupt & referenced) | missing
    where = _where(parts, damaged, bad) if bad else {}
    for pack, state, blobs in pack_problems:
        needing = {o for b in blobs for o in owners.get(b, ()) if o in bad} | (blobs & bad)
        affected = [a for o in sorted(needing) for a in where.get(o, [])]
        problems.append({"kind": "pack", "id": pack, "problem": state, "affected": affected})
    for oid in sorted(bad):
        problems.append(
            {
                "kind": "object",
                "id": oid,
                "problem": "missing" if oid in missing else "corrupt",
                "affected": where.get(oid, []),
            }
        )
    return {
        "ok": not problems,
        "objects_checked": len(present),
        "packs_checked": len(parts.catalog.packs()),
        "ranges_checked": len(live_ranges),
        "problems": problems,
        "unreferenced_damaged": unreferenced,
    }


def _check_packs(parts: Parts) -> tuple[dict[str, bool], list[tuple[str, str, set[str]]]]:
    """Every indexed blob -> intact, and the packs with a problem: (pack, what, its
    blobs). A pack is read whole once: re-hashed against its name, its header compared
    with the index (a blob the index places where the header has none is a stale index
    entry), each blob decoded and re-hashed."""
    by_pack: dict[str, list[BlobRef]] = {}
    for ref in parts.catalog.blob_refs():
        by_pack.setdefault(ref.pack, []).append(ref)
    intact: dict[str, bool] = {}
    problems: list[tuple[str, str, set[str]]] = []
    for pack, refs in sorted(by_pack.items()):
        state, good = _pack_state(parts, pack, refs)
        for ref in refs:
            intact[ref.id] = ref.id in good
        if state != "ok":
            problems.append((pack, state, {r.id for r in refs}))
    return intact, problems


def _check_chunked(
    parts: Parts, packed: dict[str, bool]
) -> tuple[dict[str, bool], dict[str, set[str]]]:
    """Every chunked object -> intact (each chunk indexed and intact, and their bytes in
    order hashing to the object id), and the chunked objects each chunk belongs to."""
    intact: dict[str, bool] = {}
    owners: dict[str, set[str]] = {}
    for oid, _, encoded in parts.catalog.chunked_objects():
        chunks = chunker.decode(encoded)
        for c, _ in chunks:
            owners.setdefault(c, set()).add(oid)
        intact[oid] = all(packed.get(c, False) for c, _ in chunks) and _rehash(parts, oid)
    return intact, owners


def _rehash(parts: Parts, oid: str) -> bool:
    h = parts.objects.hasher()
    try:
        with parts.content.reader(oid) as reader:
            for piece in iter_chunks(reader):
                h.update(piece)
    except (StoreCorrupt, OSError, EOFError):
        return False
    return h.hexdigest() == oid


def _pack_state(parts: Parts, pack: str, refs: list[BlobRef]) -> tuple[str, set[str]]:
    """(what is wrong with a pack or "ok", the ids of its intact blobs)."""
    try:
        data = parts.content.packs.get(pack)
    except FileNotFoundError:
        return "missing", set()
    whole = parts.objects.hash_bytes(data) == pack
    try:
        header = {(b, off, ln, raw, c) for b, c, ln, raw, off in read_header(data)}
    except ValueError:
        header = set()
    listed = [r for r in refs if (r.id, r.offset, r.length, r.raw_length, r.codec) in header]
    stale = whole and len(listed) < len(refs)
    good = {
        r.id
        for r in listed
        if intact(r, data[r.offset : r.offset + r.length], parts.objects.hash_bytes)
    }
    if not whole:
        return "corrupt", good
    return ("stale_index" if stale else "ok"), good


def _range_state(parts: Parts, rid: str) -> str:
    if not parts.manifests.exists(rid):
        return "missing"
    return "ok" if parts.manifests.verify(rid) else "corrupt"


def _where(parts: Parts, damaged: set[str], bad: set[str]) -> dict[str, list[dict[str, Any]]]:
    """For each damaged object, the (dataset, snapshot, path) places that hold it."""
    found: dict[str, list[dict[str, Any]]] = {}
    value_set = pa.array(sorted(bad), pa.string())
    hits_in: dict[str, list[dict[str, Any]]] = {}  # a range as written, searched once
    for (dataset, snap), rid, files in snapshot_pieces(parts, damaged):
        if rid is None or rid not in hits_in:
            table = files()
            hits = table.filter(pc.is_in(table["object"], value_set=value_set)).to_pylist()
            if rid is not None:
                hits_in[rid] = hits
        else:
            hits = hits_in[rid]
        for h in hits:
            found.setdefault(h["object"], []).append(
                {"dataset": dataset, "snapshot": snap.id, "path": join_path(h["dir"], h["name"])}
            )
    for dataset, path, oid in parts.catalog.staged_object_paths(bad):
        found.setdefault(oid, []).append({"dataset": dataset, "snapshot": None, "path": path})
    return found
