"""``ds mount`` and ``ds umount``: the store as a FUSE filesystem."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import click

from datastore import Conflict, InvalidRequest

from .common import Output, common_options


def _mount_module() -> ModuleType:
    """Imported late: the FUSE binding loads libfuse, which only these commands need."""
    import mount

    return mount


@click.command("mount")
@click.argument("mountpoint")
@click.option("--foreground", is_flag=True, help="Stay attached until unmounted.")
@click.option("--allow-other", is_flag=True, help="Let other users use the mount.")
@click.option("--read-only", is_flag=True, help="Refuse every change, heads included.")
@common_options
def mount_cmd(
    out: Output, mountpoint: str, foreground: bool, allow_other: bool, read_only: bool
) -> None:
    """Mount the store: MOUNTPOINT/NAME is the head, MOUNTPOINT/NAME@REF a snapshot.

    Returns once the mount is ready and keeps serving in the background; a stale
    mountpoint left by a killed mount is cleaned up first.

    \b
    Example:
      ds mount /mnt/data && cat /mnt/data/sales@v1.0/raw/2026-11.csv
    """
    mnt = _mount_module()
    point = Path(mountpoint).absolute()
    root = out.store.root.absolute()
    try:
        if foreground:
            mnt.prepare_mountpoint(point)
            doc = {"mountpoint": str(point), "store": str(root), "pid": os.getpid()}
            out.emit(doc, f"serving {root} at {point}; stop with ds umount {point}")
            mnt.serve(root, point, allow_other=allow_other, read_only=read_only)
            return
        handle = mnt.start(root, point, allow_other=allow_other, read_only=read_only)
    except mnt.MountError as exc:
        raise InvalidRequest(str(exc)) from exc
    doc = {"mountpoint": str(point), "store": str(root), "pid": handle.pid}
    out.emit(doc, f"mounted {root} at {point} (pid {handle.pid})")


@click.command("umount")
@click.argument("mountpoint")
@common_options
def umount_cmd(out: Output, mountpoint: str) -> None:
    """Unmount a ds mount (a stale one, left by a killed process, too).

    \b
    Example:
      ds umount /mnt/data
    """
    mnt = _mount_module()
    point = Path(mountpoint).absolute()
    stale = mnt.is_stale(point)
    if not stale and not mnt.is_mounted(point):
        raise InvalidRequest(f"{point} is not mounted")
    if not mnt.unmount(point, lazy=stale):
        raise Conflict(f"{point} is busy; close the files open in it and retry")
    out.emit({"mountpoint": str(point), "unmounted": True}, f"unmounted {point}")


COMMANDS = [mount_cmd, umount_cmd]
