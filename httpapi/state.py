"""Typed application and request state shared by the API modules, and the executor hop.

Handlers stay thin: they parse the request, run the store call in the app's thread pool
with :func:`blocking` (SQLite, hashing and file I/O never run on the event loop) and
return the JSON document ``datastore.present.shapes`` builds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from datastore import Access, InvalidRequest, Principal, RequestTimeout, Store, names

T = TypeVar("T")

DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024**3
DEFAULT_IDLE_TIMEOUT = 60.0  # nginx: client_header_timeout 60 s, keepalive_timeout 75 s
DEFAULT_BODY_TIMEOUT = 60.0  # nginx: client_body_timeout 60 s between two reads


@dataclass(frozen=True, slots=True)
class Settings:
    """How one daemon runs: auth on or off, the upload limit, the worker threads, and how
    long a client may keep the server waiting (seconds): ``idle_timeout`` for a whole
    request header after connecting or after the previous response (an idle keep-alive
    connection is the same wait), ``body_timeout`` for each next piece of a body."""

    auth: bool = True
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    workers: int = 32
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT


STORE = web.AppKey("store", Store)
SETTINGS = web.AppKey("settings", Settings)
ACCESS = web.AppKey("access", Access)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
# Streaming uploads hold a thread for as long as the client takes to send; they get their
# own pool so slow uploaders can never starve the short catalog work of other requests.
UPLOADS = web.AppKey("uploads", ThreadPoolExecutor)
# The latest processing task of a dataset (name -> task JSON or None). The module that
# runs tasks replaces this; until then the status route reports no task.
TaskLookup = Callable[[str], "dict[str, Any] | None"]
TASK_LOOKUP: web.AppKey[TaskLookup] = web.AppKey("task_lookup")

PRINCIPAL = web.RequestKey("principal", Principal)
BYTES_IN = web.RequestKey("bytes_in", int)


async def blocking(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in the app's thread pool so the event loop never waits on disk or SQLite."""
    loop = asyncio.get_running_loop()
    call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
    return await loop.run_in_executor(request.app[EXECUTOR], call)


async def streaming(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like :func:`blocking`, in the upload pool: for work that waits on the client."""
    loop = asyncio.get_running_loop()
    call = functools.partial(fn, *args, **kwargs)
    return await loop.run_in_executor(request.app[UPLOADS], call)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def store(request: web.Request) -> Store:
    return request.app[STORE]


def paging(request: web.Request) -> tuple[int, int]:
    """``limit`` and ``offset`` from the query: default 100, clamped at 1000, 400 if bad."""
    return names.page(request.query.get("limit"), request.query.get("offset"))


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter: true/false, 1/0, yes/no; anything else is 400."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"{name} must be true or false, not {raw!r}")


def choice(request: web.Request, name: str, options: tuple[str, ...], default: str) -> str:
    value = request.query.get(name) or default
    if value not in options:
        raise InvalidRequest(f"{name} must be one of {', '.join(options)}, not {value!r}")
    return value


async def from_client(request: web.Request, read: Awaitable[T]) -> T:
    """Await bytes of the request body, for at most the body timeout: a client that stops
    sending mid-body is ``request_timeout`` (408, connection closed), never a handler (and
    a spooled temp) held forever."""
    seconds = request.app[SETTINGS].body_timeout
    try:
        async with asyncio.timeout(seconds):
            return await read
    except TimeoutError:
        raise RequestTimeout(
            f"the request body stalled: nothing arrived for {seconds:g} s"
        ) from None


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 ``invalid_request`` for anything else."""
    raw = await from_client(request, request.read())
    if not raw.strip():
        return {}
    body = parse_json(raw, "request body")
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


MAX_JSON_DEPTH = 64


def parse_json(raw: bytes | str, what: str) -> Any:
    """JSON from a client; 400 ``invalid_request`` when it is not JSON, holds a number
    no float holds, or nests deeper than ``MAX_JSON_DEPTH`` (a thousand levels would
    overflow Python's stack here or wherever the value is walked later)."""
    try:
        value = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except RecursionError as exc:
        raise InvalidRequest(f"{what} nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from exc
    level: list[Any] = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for v in level
            if isinstance(v, dict | list)
            for child in (v.values() if isinstance(v, dict) else v)
        ]
        if not level:
            return value
    raise InvalidRequest(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")


def _not_json(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def _finite(text: str) -> float:
    """JSON numbers too large for a float would be stored as inf and answered as
    ``Infinity``, which no JSON parser reads back: refuse them at the door."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def only_fields(body: dict[str, Any], *known: str) -> dict[str, Any]:
    """A body that changes something names only fields the route knows: a misspelt one
    (``descriptio``) is 400 naming it, never a 200 that did nothing."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(map(repr, unknown))}; expected {', '.join(known)}"
        )
    return body


def field_of(body: dict[str, Any], key: str, kind: type, required: bool = False) -> Any:
    """One typed field of a JSON body; wrong type or a missing required field is 400."""
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidRequest(f"{key!r} is required")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(f"{key!r} must be a {_kind_name(kind)}")
    return value


def _kind_name(kind: type) -> str:
    return {str: "string", dict: "JSON object", list: "list", bool: "boolean"}.get(
        kind, kind.__name__
    )
