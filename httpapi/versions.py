"""Version routes: snapshots, tags (with history), forget, diff."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from datastore import InvalidRequest, KeepRules, names, shapes

from . import routes as r
from .state import blocking, field_of, json_object, only_fields, paging, principal, store


def _name(request: web.Request) -> str:
    """The dataset of ``{name}``; a ref on a route about the dataset itself is ignored."""
    return names.split_ref(request.match_info["name"])[0]


async def create_snapshot(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_object(request)
    tag = field_of(body, "tag", str)
    message = field_of(body, "message", str) or ""
    sources = field_of(body, "sources", list) or []
    if not all(isinstance(s, str) for s in sources):
        raise InvalidRequest("sources must be a list of NAME@REF strings")
    who = principal(request).user
    snap, created = await blocking(
        request, store(request).snapshot, name, tag, message, sources, author=who
    )
    return web.json_response(
        {**shapes.snapshot(snap), "created": created}, status=201 if created else 200
    )


async def list_snapshots(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    snaps = await blocking(request, store(request).log, _name(request))
    return web.json_response(shapes.page([shapes.snapshot(s) for s in snaps], limit, offset))


async def get_snapshot(request: web.Request) -> web.Response:
    ref = names.ref_text(request.match_info["id"])
    snap = await blocking(request, store(request).get_snapshot, _name(request), ref)
    return web.json_response(shapes.snapshot(snap))


async def list_tags(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    info = await blocking(request, store(request).info, _name(request))
    items = [{"tag": t, "snapshot": sid} for t, sid in sorted(info.tags.items())]
    return web.json_response(shapes.page(items, limit, offset))


async def get_tag(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    sid, history = await blocking(request, store(request).tag_history, _name(request), tag)
    return web.json_response(shapes.tag(tag, sid, history))


async def put_tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    tag = request.match_info["tag"]
    body = await json_object(request)
    ref = field_of(body, "snapshot", str, required=True)
    force = field_of(body, "force", bool) or False
    st = store(request)
    who = principal(request).user

    def work() -> tuple[dict[str, Any], bool]:
        sid, outcome = st.tag(name, ref, tag, force=force, by=who)
        current, history = st.tag_history(name, tag)
        return shapes.tag(tag, current, history), outcome == "created"

    doc, created = await blocking(request, work)
    return web.json_response(doc, status=201 if created else 200)


async def delete_tag(request: web.Request) -> web.Response:
    await blocking(
        request,
        store(request).untag,
        request.match_info["name"],
        request.match_info["tag"],
        principal(request).user,
    )
    return web.Response(status=204)


async def forget(request: web.Request) -> web.Response:
    body = only_fields(
        await json_object(request), "snapshots", "keep_last", "keep_daily", "keep_within", "dry_run"
    )
    refs = field_of(body, "snapshots", list) or []
    if not all(isinstance(ref, str) for ref in refs):
        raise InvalidRequest("snapshots must be a list of refs (ids, tags, times)")
    within = field_of(body, "keep_within", str)
    rules = KeepRules(
        field_of(body, "keep_last", int),
        field_of(body, "keep_daily", int),
        names.duration(within) if within is not None else None,
    )
    dry_run = field_of(body, "dry_run", bool) or False
    result = await blocking(
        request,
        store(request).forget,
        request.match_info["name"],
        refs,
        rules,
        dry_run,
        principal(request).user,
    )
    return web.json_response(shapes.forgetting(result))


async def diff(request: web.Request) -> web.Response:
    name, ref = names.split_ref(request.match_info["name"])
    start = request.query.get("from") or ref
    if not start:
        raise InvalidRequest("give ?from=REF (and optionally &to=REF; the head by default)")
    end = request.query.get("to") or None
    a = f"{name}@{names.ref_text(start)}"
    b = f"{name}@{names.ref_text(end)}" if end else None
    return web.json_response(await blocking(request, store(request).diff, a, b))


SNAPSHOT = r.ref("Snapshot")
TAG = r.ref("Tag")
TAG_PARAM = r.Param("tag", "path", {"type": "string"}, "Tag name", True)

ROUTES = [
    r.Route(
        "POST",
        "/v1/datasets/{name}/snapshots",
        create_snapshot,
        "Snapshot the head (200 with created=false when clean: the tag goes on the latest)",
        "write",
        "versions",
        params=(r.NAME,),
        body=r.json_content(r.ref("SnapshotCreate")),
        responses={
            201: r.ok("Created", r.ref("SnapshotCreated")),
            200: r.ok("Head was clean", r.ref("SnapshotCreated")),
        },
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/snapshots",
        list_snapshots,
        "Snapshots, newest first",
        "read",
        "versions",
        params=(r.NAME, *r.PAGING),
        responses={200: r.ok("A page of snapshots", r.page_of("Snapshot"))},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/snapshots/{id}",
        get_snapshot,
        "One snapshot, by id, unique id prefix, tag, latest or time",
        "read",
        "versions",
        params=(r.NAME, r.Param("id", "path", {"type": "string"}, "Snapshot ref", True)),
        responses={200: r.ok("The snapshot", SNAPSHOT)},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/tags",
        list_tags,
        "Tags of a dataset",
        "read",
        "versions",
        params=(r.NAME, *r.PAGING),
        responses={200: r.ok("A page of tags", r.page_of("TagRef"))},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/tags/{tag}",
        get_tag,
        "A tag and its moves, oldest first",
        "read",
        "versions",
        params=(r.NAME, TAG_PARAM),
        responses={200: r.ok("The tag", TAG)},
    ),
    r.Route(
        "PUT",
        "/v1/datasets/{name}/tags/{tag}",
        put_tag,
        "Create a tag (201) or move it with force (200); 409 tag_exists without force",
        "write",
        "versions",
        params=(r.NAME, TAG_PARAM),
        body=r.json_content(r.ref("TagPut")),
        responses={201: r.ok("Created", TAG), 200: r.ok("Moved or unchanged", TAG)},
    ),
    r.Route(
        "DELETE",
        "/v1/datasets/{name}/tags/{tag}",
        delete_tag,
        "Remove a tag",
        "write",
        "versions",
        params=(r.NAME, TAG_PARAM),
        responses={204: r.empty("Removed")},
    ),
    r.Route(
        "POST",
        "/v1/datasets/{name}/forget",
        forget,
        "Drop snapshots: those named and, with keep rules, every one no rule keeps (tagged"
        " ones only when named; the head's base never); gc then reclaims their bytes",
        "admin",
        "versions",
        params=(r.NAME,),
        body=r.json_content(r.ref("ForgetRequest")),
        responses={200: r.ok("What was (or, on a dry run, would be) forgotten", r.ref("Forget"))},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/diff",
        diff,
        "Files added, removed, modified and renamed between two versions",
        "read",
        "versions",
        params=(
            r.NAME,
            r.Param("from", "query", {"type": "string"}, "From ref (or NAME@REF's ref)"),
            r.Param("to", "query", {"type": "string"}, "To ref (default: the head)"),
        ),
        responses={200: r.ok("The diff", r.ref("Diff"))},
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)
