"""``ds mount``: the store as a FUSE filesystem (libfuse 3 through mfusepy).

The filesystem runs in its own process (``python -m mount STORE MOUNTPOINT``): libfuse
takes over that process's signal handlers and threads, and a mount that dies (even by
SIGKILL) must not take the caller down with it. :func:`start` spawns it and returns once
the kernel shows the mount; :meth:`MountHandle.stop` unmounts and joins it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ds.mount")

FSNAME = "ds"
READY_TIMEOUT = 30.0
READ_AHEAD_KB = 1024


class MountError(RuntimeError):
    """The mount could not be set up (no FUSE, busy mountpoint, early exit)."""


@dataclass
class MountHandle:
    """A running mount process; ``stop()`` unmounts it and waits for the process."""

    mountpoint: Path
    process: subprocess.Popen[bytes] | None
    metrics_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def metrics(self) -> str:
        """The mount's per-operation latency in the Prometheus text format, as the mount
        process last wrote it (every few seconds); empty before the first write."""
        if self.metrics_path is None:
            return ""
        try:
            return self.metrics_path.read_text()
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        try:
            self._stop(timeout)
        finally:
            if self.metrics_path is not None:
                self.metrics_path.unlink(missing_ok=True)

    def _stop(self, timeout: float) -> None:
        unmount(self.mountpoint)
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            unmount(self.mountpoint, lazy=True)


def start(
    store_root: Path,
    mountpoint: Path,
    *,
    allow_other: bool = False,
    read_only: bool = False,
    log_path: Path | None = None,
    metrics: bool = False,
) -> MountHandle:
    """Mount ``store_root`` at ``mountpoint`` in a child process; return once it is live.
    With ``metrics``, the process keeps its per-operation latency where
    :meth:`MountHandle.metrics` reads it."""
    mountpoint = Path(mountpoint).absolute()
    prepare_mountpoint(mountpoint)
    cmd = [sys.executable, "-m", "mount", str(Path(store_root).absolute()), str(mountpoint)]
    if allow_other:
        cmd.append("--allow-other")
    if read_only:
        cmd.append("--read-only")
    logs = Path(store_root).absolute() / "logs"
    if log_path is None:  # with the store, not a new file in /tmp for every mount
        log_path = logs / "mount.log"
        logs.mkdir(exist_ok=True)
    metrics_path = None
    if metrics:
        logs.mkdir(exist_ok=True)
        metrics_path = logs / f"mount-metrics.{os.getpid()}.{secrets.token_hex(4)}.prom"
        cmd += ["--metrics", str(metrics_path)]
    with open(log_path, "ab") as errlog:
        since = errlog.tell()  # this start's lines only, in a log kept across mounts
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
            start_new_session=True,
            cwd="/",
            env={**os.environ, "PYTHONPATH": _source_root()},
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while not is_mounted(mountpoint):
        if proc.poll() is not None:
            raise MountError(f"mount process exited: {_tail(log_path, since)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise MountError(
                f"mount did not come up in {READY_TIMEOUT:.0f}s: {_tail(log_path, since)}"
            )
        time.sleep(0.02)
    raise_read_ahead(mountpoint)
    return MountHandle(mountpoint, proc, metrics_path)


def _source_root() -> str:
    here = str(Path(__file__).resolve().parent.parent)
    current = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{current}" if current else here


def _tail(path: Path, since: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return text[-2000:].strip() or "(no output)"


def serve(
    store_root: Path,
    mountpoint: Path,
    *,
    allow_other: bool = False,
    read_only: bool = False,
    metrics_path: Path | None = None,
) -> None:
    """Run the filesystem in this process until it is unmounted (blocks)."""
    from datastore import Store

    from .fuse_ops import IO_SIZE, DsFUSE, DsOperations
    from .overlay import Overlay

    store = Store.open(store_root)
    ops = DsOperations(Overlay(store, read_only=read_only), metrics_path)
    options: dict[str, object] = {
        "fsname": FSNAME,
        "subtype": FSNAME,
        "max_read": IO_SIZE,
        "foreground": True,
        "nothreads": False,
        # the kernel checks mode bits and owners before any request reaches us, as on
        # a local filesystem (with --allow-other, other users are held to them)
        "default_permissions": True,
    }
    if allow_other:
        options["allow_other"] = True
    if read_only:
        options["ro"] = True
    DsFUSE(ops, str(mountpoint), raw_fi=True, **options)


def mounts() -> dict[str, str]:
    """Mountpoint -> filesystem type, from /proc/self/mountinfo."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and right:
            point = fields[4].encode().decode("unicode_escape")
            out[point] = right.split()[0]
    return out


def is_mounted(mountpoint: Path) -> bool:
    return mounts().get(str(Path(mountpoint).absolute()), "").startswith("fuse")


def is_stale(mountpoint: Path) -> bool:
    """A mount whose process died: the kernel answers ENOTCONN (statfs is never cached)."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def prepare_mountpoint(mountpoint: Path) -> None:
    """Clean a stale mount left by a killed process; refuse a live one or a missing dir."""
    if is_stale(mountpoint):
        log.warning("%s: stale mount (transport endpoint not connected); cleaning it", mountpoint)
        unmount(mountpoint, lazy=True)
    if is_mounted(mountpoint):
        raise MountError(f"{mountpoint} is already mounted")
    if not mountpoint.is_dir():
        raise MountError(f"{mountpoint} is not a directory")
    if any(mountpoint.iterdir()):  # as fusermount refuses without 'nonempty'
        raise MountError(f"{mountpoint} is not empty: mounting would hide its files")
    if not os.path.exists("/dev/fuse") or fusermount() is None:
        raise MountError("FUSE is unavailable: /dev/fuse or fusermount3 is missing")


def fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


def unmount(mountpoint: Path, lazy: bool = False) -> bool:
    """``fusermount3 -u`` (``-uz`` when lazy); True when nothing is mounted there after."""
    tool = fusermount()
    if tool is None:
        return not is_mounted(mountpoint)
    flag = "-uz" if lazy else "-u"
    subprocess.run([tool, flag, str(mountpoint)], capture_output=True, check=False)
    return not is_mounted(mountpoint)


def raise_read_ahead(mountpoint: Path) -> None:
    """Kernel read-ahead on the mount to 1 MiB (needs root; else the 128 KiB default)."""
    try:
        dev = os.stat(mountpoint).st_dev
        bdi = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
        bdi.write_text(f"{READ_AHEAD_KB}\n")
    except OSError:
        log.debug("could not raise read-ahead on %s", mountpoint)
