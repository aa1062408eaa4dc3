"""Daemon and access commands: serve, token create|list|revoke, grant, revoke."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from datastore import Access, DatastoreError, InvalidRequest, names, shapes

from .common import Output, common_options, table
from .ingest import inbox_options

DEFAULT_MAX_UPLOAD = 5 * 1024**3
# The event loop thread hands work to the pool and back on every request; with the
# default 5 ms GIL switch interval each handoff can wait behind a busy worker.
SWITCH_INTERVAL = 0.0005


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free).")
@click.option("--mount", "mount_dir", type=click.Path(file_okay=False), help="Also mount here.")
@click.option("--inbox", "inbox_dir", type=click.Path(file_okay=False), help="Also watch here.")
@inbox_options
@click.option("--no-auth", is_flag=True, help="Anonymous admin access (loopback hosts only).")
@click.option(
    "--max-upload-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_UPLOAD,
    show_default=True,
    help="Largest upload accepted; enforced while streaming (413 file_too_large).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="Threads for disk and catalog work.",
)
@click.option(
    "--idle-timeout",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="Close a connection that has not sent a whole request header this long after "
    "connecting or after its last response (slow clients, idle keep-alive).",
)
@click.option(
    "--body-timeout",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="Answer 408 and close when a request body stalls this long.",
)
@common_options
def serve_cmd(
    out: Output,
    host: str,
    port: int,
    mount_dir: str | None,
    inbox_dir: str | None,
    no_auth: bool,
    max_upload_bytes: int,
    workers: int,
    idle_timeout: str,
    body_timeout: str,
    inbox_config: Any,
) -> None:
    """Run the REST API (and optionally the mount and the inbox watcher) in one daemon.

    The inbox takes the flags of ``ds watch`` (or their DS_INBOX_* variables).

    On the first start in a store it creates an admin token in STORE/admin.token
    (mode 0600). SIGTERM or SIGINT shuts everything down cleanly.

    \b
    Example:
      ds serve --port 8080 --mount /mnt/data --inbox /srv/inbox --create-datasets
      curl -H "Authorization: Bearer $(cat ~/.local/share/ds/admin.token)" \\
           http://127.0.0.1:8080/v1/datasets
    """
    if no_auth and not is_loopback(host):
        raise InvalidRequest(f"--no-auth is refused on {host}: it is not a loopback address")
    from httpapi import Settings

    store = out.store
    access = Access(store)
    created = None if no_auth else access.ensure_admin_token()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    settings = Settings(
        auth=not no_auth,
        max_upload_bytes=max_upload_bytes,
        workers=workers,
        idle_timeout=_positive(names.duration(idle_timeout), "--idle-timeout"),
        body_timeout=_positive(names.duration(body_timeout), "--body-timeout"),
    )
    token_note = (
        "no token needed (--no-auth)"
        if no_auth
        else f"admin token {'created ' if created else ''}in {access.admin_token_path()}"
        + ("" if created or access.admin_token_path().exists() else " (not present: use ds token)")
    )
    sys.setswitchinterval(SWITCH_INTERVAL)
    inbox = (inbox_dir, inbox_config) if inbox_dir else None
    asyncio.run(_serve(store, settings, host, port, mount_dir, inbox, token_note))


def _positive(seconds: float, option: str) -> float:
    if seconds <= 0:
        raise InvalidRequest(f"{option} must be longer than 0")
    return seconds


async def _serve(
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
            handles.append(("mount", await _start("--mount", _start_mount, store, mount_dir)))
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

    return mount.start(store.root, Path(mount_dir))


def _start_inbox(store: Any, inbox_dir: str, config: Any) -> Any:
    from datastore import Inbox

    return Inbox(store, Path(inbox_dir), config).start()


@click.group("token")
def token_group() -> None:
    """Create, list and revoke API tokens.

    \b
    Example:
      ds token create alice && ds token list && ds token revoke 3f2a9c0d1e4b5a69
    """


@token_group.command("create")
@click.argument("user")
@click.option("--admin", is_flag=True, help="A token that may do everything.")
@common_options
def token_create_cmd(out: Output, user: str, admin: bool) -> None:
    """Create a token for USER; its secret is printed once and stored only hashed.

    \b
    Example:
      ds token create alice --json
    """
    token = Access(out.store).create_token(user, admin)
    out.emit(
        shapes.token(token),
        f"{token.secret}\n(token {token.id} for {user}{', admin' if admin else ''};"
        " the secret is shown only now)",
    )


@token_group.command("list")
@common_options
def token_list_cmd(out: Output) -> None:
    """List tokens (never their secrets).

    \b
    Example:
      ds token list
    """
    docs = [shapes.token(t) for t in Access(out.store).tokens()]
    out.emit(
        shapes.page(docs, len(docs) or 1, 0),
        lambda: table(
            [["ID", "USER", "ADMIN", "CREATED"]]
            + [[d["id"], d["user"], "yes" if d["admin"] else "", d["created_at"]] for d in docs]
        ),
    )


@token_group.command("revoke")
@click.argument("token_id")
@common_options
def token_revoke_cmd(out: Output, token_id: str) -> None:
    """Revoke a token by its id.

    \b
    Example:
      ds token revoke 3f2a9c0d1e4b5a69
    """
    if not Access(out.store).revoke_token(token_id):
        raise InvalidRequest(f"no token {token_id!r}")
    out.emit({"id": token_id, "revoked": True}, f"revoked token {token_id}")


@click.command("grant")
@click.argument("name")
@click.argument("user")
@click.argument("permission", type=click.Choice(["read", "write", "admin"]))
@common_options
def grant_cmd(out: Output, name: str, user: str, permission: str) -> None:
    """Give USER read, write or admin on dataset NAME (replacing any grant it had).

    \b
    Example:
      ds grant sales alice read
    """
    created = Access(out.store).grant(name, user, permission)
    out.emit(
        {**shapes.grant(user, permission), "created": created},
        f"{user} may now {permission} {name}",
    )


@click.command("revoke")
@click.argument("name")
@click.argument("user")
@common_options
def revoke_cmd(out: Output, name: str, user: str) -> None:
    """Remove USER's grant on dataset NAME.

    \b
    Example:
      ds revoke sales alice
    """
    removed = Access(out.store).revoke(name, user)
    out.emit(
        {"principal": user, "dataset": name, "revoked": removed},
        f"revoked {user} on {name}" if removed else f"{user} had no grant on {name}",
    )


COMMANDS = [serve_cmd, token_group, grant_cmd, revoke_cmd]
