"""Table routes (SPEC section 6): schema, preview, stats, quality, compare, export.

Handlers only parse the request and hand the work to :class:`datastore.analytics.Analytics`
in the executor (DuckDB never runs on the event loop); results are cached by object id
in the catalog, so a repeated request is a single SQLite read.
"""

from __future__ import annotations

import posixpath
from typing import Any

from aiohttp import hdrs, web

from datastore import EXPORT_FORMATS, PREVIEW_DEFAULT, PREVIEW_MAX, Analytics, InvalidRequest

from . import routes as r
from .state import STORE, blocking, choice

ANALYTICS = web.AppKey("analytics", Analytics)
CHUNK = 1 << 20

OBJ = {"type": "object"}
NUM = {"type": ["number", "null"]}
INT = {"type": "integer"}
STR = {"type": "string"}
COLUMN = {
    "type": "object",
    "required": ["name", "dtype"],
    "properties": {"name": STR, "dtype": STR},
}
HEAD = {
    "path": STR,
    "object": STR,
    "format": {"type": "string", "enum": ["csv", "tsv", "csv.gz", "parquet", "jsonl"]},
}
SCHEMA = {
    "type": "object",
    "required": ["columns", "row_count"],
    "properties": {**HEAD, "columns": {"type": "array", "items": COLUMN}, "row_count": INT},
}
PREVIEW = {
    "type": "object",
    "required": ["columns", "rows"],
    "properties": {
        **HEAD,
        "columns": {"type": "array", "items": COLUMN},
        "rows": {"type": "array", "items": OBJ},
    },
}
COLUMN_STATS = {
    "type": "object",
    "required": ["type", "unique", "missing", "missing_percent"],
    "properties": {
        "type": STR,
        "unique": INT,
        "missing": INT,
        "missing_percent": {"type": "number"},
        "min": {},
        "max": {},
        "mean": NUM,
        "std": NUM,
        "percentiles": {
            "type": "object",
            "properties": {"p25": NUM, "p50": NUM, "p75": NUM},
        },
        "skewness": NUM,
        "kurtosis": NUM,
        "iqr": NUM,
        "outlier_count": INT,
        "histogram": {
            "type": "object",
            "properties": {
                "counts": {"type": "array", "items": INT},
                "bin_edges": {"type": "array", "items": {"type": "number"}},
            },
        },
        "top_values": {"type": "object", "additionalProperties": INT},
    },
}
STATS = {
    "type": "object",
    "required": [
        "path",
        "object",
        "format",
        "row_count",
        "column_count",
        "duplicate_rows",
        "columns",
        "correlations",
    ],
    "properties": {
        **HEAD,
        "row_count": INT,
        "column_count": INT,
        "duplicate_rows": INT,
        "columns": {"type": "object", "additionalProperties": COLUMN_STATS},
        "correlations": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": NUM},
        },
    },
}
QUALITY = {
    "type": "object",
    "required": ["overall_score", "checks"],
    "properties": {
        **HEAD,
        "overall_score": {"type": "number", "minimum": 0, "maximum": 100},
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "passed", "details"],
                "properties": {
                    "name": STR,
                    "passed": {"type": "boolean"},
                    "details": STR,
                    "score": {"type": "number"},
                },
            },
        },
    },
}
COMPARE = {
    "type": "object",
    "required": ["summary", "column_diffs"],
    "properties": {
        "path": STR,
        "summary": {
            "type": "object",
            "required": [
                "from",
                "to",
                "from_rows",
                "to_rows",
                "rows_diff",
                "columns_added",
                "columns_removed",
                "columns_type_changed",
            ],
            "properties": {
                "from": STR,
                "to": STR,
                "from_rows": INT,
                "to_rows": INT,
                "rows_diff": INT,
                "columns_added": {"type": "array", "items": STR},
                "columns_removed": {"type": "array", "items": STR},
                "columns_type_changed": {"type": "array", "items": OBJ},
            },
        },
        "column_diffs": {"type": "object", "additionalProperties": OBJ},
        "rows": {
            "type": "object",
            "properties": {
                "added": INT,
                "removed": INT,
                "changed": INT,
                "unchanged": INT,
                "samples": {"type": "array", "items": OBJ},
            },
        },
    },
}


def analytics(request: web.Request) -> Analytics:
    return request.app[ANALYTICS]


