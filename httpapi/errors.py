"""The API's one map from error codes to HTTP statuses (SPEC section 11), and its middleware.

Every failure a client sees leaves through :func:`error_middleware` as
``{"error": {"code", "message"}}`` with the status this table gives, whatever raised it:
a store error, an aiohttp HTTP exception (404 for an unknown route, 405, 413) or a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from datastore import errors

log = logging.getLogger("ds.api")

HTTP_STATUS: dict[str, int] = {
    errors.DatastoreError.code: 500,
    errors.InvalidName.code: 400,
    errors.InvalidPath.code: 400,
    errors.InvalidRequest.code: 400,
    errors.AmbiguousRef.code: 400,
    errors.Unauthorized.code: 401,
    errors.Forbidden.code: 403,
    errors.DatasetNotFound.code: 404,
    errors.FileNotFound.code: 404,
    errors.RefNotFound.code: 404,
    errors.DatasetExists.code: 409,
    errors.TagExists.code: 409,
    errors.ReadOnlyRef.code: 409,
    errors.ProcessingInProgress.code: 409,
    errors.HashCollision.code: 409,
    errors.Conflict.code: 409,
    errors.PreconditionFailed.code: 412,
    errors.RequestTimeout.code: 408,
    errors.FileTooLarge.code: 413,
    errors.NotTabular.code: 415,
    errors.InvalidFileType.code: 415,
    errors.StoreCorrupt.code: 500,
    errors.InsufficientStorage.code: 507,
}

# aiohttp's own HTTP errors (unknown route, wrong method, body limits) get a code too.
HTTP_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "invalid_request",
    412: "precondition_failed",
    413: "file_too_large",
    415: "invalid_request",
    416: "range_not_satisfiable",
}


def status_of(err: errors.DatastoreError) -> int:
    return HTTP_STATUS.get(err.code, 500)


def error_response(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="ds"'} if status == 401 else None
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.DatastoreError as err:
        status = status_of(err)
        if status >= 500:
            log.error("%s %s failed: %s [%s]", request.method, request.path, err, err.code)
        resp = error_response(status, err.code, err.message)
        if isinstance(err, errors.RequestTimeout):
            resp.force_close()  # the rest of a stalled body never comes: drop the connection
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        fallback = "internal_error" if exc.status >= 500 else "invalid_request"
        code = HTTP_CODES.get(exc.status, fallback)
        message = exc.reason if exc.text in (None, "", f"{exc.status}: {exc.reason}") else exc.text
        resp = error_response(exc.status, code, message or exc.reason)
        for key in ("Allow", "Content-Range"):
            if key in exc.headers:
                resp.headers[key] = exc.headers[key]
        return resp
    except ConnectionResetError:
        raise
    except OSError as exc:
        known = errors.storage_error(exc, f"{request.method} {request.path}")
        if known is None:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "internal error; see the server log")
        return error_response(status_of(known), known.code, known.message)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "internal error; see the server log")
