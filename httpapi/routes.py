"""The route table: every route declares its access rule and its OpenAPI description.

A :class:`Route` is registered with :func:`add`, which wraps its handler in
:func:`guard`; the guard authenticates the bearer token and checks the dataset grant
the route declares before the handler runs, so no route can forget a check. The same
table is what ``/v1/openapi.json`` is generated from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from datastore import ANONYMOUS_ADMIN, LEVELS, Forbidden, Principal, ReadOnlyRef, names

from .state import ACCESS, PRINCIPAL, SETTINGS, blocking

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# access rules: "public" (no token), "token" (any valid token), "store_admin" (an admin
# token), or the grant needed on the dataset in {name}: "read", "write", "admin".
ACCESS_RULES = ("public", "token", "store_admin", "read", "write", "admin")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "query", "path" or "header"
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    access: str
    tag: str
    params: tuple[Param, ...] = ()
    # request body: media type -> JSON schema
    body: dict[str, dict[str, Any]] | None = None
    # status -> (description, media type -> schema); error statuses are added by openapi
    responses: dict[int, tuple[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()

    @property
    def writes(self) -> bool:
        return self.method not in ("GET", "HEAD")


ROUTES_KEY = web.AppKey("routes", list[Route])


def add(app: web.Application, routes: Iterable[Route]) -> None:
    """Register routes on the app and in its table (the source of the OpenAPI document)."""
    table = app[ROUTES_KEY]
    for route in routes:
        assert route.access in ACCESS_RULES, route
        app.router.add_route(route.method, route.path, guard(route), name=_route_name(route))
        table.append(route)


def _route_name(route: Route) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in route.path.split(":")[0])
    return f"{route.method.lower()}{cleaned}".rstrip("_")


def guard(route: Route) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if route.access != "public":
            request[PRINCIPAL] = await _check(request, route)
        return await route.handler(request)

    guarded.__name__ = getattr(route.handler, "__name__", "handler")
    return guarded


async def _check(request: web.Request, route: Route) -> Principal:
    app = request.app
    if not app[SETTINGS].auth:
        who = ANONYMOUS_ADMIN
        presented = None
    else:
        presented = _bearer(request)
        who = None
    if route.access in LEVELS:
        spec = request.match_info["name"]
        allowed, name, ref = await blocking(
            request, _authorize, app, presented, who, spec, route.access
        )
        if ref is not None and route.writes:
            raise ReadOnlyRef(f"{name}@{ref} is a read-only version; write to {name}")
        return allowed
    if who is None:
        who = await blocking(request, app[ACCESS].authenticate, presented)
    if route.access == "store_admin" and not who.admin:
        raise Forbidden("this needs an admin token")
    return who


def _authorize(
    app: web.Application, presented: str | None, who: Principal | None, spec: str, need: str
) -> tuple[Principal, str, str | None]:
    """Authenticate, then parse ``NAME[@REF]`` and check the grant, in one executor hop.

    The token comes first: a caller without one learns nothing, not even whether a name
    is well formed.
    """
    access = app[ACCESS]
    if who is None:
        who = access.authenticate(presented)
    name, ref = names.split_ref(spec)
    access.require(who, name, need)
    return who, name, ref


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# OpenAPI helpers used by the route modules -----------------------------------------


def ref(schema: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema}"}


def page_of(schema: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref(schema)},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
        },
    }


def json_content(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"application/json": schema}


def ok(description: str, schema: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    return description, json_content(schema)


def empty(description: str) -> tuple[str, dict[str, dict[str, Any]]]:
    return description, {}


NAME = Param(
    "name",
    "path",
    {"type": "string"},
    "Dataset name, or NAME@REF (a tag, snapshot id or prefix, `latest`, or a UTC time)",
    True,
)
PATH = Param("path", "path", {"type": "string"}, "File path inside the dataset", True)
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 0}, "Page size (max 1000)")
OFFSET = Param("offset", "query", {"type": "integer", "minimum": 0}, "Items to skip")
PAGING = (LIMIT, OFFSET)