def _spec_path(request: web.Request) -> tuple[str, str]:
    return request.match_info["name"], request.match_info["path"]


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return PREVIEW_DEFAULT
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"limit must be a whole number, not {raw!r}") from exc
    if value < 0:
        raise InvalidRequest("limit must be zero or more")
    return min(value, PREVIEW_MAX)


async def get_schema(request: web.Request) -> web.Response:
    doc = await blocking(request, analytics(request).schema, *_spec_path(request))
    return web.json_response(doc)


async def get_preview(request: web.Request) -> web.Response:
    limit = _limit(request)
    doc = await blocking(request, analytics(request).preview, *_spec_path(request), limit)
    return web.json_response(doc)


async def get_stats(request: web.Request) -> web.Response:
    doc = await blocking(request, analytics(request).stats, *_spec_path(request))
    return web.json_response(doc)


async def get_quality(request: web.Request) -> web.Response:
    doc = await blocking(request, analytics(request).quality, *_spec_path(request))
    return web.json_response(doc)


async def get_compare(request: web.Request) -> web.Response:
    spec, path = _spec_path(request)
    from_ref = request.query.get("from")
    if not from_ref:
        raise InvalidRequest("from is required: the earlier version's ref")
    name, _, ref = spec.partition("@")
    to_ref = request.query.get("to") or ref or None
    key = request.query.get("key") or None
    doc = await blocking(request, analytics(request).compare, name, path, from_ref, to_ref, key)
    return web.json_response(doc)


async def get_export(request: web.Request) -> web.StreamResponse:
    """The table converted on the fly, written to a scratch file and streamed from it."""
    spec, path = _spec_path(request)
    fmt = choice(request, "format", tuple(EXPORT_FORMATS), "csv")
    exported = analytics(request).exported(spec, path, fmt)
    tmp, content_type = await blocking(request, exported.__enter__)
    try:
        stem = posixpath.splitext(posixpath.basename(path))[0] or "table"
        resp = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: content_type,
                hdrs.CONTENT_DISPOSITION: f'attachment; filename="{stem}.{fmt}"',
            }
        )
        resp.content_length = tmp.stat().st_size
        await resp.prepare(request)
        with open(tmp, "rb") as f:
            while chunk := await blocking(request, f.read, CHUNK):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        exported.__exit__(None, None, None)


def _table_route(
    verb: str, handler: Any, summary: str, params: tuple[r.Param, ...], responses: Any
) -> r.Route:
    return r.Route(
        "GET",
        f"/v1/datasets/{{name}}/{verb}/{{path:.+}}",
        handler,
        summary,
        "read",
        "tables",
        params=(r.NAME, r.PATH, *params),
        responses=responses,
        errors=(415,),
    )


ROUTES = [
    _table_route(
        "schema",
        get_schema,
        "Columns, dtypes and row count of a table (CSV, TSV, csv.gz, Parquet, JSON lines)",
        (),
        {200: r.ok("Schema", SCHEMA)},
    ),
    _table_route(
        "preview",
        get_preview,
        "The first rows of a table as JSON objects",
        (r.Param("limit", "query", {"type": "integer", "minimum": 0}, "Rows (default 20)"),),
        {200: r.ok("Preview", PREVIEW)},
    ),
    _table_route(
        "stats",
        get_stats,
        "Per-column statistics, duplicate rows and correlations (cached by content)",
        (),
        {200: r.ok("Statistics", STATS)},
    ),
    _table_route(
        "quality",
        get_quality,
        "Quality checks and an overall score out of 100",
        (),
        {200: r.ok("Quality report", QUALITY)},
    ),
    _table_route(
        "compare",
        get_compare,
        "Schema diff, drift (PSI) per column and keyed row changes between two versions",
        (
            r.Param("from", "query", STR, "The earlier version (a ref)", True),
            r.Param("to", "query", STR, "The later version (default: NAME's ref, or the head)"),
            r.Param("key", "query", STR, "Key column for row-level changes"),
        ),
        {200: r.ok("Comparison", COMPARE)},
    ),
    _table_route(
        "export",
        get_export,
        "The table converted to csv, parquet or jsonl",
        (
            r.Param(
                "format",
                "query",
                {"type": "string", "enum": list(EXPORT_FORMATS)},
                "Output format (default csv)",
            ),
        ),
        {
            200: (
                "The converted table",
                {ct: {"type": "string", "format": "binary"} for ct, _ in EXPORT_FORMATS.values()},
            )
        },
    ),
]


def add_routes(app: web.Application) -> None:
    app[ANALYTICS] = Analytics(app[STORE])
    r.add(app, ROUTES)
