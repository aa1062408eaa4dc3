"""The aiohttp application: ``create_app(store, settings)`` and the one route table.

Routes come from the modules in :data:`ROUTE_MODULES`, each with ``add_routes(app)``
registering its :class:`~httpapi.routes.Route` list; the table they fill is what the
guard enforces and what ``/v1/openapi.json`` describes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from datastore import Store

from . import archive, auth, datasets, files, metrics, openapi, tables, tasks, versions
from .errors import error_middleware
from .metrics import METRICS, Metrics, metrics_middleware
from .openapi import OPENAPI_DOC
from .routes import ROUTES_KEY
from .state import ACCESS, EXECUTOR, SETTINGS, STORE, TASK_LOOKUP, UPLOADS, Settings

log = logging.getLogger("ds.api")

# The route table, in order. Each module has add_routes(app).
ROUTE_MODULES = (
    metrics,  # /healthz, /metrics
    openapi,  # /v1/openapi.json
    datasets,  # /v1/datasets, summary, lineage, /v1/stats
    files,  # files, uploads, downloads, status
    archive,  # archive
    versions,  # snapshots, tags, forget, diff
    auth,  # grants, tokens
    tables,  # schema, preview, stats, quality, compare, export
    tasks,  # actions and tasks
)


def _no_task(name: str) -> dict[str, Any] | None:
    return None


def create_app(store: Store, settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(middlewares=[metrics_middleware, error_middleware])
    app[STORE] = store
    app[SETTINGS] = settings
    app[ACCESS] = store.access()
    app[METRICS] = Metrics()
    app[TASK_LOOKUP] = _no_task
    app[ROUTES_KEY] = []
    for module in ROUTE_MODULES:
        module.add_routes(app)
    # threads start on first use; the cleanup context joins them when the app stops
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ds-api")
    app[UPLOADS] = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ds-upload")
    app[OPENAPI_DOC] = {}
    app.cleanup_ctx.append(_executor_ctx)
    return app


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    app[UPLOADS].shutdown(wait=True, cancel_futures=True)
    app[EXECUTOR].shutdown(wait=True, cancel_futures=True)


class AccessLog(AbstractAccessLogger):
    """One line per request: client, request line, status, bytes sent (headers
    included, as nginx's ``$bytes_sent``; a file sent with sendfile counted whole once
    sent), seconds.

    The fields of aiohttp's ``'%a "%r" %s %b %Tf'`` format, without its per-request
    format interpretation, which cost a fifth of the event loop's time under load.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        version = request.version
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.6fs',
            request.remote,
            request.method,
            request.raw_path,
            version.major,
            version.minor,
            response.status,
            response.body_length + getattr(response, "file_bytes", 0),
            time,
        )
