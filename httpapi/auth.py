"""Token and grant routes (SPEC section 8). Checking them happens in ``routes.guard``."""

from __future__ import annotations

from aiohttp import web

from datastore import names, permission, shapes

from . import routes as r
from .state import ACCESS, blocking, field_of, json_object, paging, principal


async def create_token(request: web.Request) -> web.Response:
    body = await json_object(request)
    user = names.principal(field_of(body, "user", str, required=True))
    admin = field_of(body, "admin", bool) or False
    token = await blocking(request, request.app[ACCESS].create_token, user, admin)
    return web.json_response(shapes.token(token), status=201)


async def list_tokens(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    who = principal(request)
    tokens = await blocking(request, request.app[ACCESS].tokens)
    mine = [t for t in tokens if who.admin or t.user == who.user]
    return web.json_response(shapes.page([shapes.token(t) for t in mine], limit, offset))


async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["id"]
    who = principal(request)
    access = request.app[ACCESS]

    def work() -> bool:
        token = access.token(token_id)
        if token is None or not (who.admin or token.user == who.user):
            return False
        return access.revoke_token(token_id)

    if not await blocking(request, work):
        raise web.HTTPNotFound(text=f"no token {token_id!r}")
    return web.Response(status=204)


async def list_grants(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    name = names.split_ref(request.match_info["name"])[0]
    grants = await blocking(request, request.app[ACCESS].grants, name)
    return web.json_response(shapes.page([shapes.grant(p, g) for p, g in grants], limit, offset))


async def put_grant(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_object(request)
    user = names.principal(field_of(body, "principal", str, required=True))
    perm = permission(field_of(body, "permission", str, required=True))
    created = await blocking(request, request.app[ACCESS].grant, name, user, perm)
    return web.json_response(shapes.grant(user, perm), status=201 if created else 200)


async def delete_grant(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    user = names.principal(request.match_info["principal"])
    await blocking(request, request.app[ACCESS].revoke, name, user)
    return web.Response(status=204)


GRANT = r.ref("Grant")

ROUTES = [
    r.Route(
        "GET",
        "/v1/datasets/{name}/grants",
        list_grants,
        "Who may read, write or administer a dataset",
        "admin",
        "access",
        params=(r.NAME, *r.PAGING),
        responses={200: r.ok("A page of grants", r.page_of("Grant"))},
    ),
    r.Route(
        "POST",
        "/v1/datasets/{name}/grants",
        put_grant,
        "Grant a principal read, write or admin (201 new, 200 replaced)",
        "admin",
        "access",
        params=(r.NAME,),
        body=r.json_content(GRANT),
        responses={201: r.ok("Granted", GRANT), 200: r.ok("Replaced", GRANT)},
    ),
    r.Route(
        "DELETE",
        "/v1/datasets/{name}/grants/{principal}",
        delete_grant,
        "Remove a principal's grant (idempotent)",
        "admin",
        "access",
        params=(r.NAME, r.Param("principal", "path", {"type": "string"}, "User name", True)),
        responses={204: r.empty("Removed")},
    ),
    r.Route(
        "POST",
        "/v1/tokens",
        create_token,
        "Create an API token (admin token); the secret is shown only here",
        "store_admin",
        "access",
        body=r.json_content(r.ref("TokenCreate")),
        responses={201: r.ok("Created", r.ref("NewToken"))},
    ),
    r.Route(
        "GET",
        "/v1/tokens",
        list_tokens,
        "Tokens (an admin sees all, others their own); never the secrets",
        "token",
        "access",
        params=r.PAGING,
        responses={200: r.ok("A page of tokens", r.page_of("Token"))},
    ),
    r.Route(
        "DELETE",
        "/v1/tokens/{id}",
        revoke_token,
        "Revoke a token (an admin any, others their own)",
        "token",
        "access",
        params=(r.Param("id", "path", {"type": "string"}, "Token id", True),),
        responses={204: r.empty("Revoked")},
        errors=(404,),
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)
