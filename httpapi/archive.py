"""``GET /v1/datasets/{name}/archive``: a version as tar, tar.gz or zip, streamed.

Nothing is built on disk: tarfile (stream mode) and zipfile (which writes data
descriptors to an unseekable stream) run in a worker thread and write into a small
buffer that is handed to the HTTP response on the event loop as it fills. Paths are
relative to the dataset root, with no wrapping folder.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
import time
import zipfile
from typing import Any

from aiohttp import web

from datastore import Entry, FileNotFound, Store, names, open_file

from . import routes as r
from .state import blocking, choice, store

FORMATS = {
    "tar": ("application/x-tar", "tar"),
    "tar.gz": ("application/gzip", "tar.gz"),
    "zip": ("application/zip", "zip"),
}
FLUSH_AT = 256 * 1024
CHUNK = 1 << 20
STORED_CATEGORIES = {"image", "audio", "archive"}
log = logging.getLogger("ds.api")


class _ResponseSink(io.RawIOBase):
    """A write-only, unseekable file whose bytes go to an aiohttp response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resp: web.StreamResponse) -> None:
        super().__init__()
        self.loop = loop
        self.resp = resp
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.buf += b
        if len(self.buf) >= FLUSH_AT:
            self._send()
        return len(b)

    def flush(self) -> None:
        if self.buf:
            self._send()

    def _send(self) -> None:
        data = bytes(self.buf)
        self.buf.clear()
        asyncio.run_coroutine_threadsafe(self.resp.write(data), self.loop).result()


def _select(st: Store, spec: str, prefix: str) -> tuple[str, list[Entry]]:
    version = st.resolve(spec)
    entries = st.entries(spec)
    if prefix:
        entries = [e for e in entries if e.path == prefix or e.path.startswith(prefix + "/")]
        if not entries:
            raise FileNotFound(f"{prefix!r} not found in {spec}")
    label = f"{version.name}-{(version.snapshot or 'head')[:12]}"
    return label, entries


def _write_tar(st: Store, entries: list[Entry], sink: _ResponseSink, gz: bool) -> None:
    with tarfile.open(fileobj=sink, mode="w|gz" if gz else "w|", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mtime = e.mtime_ns // 1_000_000_000
            info.mode = e.mode
            if e.is_dir or e.is_link:
                info.type = tarfile.DIRTYPE if e.is_dir else tarfile.SYMTYPE
                info.linkname = e.target or ""
                tar.addfile(info)
                continue
            info.size = e.size
            with open_file(st.open_object(e.file_object())) as f:
                tar.addfile(info, f)
    sink.flush()


def _write_zip(st: Store, entries: list[Entry], sink: _ResponseSink) -> None:
    with zipfile.ZipFile(sink, "w", allowZip64=True) as zf:
        for e in entries:
            stamp = time.gmtime(max(e.mtime_ns // 1_000_000_000, 315532800))[:6]
            if e.is_dir:
                info = zipfile.ZipInfo(e.path + "/", date_time=stamp)
                info.external_attr = (0o40000 | e.mode) << 16
                zf.writestr(info, b"")
                continue
            if e.target is not None:  # Info-ZIP's way: the mode says link, the data the target
                info = zipfile.ZipInfo(e.path, date_time=stamp)
                info.external_attr = (0o120000 | 0o777) << 16
                zf.writestr(info, e.target.encode())
                continue
            info = zipfile.ZipInfo(e.path, date_time=stamp)
            info.external_attr = (0o100000 | e.mode) << 16
            stored = e.info.get("category") in STORED_CATEGORIES
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.file_size = e.size
            with (
                open_file(st.open_object(e.file_object())) as src,
                zf.open(info, "w", force_zip64=True) as dst,
            ):
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
    sink.flush()


async def archive(request: web.Request) -> web.StreamResponse:
    fmt = choice(request, "format", tuple(FORMATS), "tar")
    prefix = names.dir_path(request.query.get("prefix", ""))
    st = store(request)
    label, entries = await blocking(request, _select, st, request.match_info["name"], prefix)
    content_type, ext = FORMATS[fmt]
    resp = web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{label}.{ext}"',
        }
    )
    await resp.prepare(request)
    sink = _ResponseSink(asyncio.get_running_loop(), resp)
    try:
        if fmt == "zip":
            await blocking(request, _write_zip, st, entries, sink)
        else:
            await blocking(request, _write_tar, st, entries, sink, fmt == "tar.gz")
    except ConnectionResetError:
        raise
    except Exception:
        # Headers are gone: the only honest signal left is an incomplete body.
        log.exception("archive of %s failed mid-stream", label)
        request.transport.close() if request.transport else None
        return resp
    await resp.write_eof()
    return resp


ROUTES = [
    r.Route(
        "GET",
        "/v1/datasets/{name}/archive",
        archive,
        "A version (or a directory of it) as a streamed tar, tar.gz or zip",
        "read",
        "files",
        params=(
            r.NAME,
            r.Param("format", "query", {"type": "string", "enum": list(FORMATS)}),
            r.Param("prefix", "query", {"type": "string"}, "Only this directory"),
        ),
        responses={
            200: (
                "The archive",
                {t: {"type": "string", "format": "binary"} for t, _ in FORMATS.values()},
            )
        },
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)
