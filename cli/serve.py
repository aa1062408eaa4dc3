"""The daemon: ds serve runs the REST API, and the mount and the inbox when asked."""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

import click

from datastore import InvalidRequest, names

from .common import Output, common_options
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

    access = store.access()
    created = None if no_auth else access.ensure_admin_token()
    import logging

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
    from .daemon import run

    run(store, settings, host, port, mount_dir, inbox, token_note)


def _positive(seconds: float, option: str) -> float:
    if seconds <= 0:
        raise InvalidRequest(f"{option} must be longer than 0")
    return seconds


COMMANDS = [serve_cmd]
