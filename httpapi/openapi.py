"""``/v1/openapi.json``: an OpenAPI 3.1 document generated from the route table.

Each :class:`~httpapi.routes.Route` brings its parameters, body and success responses;
the error responses every route can give are added here from its access rule, so the
document and the guard cannot disagree. Schemas of the shared JSON shapes are below.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from . import routes as r
from .routes import ROUTES_KEY, Route

STR = {"type": "string"}
INT = {"type": "integer"}
NULL_STR = {"type": ["string", "null"]}
OBJ = {"type": "object"}
TIME = {"type": "string", "format": "date-time"}


def _obj(required: list[str], props: dict[str, Any], extra: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "object", "required": required, "properties": props}
    if not extra:
        doc["additionalProperties"] = False
    return doc


COUNT_SIZE = _obj(["count", "size_bytes"], {"count": INT, "size_bytes": INT})
ENTRY_PROPS = {
    "path": STR,
    "type": {"type": "string", "enum": ["file", "dir", "symlink"]},
    "target": {"type": "string", "description": "a symlink's target (symlinks only)"},
    "size": INT,
    "object": NULL_STR,
    "mode": STR,
    "mtime": TIME,
    "category": NULL_STR,
    "description": NULL_STR,
    "metadata": OBJ,
}
ENTRY_REQUIRED = [k for k in ENTRY_PROPS if k != "target"]
SNAPSHOT_PROPS = {
    "id": STR,
    "dataset": STR,
    "parent": NULL_STR,
    "created_at": TIME,
    "message": STR,
    "author": STR,
    "tags": {"type": "array", "items": STR},
    "file_count": INT,
    "size_bytes": INT,
    "sources": {"type": "array", "items": OBJ},
}
DIFF_LIST = {"type": "array", "items": OBJ}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        ["error"],
        {"error": _obj(["code", "message"], {"code": STR, "message": STR})},
    ),
    "Health": _obj(["status"], {"status": STR}),
    "Dataset": _obj(
        [
            "id",
            "name",
            "description",
            "metadata",
            "created_at",
            "updated_at",
            "file_count",
            "size_bytes",
            "latest_snapshot",
            "tags",
            "dirty",
        ],
        {
            "id": STR,
            "name": STR,
            "description": STR,
            "metadata": OBJ,
            "rules": OBJ,
            "created_at": TIME,
            "updated_at": TIME,
            "file_count": INT,
            "size_bytes": INT,
            "latest_snapshot": NULL_STR,
            "tags": {"type": "object", "additionalProperties": STR},
            "dirty": {"type": "boolean"},
        },
    ),
    "DatasetCreate": _obj(
        ["name"],
        {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,99}$"},
            "description": STR,
            "metadata": OBJ,
        },
    ),
    "DatasetUpdate": _obj([], {"description": STR, "metadata": OBJ, "rules": OBJ}),
    "Entry": _obj(ENTRY_REQUIRED, ENTRY_PROPS),
    "EntryWithChecksum": _obj(ENTRY_REQUIRED, {**ENTRY_PROPS, "sha256": STR}),
    "MultipartUpload": _obj(
        ["file"],
        {
            "file": {
                "oneOf": [
                    {"type": "string", "format": "binary"},
                    {"type": "array", "items": {"type": "string", "format": "binary"}},
                ]
            },
            "path": STR,
            "description": STR,
            "metadata": {"type": "string", "description": "a JSON object"},
        },
    ),
    "UploadResult": _obj(["files"], {"files": {"type": "array", "items": r.ref("Entry")}}),
    "Removed": _obj(["removed"], {"removed": {"type": "array", "items": STR}}),
    "Status": _obj(
        ["dataset", "dirty", "staged", "task"],
        {
            "dataset": STR,
            "base": NULL_STR,
            "dirty": {"type": "boolean"},
            "staged": _obj(
                ["added", "modified", "removed"],
                {
                    "added": {"type": "array", "items": STR},
                    "modified": {"type": "array", "items": STR},
                    "removed": {"type": "array", "items": STR},
                    "renamed": DIFF_LIST,
                },
            ),
            "task": {"type": ["object", "null"]},
        },
    ),
    "Snapshot": _obj(list(SNAPSHOT_PROPS), SNAPSHOT_PROPS),
    "SnapshotCreated": _obj(
        [*SNAPSHOT_PROPS, "created"], {**SNAPSHOT_PROPS, "created": {"type": "boolean"}}
    ),
    "SnapshotCreate": _obj(
        [],
        {"tag": STR, "message": STR, "sources": {"type": "array", "items": STR}},
    ),
    "ForgetRequest": _obj(
        [],
        {
            "snapshots": {"type": "array", "items": STR},
            "keep_last": {"type": "integer", "minimum": 0},
            "keep_daily": {"type": "integer", "minimum": 0},
            "keep_within": STR,
            "dry_run": {"type": "boolean"},
        },
        extra=False,
    ),
    "Forget": _obj(
        ["dataset", "forgotten", "kept", "dry_run"],
        {
            "dataset": STR,
            "forgotten": {"type": "array", "items": STR},
            "kept": {"type": "array", "items": STR},
            "dry_run": {"type": "boolean"},
        },
    ),
    "TagRef": _obj(["tag", "snapshot"], {"tag": STR, "snapshot": STR}),
    "Tag": _obj(
        ["tag", "snapshot", "history"],
        {
            "tag": STR,
            "snapshot": NULL_STR,  # null once the tag was removed
            "history": {
                "type": "array",
                "items": _obj(
                    ["snapshot", "at", "by"], {"snapshot": NULL_STR, "at": TIME, "by": STR}
                ),
            },
        },
    ),
    "TagPut": _obj(["snapshot"], {"snapshot": STR, "force": {"type": "boolean"}}),
    "Diff": _obj(
        ["from", "to", "added", "removed", "modified", "renamed", "summary"],
        {
            "from": STR,
            "to": STR,
            "added": DIFF_LIST,
            "removed": DIFF_LIST,
            "modified": DIFF_LIST,
            "renamed": DIFF_LIST,
            "summary": OBJ,
        },
    ),
    "Summary": _obj(
        ["file_count", "size_bytes", "by_category", "by_extension", "snapshot_count"],
        {
            "dataset": STR,
            "version": NULL_STR,
            "file_count": INT,
            "size_bytes": INT,
            "by_category": {"type": "object", "additionalProperties": COUNT_SIZE},
            "by_extension": {"type": "object", "additionalProperties": COUNT_SIZE},
            "snapshot_count": INT,
        },
    ),
    "Lineage": _obj(
        ["dataset", "parents", "sources", "consumers"],
        {
            "dataset": STR,
            "snapshot": NULL_STR,
            "parents": DIFF_LIST,
            "sources": DIFF_LIST,
            "consumers": DIFF_LIST,
        },
    ),
    "StoreStats": _obj(
        [
            "datasets",
            "snapshots",
            "files",
            "logical_bytes",
            "physical_bytes",
            "dedup_ratio",
            "by_category",
        ],
        {
            "datasets": INT,
            "snapshots": INT,
            "files": INT,
            "logical_bytes": INT,
            "physical_bytes": INT,
            "dedup_ratio": {"type": "number"},
            "by_category": {"type": "object", "additionalProperties": COUNT_SIZE},
        },
    ),
    "Grant": _obj(
        ["principal", "permission"],
        {
            "principal": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
            "permission": {"type": "string", "enum": ["read", "write", "admin"]},
        },
    ),
    "TokenCreate": _obj(
        ["user"],
        {
            "user": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
            "admin": {"type": "boolean"},
        },
    ),
    "Token": _obj(
        ["id", "user", "admin", "created_at"],
        {"id": STR, "user": STR, "admin": {"type": "boolean"}, "created_at": TIME},
    ),
    "NewToken": _obj(
        ["id", "user", "admin", "token"],
        {
            "id": STR,
            "user": STR,
            "admin": {"type": "boolean"},
            "token": STR,
            "created_at": TIME,
        },
    ),
}

ERROR_TEXT = {
    400: "Invalid name, path, ref or request",
    401: "Missing or invalid bearer token",
    403: "The token's grant does not allow this",
    404: "No such dataset (or not readable), file, ref or route",
    405: "Method not allowed",
    409: "Exists, read-only ref, conflict or processing in progress",
    412: "Precondition failed",
    413: "Upload over the size limit",
    415: "Not tabular, or a file type the dataset refuses",
    500: "Internal error",
}


def _errors_for(route: Route) -> list[int]:
    if route.access == "public":
        return [500]
    codes = {400, 401, 500, *route.errors}
    if route.access in ("store_admin", "read", "write", "admin"):
        codes |= {403}
    if route.access in ("read", "write", "admin") or "{" in route.path:
        codes |= {404}  # any path parameter can name something that does not exist
    if route.writes:
        codes |= {404, 409, 413, 415}
    if route.method == "PUT":
        codes |= {412}
    return sorted(codes)


def openapi_path(path: str) -> str:
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{_slug(route.path)}",
        "summary": route.summary,
        "tags": [route.tag],
        "x-access": route.access,
    }
    if route.access == "public":
        op["security"] = []
    if route.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "schema": p.schema,
                **({"description": p.description} if p.description else {}),
            }
            for p in route.params
        ]
    if route.body:
        op["requestBody"] = {
            "required": route.method != "PATCH",
            "content": {media: {"schema": schema} for media, schema in route.body.items()},
        }
    responses: dict[str, Any] = {}
    for status, (description, content) in sorted(route.responses.items()):
        resp: dict[str, Any] = {"description": description}
        if content:
            resp["content"] = {media: {"schema": schema} for media, schema in content.items()}
        if route.path.endswith("{path:.+}") and status in (200, 206, 304):
            resp["headers"] = {"ETag": {"schema": STR, "description": "the object id, quoted"}}
        responses[str(status)] = resp
    for status in _errors_for(route):
        if str(status) not in responses:
            responses[str(status)] = {
                "description": ERROR_TEXT[status],
                "content": {"application/json": {"schema": r.ref("Error")}},
            }
    op["responses"] = responses
    return op


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", openapi_path(path).lower()).strip("_")


def build(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ds",
            "version": "1",
            "description": "Versioned datasets: files, snapshots, tags, grants and tokens.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
    }


OPENAPI_DOC = web.AppKey("openapi_doc", dict)


async def openapi_handler(request: web.Request) -> web.Response:
    cache = request.app[OPENAPI_DOC]  # built once: the router is frozen once serving
    if not cache:
        cache.update(build(request.app[ROUTES_KEY]))
    return web.json_response(cache)


ROUTES = [
    r.Route(
        "GET",
        "/v1/openapi.json",
        openapi_handler,
        "This document",
        "public",
        "service",
        responses={200: r.ok("OpenAPI 3.1", OBJ)},
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)
