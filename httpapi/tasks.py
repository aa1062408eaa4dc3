"""Processing tasks and dataset rules over HTTP: actions, task status, rules.

``POST /v1/datasets/{name}/actions`` starts a ``process`` or ``validate`` task on a
thread of this daemon (202); ``GET /v1/tasks/{id}`` reports it from the catalog, so a
task started by ``ds process`` in another process shows here too. The app's
``TASK_LOOKUP`` is pointed at the runner, so ``GET .../status`` carries the latest task.
At startup, tasks a previous daemon left running are reported failed (interrupted); at
shutdown, running tasks stop and are reported the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from datastore import ACTIONS, TaskRunner, names

from . import routes as r
from .state import (
    ACCESS,
    EXECUTOR,
    STORE,
    TASK_LOOKUP,
    blocking,
    field_of,
    json_object,
    principal,
    store,
)

TASKS = web.AppKey("tasks", TaskRunner)

INT = {"type": "integer", "minimum": 0}
TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["task_id", "status", "progress", "errors", "started_at", "finished_at"],
    "properties": {
        "id": {"type": "string"},
        "task_id": {"type": "string"},
        "dataset": {"type": "string"},
        "version": {"type": "string"},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "status": {"type": "string", "enum": ["queued", "processing", "completed", "failed"]},
        "progress": {
            "type": "object",
            "required": ["files_total", "files_processed", "files_failed", "percent_complete"],
            "properties": {
                "files_total": INT,
                "files_processed": INT,
                "files_failed": INT,
                "percent_complete": {"type": "number", "minimum": 0, "maximum": 100},
            },
        },
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["file", "error"],
                "properties": {
                    "file": {"type": ["string", "null"]},
                    "error": {"type": "string"},
                },
            },
        },
        "reason": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": list(ACTIONS)},
        "ref": {"type": "string", "description": "A version to work on (default: the head)"},
    },
}
RULES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "allow_categories": {"type": "array", "items": {"type": "string"}},
        "allow_extensions": {"type": "array", "items": {"type": "string"}},
        "max_bytes": INT,
    },
}
RULES_DOC: dict[str, Any] = {
    "type": "object",
    "required": ["dataset", "rules"],
    "properties": {"dataset": {"type": "string"}, "rules": RULES_SCHEMA},
}


async def start_action(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_object(request)
    action = field_of(body, "action", str, required=True)
    ref = field_of(body, "ref", str)
    spec = name if ref is None else f"{name}@{names.ref_text(ref)}"
    runner = request.app[TASKS]
    doc = await blocking(request, runner.start, spec, action)
    return web.json_response(doc, status=202)


async def get_task(request: web.Request) -> web.Response:
    task_id = request.match_info["id"]
    runner = request.app[TASKS]
    access = request.app[ACCESS]
    who = principal(request)

    def work() -> dict[str, Any]:
        doc = runner.get(task_id)
        access.require(who, doc["dataset"], "read")  # unreadable: 404, as if missing
        return doc

    return web.json_response(await blocking(request, work))


async def get_rules(request: web.Request) -> web.Response:
    name = names.split_ref(request.match_info["name"])[0]
    row = await blocking(request, store(request).dataset, name)
    return web.json_response({"dataset": name, "rules": row.rules})


async def put_rules(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_object(request)
    info = await blocking(request, store(request).update_dataset, name, rules=body)
    return web.json_response({"dataset": name, "rules": info.row.rules})


ROUTES = [
    r.Route(
        "POST",
        "/v1/datasets/{name}/actions",
        start_action,
        "Start a process or validate task on the head (or on `ref`)",
        "write",
        "tasks",
        params=(r.NAME,),
        body=r.json_content(ACTION_SCHEMA),
        responses={202: r.ok("Task queued", TASK_SCHEMA)},
    ),
    r.Route(
        "GET",
        "/v1/tasks/{id}",
        get_task,
        "Status, progress and per-file errors of a task",
        "token",
        "tasks",
        params=(r.Param("id", "path", {"type": "string"}, "Task id", True),),
        responses={200: r.ok("The task", TASK_SCHEMA)},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/rules",
        get_rules,
        "The dataset's rules: allowed categories and extensions, largest file",
        "read",
        "datasets",
        params=(r.NAME,),
        responses={200: r.ok("Rules", RULES_DOC)},
    ),
    r.Route(
        "PUT",
        "/v1/datasets/{name}/rules",
        put_rules,
        "Replace the dataset's rules (an empty object accepts anything)",
        "admin",
        "datasets",
        params=(r.NAME,),
        body=r.json_content(RULES_SCHEMA),
        responses={200: r.ok("Rules", RULES_DOC)},
    ),
]


def add_routes(app: web.Application) -> None:
    runner = TaskRunner(app[STORE])
    app[TASKS] = runner
    app[TASK_LOOKUP] = runner.latest
    r.add(app, ROUTES)
    app.cleanup_ctx.append(_runner_ctx)


async def _runner_ctx(app: web.Application) -> AsyncIterator[None]:
    """Reap tasks a dead daemon left active at startup; stop this one's tasks at the end."""
    runner = app[TASKS]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(app[EXECUTOR], runner.recover)
    yield
    await loop.run_in_executor(None, runner.stop)
