"""Dataset routes: list, create, details, update, delete, summary, lineage, store totals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from datastore import (
    LEVELS,
    Access,
    DatasetNotFound,
    Principal,
    Store,
    names,
    shapes,
    store_totals,
    version_summary,
)

from . import routes as r
from .state import (
    ACCESS,
    blocking,
    choice,
    field_of,
    json_object,
    only_fields,
    paging,
    principal,
    store,
)

SORTS = ("name", "created_at", "size_bytes")


async def list_datasets(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    search = request.query.get("search", "").lower()
    sort = choice(request, "sort", SORTS, "name")
    order = choice(request, "order", ("asc", "desc"), "asc")
    doc = await blocking(
        request,
        _list,
        store(request),
        request.app[ACCESS],
        principal(request),
        search,
        sort,
        order == "desc",
        limit,
        offset,
    )
    return web.json_response(doc)


def _list(
    st: Store,
    access: Access,
    who: Principal,
    search: str,
    sort: str,
    reverse: bool,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    readable = access.readable(who)
    rows = [
        row
        for row in st.list_datasets()
        if (readable is None or row.id in readable)
        and (not search or search in row.name.lower() or search in row.description.lower())
    ]
    if sort == "size_bytes":
        docs = _infos(st, [row.name for row in rows])
        docs.sort(key=lambda d: (d["size_bytes"], d["name"]), reverse=reverse)
        return {"items": docs[offset : offset + limit], "total": len(docs), **_lo(limit, offset)}
    rows.sort(key=lambda row: (getattr(row, sort), row.name), reverse=reverse)
    window = rows[offset : offset + limit]
    return {
        "items": _infos(st, [row.name for row in window]),
        "total": len(rows),
        **_lo(limit, offset),
    }


def _lo(limit: int, offset: int) -> dict[str, int]:
    return {"limit": limit, "offset": offset}


def _infos(st: Store, dataset_names: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in dataset_names:
        try:
            out.append(shapes.dataset(st.info(name)))
        except DatasetNotFound:  # deleted while listing
            continue
    return out


async def create_dataset(request: web.Request) -> web.Response:
    body = await json_object(request)
    name = field_of(body, "name", str, required=True)
    description = field_of(body, "description", str) or ""
    metadata = field_of(body, "metadata", dict)
    doc = await blocking(
        request,
        _create,
        store(request),
        request.app[ACCESS],
        principal(request),
        name,
        description,
        metadata,
    )
    return web.json_response(doc, status=201)


def _create(
    st: Store,
    access: Access,
    who: Principal,
    name: str,
    description: str,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    info = st.create_dataset(name, description, metadata)
    if not who.admin:
        access.grant(name, who.user, "admin")  # whoever creates a dataset administers it
    return shapes.dataset(info)


async def get_dataset(request: web.Request) -> web.Response:
    info = await blocking(request, store(request).info, request.match_info["name"])
    return web.json_response(shapes.dataset(info))


async def update_dataset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = only_fields(await json_object(request), "description", "metadata", "rules")
    description = field_of(body, "description", str)
    metadata = field_of(body, "metadata", dict)
    rules = field_of(body, "rules", dict)
    access = request.app[ACCESS]
    who = principal(request)

    def work() -> dict[str, Any]:
        if rules is not None:
            access.require(who, name, "admin")  # rules restrict every writer: admin only
        return shapes.dataset(
            store(request).update_dataset(
                name, description=description, metadata=metadata, rules=rules
            )
        )

    return web.json_response(await blocking(request, work))


async def delete_dataset(request: web.Request) -> web.Response:
    await blocking(request, store(request).delete_dataset, request.match_info["name"])
    return web.Response(status=204)


async def summary(request: web.Request) -> web.Response:
    doc = await blocking(request, version_summary, store(request), request.match_info["name"])
    return web.json_response(doc)


async def lineage(request: web.Request) -> web.Response:
    doc = await blocking(
        request,
        _lineage,
        store(request),
        request.app[ACCESS],
        principal(request),
        request.match_info["name"],
    )
    return web.json_response(doc)


def _lineage(st: Store, access: Access, who: Principal, spec: str) -> dict[str, Any]:
    return st.lineage(spec, lambda row: access.level(who, row) >= LEVELS["read"])


async def store_stats(request: web.Request) -> web.Response:
    return web.json_response(await blocking(request, store_totals, store(request)))


DATASET = r.ref("Dataset")

ROUTES = [
    r.Route(
        "GET",
        "/v1/datasets",
        list_datasets,
        "List the datasets the caller may read",
        "token",
        "datasets",
        params=(
            r.Param("search", "query", {"type": "string"}, "Substring of name or description"),
            r.Param("sort", "query", {"type": "string", "enum": list(SORTS)}),
            r.Param("order", "query", {"type": "string", "enum": ["asc", "desc"]}),
            *r.PAGING,
        ),
        responses={200: r.ok("A page of datasets", r.page_of("Dataset"))},
    ),
    r.Route(
        "POST",
        "/v1/datasets",
        create_dataset,
        "Create a dataset (its creator gets the admin grant on it)",
        "token",
        "datasets",
        body=r.json_content(r.ref("DatasetCreate")),
        responses={201: r.ok("Created", DATASET)},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}",
        get_dataset,
        "Dataset details (of the head, or of NAME@REF)",
        "read",
        "datasets",
        params=(r.NAME,),
        responses={200: r.ok("The dataset", DATASET)},
    ),
    r.Route(
        "PATCH",
        "/v1/datasets/{name}",
        update_dataset,
        "Update description, metadata or rules (rules need admin)",
        "write",
        "datasets",
        params=(r.NAME,),
        body=r.json_content(r.ref("DatasetUpdate")),
        responses={200: r.ok("Updated", DATASET)},
    ),
    r.Route(
        "DELETE",
        "/v1/datasets/{name}",
        delete_dataset,
        "Delete a dataset and its snapshots (objects go at the next gc)",
        "admin",
        "datasets",
        params=(r.NAME,),
        responses={204: r.empty("Deleted")},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/summary",
        summary,
        "File count, size, by category and extension, snapshot count of a version",
        "read",
        "datasets",
        params=(r.NAME,),
        responses={200: r.ok("Summary", r.ref("Summary"))},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/lineage",
        lineage,
        "Parent chain, upstream sources and downstream consumers",
        "read",
        "datasets",
        params=(r.NAME,),
        responses={200: r.ok("Lineage", r.ref("Lineage"))},
    ),
    r.Route(
        "GET",
        "/v1/stats",
        store_stats,
        "Whole-store totals (admin token)",
        "store_admin",
        "store",
        responses={200: r.ok("Totals", r.ref("StoreStats"))},
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)


__all__ = ["ROUTES", "add_routes", "names"]
