"""Inbox and processing commands: watch, rules, process, validate, task."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from datastore import InvalidRequest

from .common import Output, common_options, human_size

# the hidden flag a background task runner is started with (see _spawn)
CHILD_FLAG = "--background-child"


F = TypeVar("F", bound=Callable[..., Any])

INBOX_OPTIONS = ("create_datasets", "snapshot_after", "tag_pattern", "max_bytes", "stable_seconds")


def inbox_options(func: F) -> F:
    """The inbox flags of ``ds watch`` and ``ds serve --inbox``, one set for both; each
    also reads its ``DS_INBOX_*`` environment variable. The command gets ``inbox_config``,
    the options checked and built."""
    options = [
        click.option(
            "--create-datasets",
            is_flag=True,
            envvar="DS_INBOX_CREATE_DATASETS",
            help="Inbox: create a dataset for an unknown NAME.",
        ),
        click.option(
            "--snapshot-after",
            type=click.FloatRange(min=0),
            default=None,
            envvar="DS_INBOX_SNAPSHOT_AFTER",
            metavar="SECONDS",
            help="Inbox: snapshot a dataset once its inbox has been quiet this long.",
        ),
        click.option(
            "--tag-pattern",
            default=None,
            envvar="DS_INBOX_TAG_PATTERN",
            metavar="PATTERN",
            help="Inbox: tag auto-snapshots, e.g. 'inbox-{utc:%Y%m%dT%H%M%S}' ({dataset} too).",
        ),
        click.option(
            "--max-bytes",
            type=click.IntRange(min=0),
            default=None,
            envvar="DS_INBOX_MAX_BYTES",
            help="Inbox: reject files larger than this (dataset rules apply as well).",
        ),
        click.option(
            "--stable-seconds",
            type=click.FloatRange(min=0),
            default=1.0,
            envvar="DS_INBOX_STABLE_SECONDS",
            show_default=True,
            help="Inbox: quiet time before a file with no close event counts as complete.",
        ),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from datastore import InboxOptions, check_tag_pattern

        given = {k: kwargs.pop(k) for k in INBOX_OPTIONS}
        if given["tag_pattern"] is not None:
            check_tag_pattern(given["tag_pattern"])
        return func(*args, inbox_config=InboxOptions(**given), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def watchdog_watcher(root: str, note: Callable[[str, str, bool], None]) -> Any:
    """Start a watchdog observer (inotify on Linux) feeding an inbox's notes.

    Only what can make a file ready is asked for: created, renamed in, closed after
    writing. Writes, attribute changes, opens, reads and deletions (ours, mostly: every
    unlink is an IN_ATTRIB) are not asked of inotify at all, which keeps the event thread
    off the CPU the ingest needs; whether a writer still has a file open is asked of the
    file itself.
    """
    from watchdog import events as ev
    from watchdog.observers import Observer

    class Notes(ev.FileSystemEventHandler):
        def on_any_event(self, event: ev.FileSystemEvent) -> None:
            path = event.dest_path if event.event_type == "moved" else event.src_path
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if path:
                note(path, event.event_type, event.is_directory)

    wanted = [
        ev.FileCreatedEvent,
        ev.FileMovedEvent,
        ev.FileClosedEvent,
        ev.DirCreatedEvent,
        ev.DirMovedEvent,
    ]
    observer = Observer()
    observer.schedule(Notes(), root, recursive=True, event_filter=wanted)
    observer.start()
    return observer


@click.command("watch")
@click.argument("inbox", type=click.Path(file_okay=False))
@inbox_options
@common_options
def watch_cmd(out: Output, inbox: str, inbox_config: Any) -> None:
    """Ingest files dropped at INBOX/NAME/path into dataset NAME until interrupted.

    A file goes in once it is complete (closed or renamed in, and open for writing
    by no one), then leaves the inbox.
    Dotfiles and *.part, *.tmp, *~ wait until renamed. Files that cannot go in move to
    INBOX/.rejected/NAME/path with path.error beside them.

    \b
    Example:
      ds watch /srv/inbox --create-datasets --snapshot-after 60 \\
        --tag-pattern 'inbox-{utc:%Y%m%dT%H%M%S}'
    """
    from datastore import Inbox

    inbox_obj = Inbox(
        out.store, Path(inbox), inbox_config, _reporter(out), watchdog_watcher
    ).start()
    stop = lambda *_: inbox_obj.stop()  # noqa: E731 - signal handlers take two arguments
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not out.as_json:
        click.echo(f"ds watch: ingesting {Path(inbox).absolute()} (Ctrl-C stops)", err=True)
    inbox_obj.wait()
    stats = inbox_obj.stats
    report = _reporter(out)
    report("stopped", {"ingested": stats.ingested, "rejected": stats.rejected})


def _reporter(out: Output) -> Any:
    """Watch events as one line each: JSON lines with --json, else short sentences.

    ``ds watch --json`` is a stream, so it prints one JSON document per line (events
    ``ingested``, ``rejected``, ``snapshot``, ``created``, ``retry``, ``error``, ``stopped``).
    """

    def report(kind: str, info: dict[str, Any]) -> None:
        if out.as_json:
            click.echo(json.dumps({"event": kind, **info}))
            return
        if kind == "ingested":
            click.echo(f"{info['dataset']}: {len(info['files'])} file(s) ingested")
        elif kind == "rejected":
            click.echo(f"rejected {info['file']}: {info['reason']}", err=True)
        elif kind == "snapshot":
            tags = f" tagged {', '.join(info['tags'])}" if info["tags"] else ""
            click.echo(f"{info['dataset']}: snapshot {info['snapshot'][:12]}{tags}")
        elif kind == "created":
            click.echo(f"created dataset {info['dataset']}")
        elif kind == "stopped":
            click.echo(
                f"ds watch: stopped ({info['ingested']} ingested, {info['rejected']} rejected)"
            )
        else:
            click.echo(f"{kind}: {info}", err=True)

    return report


@click.command("rules")
@click.argument("name")
@click.option(
    "--allow-category",
    "categories",
    multiple=True,
    metavar="CATEGORY",
    help="Accept this category (tabular, data, text, image, audio, archive, binary).",
)
@click.option(
    "--allow-ext", "extensions", multiple=True, metavar="EXT", help="Accept this extension."
)
@click.option(
    "--max-bytes", type=click.IntRange(min=0), default=None, help="Largest file accepted."
)
@click.option("--clear", is_flag=True, help="Drop every rule first (alone: accept anything).")
@common_options
def rules_cmd(
    out: Output,
    name: str,
    categories: tuple[str, ...],
    extensions: tuple[str, ...],
    max_bytes: int | None,
    clear: bool,
) -> None:
    """Show or set what a dataset accepts; enforced on ds put, uploads, the mount and the inbox.

    Options given replace those rules and keep the others. A file passes the type rules
    when its category or its extension is allowed. Without options, shows the rules.

    \b
    Example:
      ds rules sales --allow-category tabular --allow-ext md --max-bytes 100000000
    """
    current = dict(out.store.dataset(name).rules)
    changing = clear or categories or extensions or max_bytes is not None
    if changing:
        rules: dict[str, Any] = {} if clear else current
        if categories:
            rules["allow_categories"] = list(categories)
        if extensions:
            rules["allow_extensions"] = list(extensions)
        if max_bytes is not None:
            rules["max_bytes"] = max_bytes
        current = out.store.update_dataset(name, rules=rules).row.rules
    out.emit({"dataset": name, "rules": current}, lambda: _show_rules(name, current))


def _show_rules(name: str, rules: dict[str, Any]) -> None:
    if not rules:
        click.echo(f"{name}: no rules (any file is accepted)")
        return
    if rules.get("allow_categories"):
        click.echo(f"categories: {', '.join(rules['allow_categories'])}")
    if rules.get("allow_extensions"):
        click.echo(f"extensions: {', '.join(rules['allow_extensions'])}")
    if rules.get("max_bytes") is not None:
        click.echo(f"max size:   {human_size(rules['max_bytes'])} ({rules['max_bytes']} bytes)")


def _task_command(action: str, summary: str, example: str) -> click.Command:
    @click.command(action, help=f"{summary}\n\n\b\nExample:\n  {example}")
    @click.argument("spec", metavar="NAME[@REF]")
    @click.option(
        "--wait",
        is_flag=True,
        help="Run here with a progress bar; exit 1 if the task failed or any file did.",
    )
    @click.option(CHILD_FLAG, "child", is_flag=True, hidden=True)
    @common_options
    def cmd(out: Output, spec: str, wait: bool, child: bool) -> None:
        if child:
            _run_child(out, spec, action)
        elif wait:
            _run_waiting(out, spec, action)
        else:
            _emit_task(out, _spawn(out, spec, action))

    return cmd


def _run_waiting(out: Output, spec: str, action: str) -> None:
    from datastore import TaskRunner

    with out.progress(action) as bar:

        def on_progress(doc: dict[str, Any]) -> None:
            bar(doc["progress"]["files_processed"], doc["progress"]["files_total"])

        doc = TaskRunner(out.store).run(spec, action, on_progress)
    _emit_task(out, doc)
    if doc["status"] != "completed" or doc["progress"]["files_failed"]:
        sys.exit(1)


def _run_child(out: Output, spec: str, action: str) -> None:
    """The detached runner: say the task id on stdout once, then work silently."""
    from datastore import TaskRunner

    said = False

    def on_progress(doc: dict[str, Any]) -> None:
        nonlocal said
        if not said:
            said = True
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)

    TaskRunner(out.store).run(spec, action, on_progress)


def _spawn(out: Output, spec: str, action: str) -> dict[str, Any]:
    """Start the task in a detached ``ds`` process and return the task it created."""
    cmd = [
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        action,
        spec,
        CHILD_FLAG,
        "--store",
        str(out.store.root),
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if line:
        proc.stdout.close()
        proc.stderr.close()
        return dict(json.loads(line))
    err = proc.stderr.read().decode(errors="replace").strip()
    code = proc.wait()
    click.echo(err.splitlines()[-1] if err else f"ds: error: {action} did not start", err=True)
    sys.exit(code or 1)


def _emit_task(out: Output, doc: dict[str, Any]) -> None:
    out.emit(doc, lambda: _show_task(doc))


def _show_task(doc: dict[str, Any]) -> None:
    p = doc["progress"]
    click.echo(
        f"task {doc['id']} ({doc['action']} {doc['version']}): {doc['status']},"
        f" {p['files_processed']}/{p['files_total']} files, {p['files_failed']} failed"
        f" ({p['percent_complete']}%)"
    )
    for e in doc["errors"]:
        click.echo(f"  {e['file'] or '(task)'}: {e['error']}")


process_cmd = _task_command(
    "process",
    "Profile every tabular file of a version and validate the others, as a task.\n\n"
    "Without --wait the task runs in the background; follow it with ds task ID.",
    "ds process sales --wait",
)
validate_cmd = _task_command(
    "validate",
    "Validate every file of a version (present, rules, parses), as a task.\n\n"
    "Without --wait the task runs in the background; follow it with ds task ID.",
    "ds validate sales@v1.0 --wait",
)


@click.command("task")
@click.argument("task_id")
@common_options
def task_cmd(out: Output, task_id: str) -> None:
    """Show a processing task: status, progress and per-file errors.

    \b
    Example:
      ds task 3f2a9c1e0b7d4e6f8a1b2c3d4e5f6a7b --json
    """
    from datastore import TaskRunner

    if not task_id.isalnum():
        raise InvalidRequest(f"invalid task id {task_id!r}")
    _emit_task(out, TaskRunner(out.store).get(task_id))


COMMANDS = [watch_cmd, rules_cmd, process_cmd, validate_cmd, task_cmd]
