"""The JSON documents ds answers with, shared by the REST API and ``--json`` in the CLI.

SPEC section 11 promises that ``ds ... --json`` prints the same object the API returns
for the same thing, so both views build their output here and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datastore.times import iso_from_ns

if TYPE_CHECKING:  # types only: the CLI imports this module at start, before any store
    from datastore.catalog.access import Token
    from datastore.catalog.core import TagEvent
    from datastore.storage.manifest import Entry
    from datastore.store import DatasetInfo, Forgetting, Snapshot


def dataset(info: DatasetInfo) -> dict[str, Any]:
    row = info.row
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "metadata": row.metadata,
        "rules": row.rules,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "file_count": info.file_count,
        "size_bytes": info.size_bytes,
        "latest_snapshot": info.latest_snapshot,
        "tags": info.tags,
        "dirty": info.dirty,
    }


def entry(e: Entry) -> dict[str, Any]:
    """One listed entry; a symbolic link also has its ``target``."""
    info = e.info
    doc = {
        "path": e.path,
        "type": "dir" if e.is_dir else "symlink" if e.is_link else "file",
        "size": e.size,
        "object": e.object,
        "mode": f"{e.mode:04o}",
        "mtime": iso_from_ns(e.mtime_ns),
        "category": info.get("category"),
        "description": info.get("description"),
        "metadata": info.get("metadata", {}),
    }
    if e.is_link:
        doc["target"] = info.get("target")
    return doc


def snapshot(s: Snapshot) -> dict[str, Any]:
    row = s.row
    return {
        "id": row.id,
        "dataset": s.dataset,
        "parent": row.parent,
        "created_at": row.created_at,
        "message": row.message,
        "author": row.author,
        "tags": s.tags,
        "file_count": row.file_count,
        "size_bytes": row.size_bytes,
        "sources": row.sources,
    }


def tag(name: str, snapshot_id: str | None, history: list[TagEvent]) -> dict[str, Any]:
    return {
        "tag": name,
        "snapshot": snapshot_id,
        "history": [{"snapshot": h.snapshot, "at": h.at, "by": h.by} for h in history],
    }


def forgetting(f: Forgetting) -> dict[str, Any]:
    return {"dataset": f.dataset, "forgotten": f.forgotten, "kept": f.kept, "dry_run": f.dry_run}


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    return {
        "items": items[offset : offset + limit],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }


def listing(
    entries: list[Entry],
    recursive: bool,
    limit: int | None = None,
    offset: int = 0,
    category: str | None = None,
) -> dict[str, Any]:
    """A directory listing page, the same document from ``ds ls --json`` and ``GET
    .../files``: a recursive listing holds files only, optionally of one category;
    ``limit`` None is every entry."""
    if recursive:
        entries = [e for e in entries if not e.is_dir]
    if category is not None:
        entries = [e for e in entries if e.info.get("category") == category]
    return page([entry(e) for e in entries], len(entries) if limit is None else limit, offset)


def token(t: Token) -> dict[str, Any]:
    """An API token; ``token`` (the secret) only in the answer that created it."""
    doc: dict[str, Any] = {"id": t.id, "user": t.user, "admin": t.admin}
    if t.secret is not None:
        doc["token"] = t.secret
    doc["created_at"] = t.created_at
    return doc


def grant(principal: str, permission: str) -> dict[str, str]:
    return {"principal": principal, "permission": permission}
