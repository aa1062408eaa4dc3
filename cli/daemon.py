"""The daemon's event loop: the REST API, and the mount and the inbox when asked,
started in order and stopped in reverse on SIGTERM or SIGINT. Loaded only by
``ds serve``, so other commands do not pay for asyncio at start."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import click

from datastore import DatastoreError, InvalidRequest

from .ingest import watchdog_watcher


def run(*args: Any) -> None:
    """Run :func:`serve` until a signal stops it."""
    asyncio.run(serve(*args))


async def serve(
    store: Any,
    settings: Any,
    host: str,
    port: int,
    mount_dir: str | None,
    inbox: tuple[str, Any] | None,
    token_note: str,
) -> None:
    from httpapi import Server

    server = Server(store, settings, host, port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    handles: list[tuple[str, Any]] = []
    try:
        bound = await server.start()
        if mount_dir:
            mounted = await _start("--mount", _start_mount, store, mount_dir)
            handles.append(("mount", mounted))
            server.add_metrics(mounted.metrics)  # its per-operation latency
        if inbox:
            handles.append(("inbox", await _start("--inbox", _start_inbox, store, *inbox)))
        url_host = f"[{host}]" if ":" in host else host
        click.echo(f"ds serve: http://{url_host}:{bound}/v1 ({token_note})")
        if mount_dir:
            click.echo(f"ds serve: mounted at {mount_dir}")
        if inbox:
            click.echo(f"ds serve: watching inbox {inbox[0]}")
        sys.stdout.flush()
        await stopping.wait()
        click.echo("ds serve: shutting down", err=True)
    finally:
        await server.stop()  # in-flight requests finish before the mount goes
        for what, handle in reversed(handles):
            try:
                await asyncio.to_thread(handle.stop)
            except Exception as exc:  # keep stopping the rest
                click.echo(f"ds serve: stopping the {what} failed: {exc}", err=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


async def _start(option: str, starter: Any, store: Any, where: str, *more: Any) -> Any:
    """Start the mount or the inbox off the loop; a failure is a one-line error."""
    try:
        return await asyncio.to_thread(starter, store, where, *more)
    except DatastoreError as exc:
        raise type(exc)(f"{option} {where}: {exc.message}") from exc
    except Exception as exc:
        raise InvalidRequest(f"{option} {where}: {exc}") from exc


def _start_mount(store: Any, mount_dir: str) -> Any:
    import mount

    return mount.start(store.root, Path(mount_dir), metrics=True)


def _start_inbox(store: Any, inbox_dir: str, config: Any) -> Any:
    from datastore import Inbox

    return Inbox(store, Path(inbox_dir), config, watcher=watchdog_watcher).start()
