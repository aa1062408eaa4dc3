"""Processing tasks: ``process`` and ``validate`` over every file of a dataset version.

A task is a catalog row (status, progress, per-file errors, times), so any process that
opens the store can report it, and it survives the daemon that ran it. While a task runs,
its runner holds ``locks/task-<id>.lock``; an active row whose lock nobody holds belongs to
a runner that died, and is reported ``failed`` with the reason (SPEC section 7). A second
task on a dataset with an active one is refused with ``processing_in_progress``.

``validate`` checks each file: its object is present with the recorded size, its category
is known, the dataset's rules accept it, and tables, JSON and XML parse. ``process`` does
the same and also profiles every tabular file with ``datastore.analytics`` when that module
offers a statistics function. A file that fails adds to ``files_failed`` and ``errors``;
the task still ends ``completed`` (SPEC section 11).
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import importlib
import io
import json
import logging
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from datastore import rules as ds_rules
from datastore.categories import CATEGORIES, categorize, extension
from datastore.errors import DatastoreError, FileNotFound, InvalidRequest, ProcessingInProgress
from datastore.storage.locks import unheld
from datastore.storage.manifest import Entry
from datastore.storage.reader import open_file, read_at
from datastore.store import Store
from datastore.times import utc_now

ACTIONS = ("process", "validate")
ACTIVE = ("queued", "processing")
PROGRESS_EVERY_SECONDS = 0.2
INTERRUPTED = "interrupted: the process running this task stopped before it finished"
log = logging.getLogger("ds.tasks")

TaskProgress = Callable[[dict[str, Any]], None]


def task_doc(row: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The task JSON of the API and ``--json`` (``GET /v1/tasks/{id}``)."""
    progress = dict(row["progress"])
    version = progress.pop("version", dataset)
    reason = next((e["error"] for e in row["errors"] if e.get("file") is None), None)
    return {
        "id": row["id"],
        "task_id": row["id"],
        "dataset": dataset,
        "version": version,
        "action": row["action"],
        "status": row["status"],
        "progress": {
            "files_total": progress.get("files_total", 0),
            "files_processed": progress.get("files_processed", 0),
            "files_failed": progress.get("files_failed", 0),
            "percent_complete": progress.get("percent_complete", 0.0),
        },
        "errors": row["errors"],
        "reason": reason,
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


class TaskRunner:
    """Starts tasks on threads of this process and answers for tasks of any process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # starting ---------------------------------------------------------------

    def start(self, spec: str, action: str) -> dict[str, Any]:
        """Queue a task and run it on a background thread; returns its JSON at once."""
        task_id, lock_fd, name = self._create(spec, action)
        thread = threading.Thread(
            target=self._run_guarded,
            args=(task_id, spec, lock_fd, None),
            name=f"ds-task-{task_id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return self.get(task_id)

    def run(
        self, spec: str, action: str, on_progress: TaskProgress | None = None
    ) -> dict[str, Any]:
        """Run a task to the end on this thread (``ds process --wait``)."""
        task_id, lock_fd, _ = self._create(spec, action)
        self._run_guarded(task_id, spec, lock_fd, on_progress)
        return self.get(task_id)

    def _create(self, spec: str, action: str) -> tuple[str, int, str]:
        if action not in ACTIONS:
            raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        version = self.store.resolve(spec)
        row = version.dataset
        task_id = uuid.uuid4().hex
        lock_fd = _hold(self._lock_path(task_id))
        try:
            self._create_row(task_id, row.id, action, version.label)
        except BaseException:
            _release(self._lock_path(task_id), lock_fd)
            raise
        return task_id, lock_fd, row.name

    def _create_row(self, task_id: str, dataset_id: str, action: str, label: str) -> None:
        doc: dict[str, Any] = {
            "id": task_id,
            "dataset_id": dataset_id,
            "action": action,
            "status": "queued",
            "progress": {**_progress(0, 0, 0), "version": label},
            "errors": [],
            "created_at": utc_now(),
            "started_at": None,
            "finished_at": None,
        }
        for _ in range(2):
            busy = self.store.catalog.insert_task(doc)
            if busy is None:
                return
            if not self._reap(busy):  # a dead runner's task does not block a new one
                raise ProcessingInProgress(
                    f"task {busy} is still running on {label.split('@')[0]}; wait for it"
                )
        raise ProcessingInProgress(f"another task is running on {label.split('@')[0]}")

    # running ----------------------------------------------------------------

    def _run_guarded(
        self, task_id: str, spec: str, lock_fd: int, on_progress: TaskProgress | None
    ) -> None:
        try:
            self._run(task_id, spec, on_progress)
        except _Stopped:
            self._fail(task_id, INTERRUPTED.replace("the process", "the daemon"))
        except DatastoreError as err:
            self._fail(task_id, f"{err.message} [{err.code}]")
        except Exception as err:  # noqa: BLE001 - a task reports every failure in its row
            log.exception("task %s failed", task_id)
            self._fail(task_id, f"{type(err).__name__}: {err}")
        finally:
            _release(self._lock_path(task_id), lock_fd)

    def _run(self, task_id: str, spec: str, on_progress: TaskProgress | None) -> None:
        row = self.store.catalog.task(task_id)
        assert row is not None
        action = row["action"]
        version = self.store.resolve(spec)
        rules = ds_rules.parse(version.dataset.rules)
        files = [e for e in self.store.entries(spec) if e.is_file]
        label = version.label
        self._update(task_id, "processing", _progress(len(files), 0, 0), [], label, started=True)
        if on_progress is not None:
            on_progress(self.get(task_id))
        errors: list[dict[str, Any]] = []
        profile = _profiler(self.store, label) if action == "process" else None
        last = 0.0
        for i, entry in enumerate(files):
            if self._stop.is_set():
                raise _Stopped
            problem = check_file(self.store, entry, rules, profile)
            if problem is not None:
                errors.append({"file": entry.path, "error": problem})
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_SECONDS or i == len(files) - 1:
                last = now
                progress = _progress(len(files), i + 1, len(errors))
                self._update(task_id, "processing", progress, errors, label)
                if on_progress is not None:
                    on_progress(self.get(task_id))
        self._update(
            task_id,
            "completed",
            _progress(len(files), len(files), len(errors), done=True),
            errors,
            label,
            finished=True,
        )
        if on_progress is not None:
            on_progress(self.get(task_id))

    def _update(
        self,
        task_id: str,
        status: str,
        progress: dict[str, Any],
        errors: list[dict[str, Any]],
        label: str,
        started: bool = False,
        finished: bool = False,
    ) -> None:
        fields: dict[str, Any] = {
            "status": status,
            "progress": {**progress, "version": label},
            "errors": errors,
        }
        if started:
            fields["started_at"] = utc_now()
        if finished:
            fields["finished_at"] = utc_now()
        self.store.catalog.update_task(task_id, only_active=True, **fields)

    def _fail(self, task_id: str, reason: str) -> None:
        row = self.store.catalog.task(task_id)
        errors = (row["errors"] if row else []) + [{"file": None, "error": reason}]
        self.store.catalog.update_task(
            task_id, only_active=True, status="failed", errors=errors, finished_at=utc_now()
        )

    # reading ----------------------------------------------------------------

    def get(self, task_id: str) -> dict[str, Any]:
        """A task by id, from any process; a dead runner's task is reported failed first."""
        row = self.store.catalog.task(task_id)
        if row is None:
            raise FileNotFound(f"no task {task_id!r}")
        if row["status"] in ACTIVE and self._reap(task_id):
            row = self.store.catalog.task(task_id)
            assert row is not None
        return task_doc(row, self._dataset_name(row["dataset_id"]))

    def latest(self, name: str) -> dict[str, Any] | None:
        """The newest task of a dataset (the ``task`` of its status), or None."""
        row = self.store.catalog.latest_task(self.store.dataset(name).id)
        return None if row is None else self.get(row["id"])

    def _dataset_name(self, dataset_id: str) -> str:
        return self.store.catalog.dataset_name_of(dataset_id) or ""

    # recovery and shutdown --------------------------------------------------

    def recover(self) -> int:
        """Report every active task whose runner is gone as failed; returns how many."""
        return sum(self._reap(row["id"]) for row in self.store.catalog.active_tasks())

    def _reap(self, task_id: str) -> bool:
        """Mark a task failed if no live runner holds its lock; True when it was dead."""
        path = self._lock_path(task_id)
        with unheld(path, os.O_RDWR | os.O_CREAT) as dead:
            if dead:
                self._fail(task_id, INTERRUPTED)
                path.unlink(missing_ok=True)
            return dead

    def stop(self, timeout: float = 10.0) -> None:
        """Stop running tasks (each ends failed, interrupted) and wait for their threads."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)

    def _lock_path(self, task_id: str) -> Path:
        return self.store.locks / f"task-{task_id}.lock"


class _Stopped(Exception):
    """The runner was asked to stop between two files."""


def _progress(total: int, processed: int, failed: int, done: bool = False) -> dict[str, Any]:
    percent = (100.0 if done else 0.0) if total == 0 else round(100.0 * processed / total, 1)
    return {
        "files_total": total,
        "files_processed": processed,
        "files_failed": failed,
        "percent_complete": percent,
    }


def _hold(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _release(path: Path, fd: int) -> None:
    """Unlink first: a reaper that opens the path afterwards finds the row finished."""
    path.unlink(missing_ok=True)
    os.close(fd)


# checking one file ----------------------------------------------------------------

Profiler = Callable[[Entry], Any]


def _profiler(store: Store, spec: str) -> Profiler | None:
    """Schema, stats and quality of one table through ``datastore.analytics``, if present.

    Imported lazily: the analytics module pulls in DuckDB, which ``validate`` never needs.
    Results land in the analytics cache by object id, so the API answers from it later.
    """
    try:
        analytics = importlib.import_module("datastore.analytics")
    except ImportError:
        return None
    engine_class = getattr(analytics, "Analytics", None)
    if engine_class is None:
        return None
    engine = engine_class(store)
    kinds = [k for k in ("schema", "stats", "quality") if hasattr(engine, k)]

    def profile(entry: Entry) -> Any:
        return [getattr(engine, kind)(spec, entry.path) for kind in kinds]

    return profile


def check_file(
    store: Store, entry: Entry, rules: ds_rules.Rules, profile: Profiler | None = None
) -> str | None:
    """Why one file fails validation (or profiling), or None when it passes."""
    try:
        _check(store, entry, rules, profile)
    except DatastoreError as err:
        return f"{err.message} [{err.code}]"
    except Exception as err:  # noqa: BLE001 - any parse failure is this file's error
        return f"{type(err).__name__}: {err}"
    return None


def _check(store: Store, entry: Entry, rules: ds_rules.Rules, profile: Profiler | None) -> None:
    assert entry.object is not None
    with store.open_object(entry.object) as obj:
        if obj.size != entry.size:
            raise ValueError(
                f"object {entry.object} holds {obj.size} bytes, the entry says {entry.size}"
            )
        head = read_at(obj, 512, 0)
    category = entry.info.get("category") or categorize(entry.path, head)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    ds_rules.check(rules, entry.path, entry.size, category)
    if profile is not None and category == "tabular":
        profile(entry)  # the profile reads the whole table; a malformed one fails there
    else:
        with open_file(store.open_object(entry.object)) as f:
            _parse(f, extension(entry.path))


def _parse(obj: BinaryIO, ext: str) -> None:
    """Read the whole file in its format, so a truncated or malformed one fails here."""
    if ext in ("csv", "tsv", "csv.gz", "tsv.gz"):
        _parse_delimited(obj, "\t" if ext.startswith("tsv") else ",", ext.endswith(".gz"))
    elif ext in ("parquet", "pq"):
        import pyarrow.parquet as pq

        pq.ParquetFile(obj).read()
    elif ext in ("jsonl", "ndjson"):
        _parse_jsonl(obj)
    elif ext == "json":
        json.load(obj)
    elif ext == "xml":
        ET.parse(obj)


def _parse_delimited(obj: BinaryIO, delimiter: str, gz: bool) -> None:
    with _text(obj, gz) as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError("empty table: no header row")
        for row in reader:
            if row and len(row) != len(header):
                raise ValueError(
                    f"line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                )


def _parse_jsonl(obj: BinaryIO) -> None:
    with _text(obj, False) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"line {n}: not JSON ({exc})") from exc


@contextmanager
def _text(obj: BinaryIO, gz: bool) -> Iterator[io.TextIOBase]:
    with (
        gzip.open(obj, "rb") if gz else obj as raw,
        io.TextIOWrapper(raw, encoding="utf-8", newline="") as f,
    ):
        yield f
