"""File routes: list, upload (multipart and raw PUT), download, delete, head status.

Uploads never sit whole in memory: a raw ``PUT`` is fed chunk by chunk to
``Store.put_stream`` running in the thread pool (a thread-safe bridge pulls each block
from the event loop on demand, so a slow disk slows the client, not the daemon); each
multipart ``file`` part is spooled to a temp file on the store's filesystem and adopted
as an object once the whole request is read and every destination is known to be valid.
Downloads are served from the immutable object file with sendfile.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from datastore import (
    FileTooLarge,
    InvalidPath,
    InvalidRequest,
    ObjectReader,
    PreconditionFailed,
    Run,
    Store,
    TempFile,
    iter_chunks,
    join_path,
    names,
    shapes,
)

from . import routes as r
from .state import (
    ACCESS,
    BYTES_IN,
    SETTINGS,
    TASK_LOOKUP,
    blocking,
    flag,
    from_client,
    paging,
    parse_json,
    store,
    streaming,
)

BLOCK = 1 << 20
MAX_FIELD_BYTES = 64 * 1024
MULTIPART_FIELDS = ("path", "description", "metadata")
# What aiohttp's multipart reader raises on a broken body: bad part headers, unknown
# charsets, undecodable fields, truncation.
MALFORMED_PART = (ValueError, AssertionError, LookupError, HttpProcessingError)
_QUOTED_FILENAME = re.compile(r';\s*filename\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)


# listing ---------------------------------------------------------------------------


async def list_files(request: web.Request) -> web.Response:
    limit, offset = paging(request)
    prefix = request.query.get("prefix", "")
    recursive = flag(request, "recursive")
    category = request.query.get("category") or None
    spec = request.match_info["name"]

    def work() -> dict[str, Any]:
        entries = store(request).ls(spec, prefix, recursive)
        return shapes.listing(entries, recursive, limit, offset, category)

    return web.json_response(await blocking(request, work))


# uploads ---------------------------------------------------------------------------


def _bridge(
    loop: asyncio.AbstractEventLoop, read_block: Callable[[], Coroutine[Any, Any, bytes]]
) -> Iterator[bytes]:
    """Chunks for a worker thread, read on the event loop one block ahead.

    While the thread hashes and writes block N the loop already receives block N+1, so
    the network and the disk overlap; at most two blocks are held, and the reads stay
    strictly one after the other.
    """
    pending = asyncio.run_coroutine_threadsafe(read_block(), loop)
    try:
        while True:
            block = pending.result()
            if not block:
                return
            pending = asyncio.run_coroutine_threadsafe(read_block(), loop)
            yield block
    finally:
        pending.cancel()  # the consumer stopped early (a refusal): drop the read ahead


class _Counter:
    """Counts bytes read from the client and enforces the upload limit while streaming.

    The limit is per file: a multipart upload starts each file part with :meth:`file`,
    and a part over the limit is refused by name."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.total = 0
        self.part = 0
        self.name: str | None = None

    def file(self, name: str | None) -> None:
        self.part, self.name = 0, name

    def add(self, n: int) -> None:
        self.total += n
        self.part += n
        self.request[BYTES_IN] = self.total
        if self.part > self.limit:
            what = f"file {self.name!r}" if self.name else "upload"
            raise FileTooLarge(f"{what} exceeds the limit of {self.limit} bytes")


def _check_declared_length(request: web.Request, limit: int) -> None:
    length = request.content_length
    if length is not None and length > limit:
        raise FileTooLarge(f"upload of {length} bytes exceeds the limit of {limit} bytes")


async def put_file(request: web.Request) -> web.Response:
    spec = request.match_info["name"]
    path = names.file_path(request.match_info["path"])
    limit = request.app[SETTINGS].max_upload_bytes
    _check_declared_length(request, limit)
    counter = _Counter(request, limit)
    content = request.content

    async def read_block() -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < BLOCK:
            chunk = await from_client(request, content.readany())
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        counter.add(size)
        return b"".join(parts)

    loop = asyncio.get_running_loop()
    entry, created = await streaming(
        request,
        store(request).put_stream,
        spec,
        path,
        _bridge(loop, read_block),
        if_absent=request.headers.get(hdrs.IF_NONE_MATCH, "").strip() == "*",
        max_bytes=limit,
    )
    return web.json_response(shapes.entry(entry), status=201 if created else 200)


async def upload_files(request: web.Request) -> web.Response:
    spec = request.match_info["name"]
    names.split_ref(spec)
    limit = request.app[SETTINGS].max_upload_bytes  # per file, counted while spooling
    st = store(request)
    counter = _Counter(request, limit)
    fields: dict[str, str] = {}
    spooled: list[tuple[str | None, TempFile]] = []
    try:
        try:
            reader = await from_client(request, request.multipart())
        except (AssertionError, ValueError, KeyError) as exc:
            raise InvalidRequest(f"expected a multipart/form-data body: {exc}") from exc
        try:
            await _read_parts(request, st, reader, counter, fields, spooled)
        except MALFORMED_PART as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}") from exc
        if not spooled:
            raise InvalidRequest("no 'file' part in the upload")
        plan = _plan(fields, spooled)
        entries = await blocking(request, _commit, st, spec, plan, fields)
    finally:
        for _, tmp in spooled:  # adopted parts are gone by now; the rest are dropped
            tmp.discard()
    return web.json_response({"files": [shapes.entry(e) for e in entries]}, status=201)


async def _read_parts(
    request: web.Request,
    st: Store,
    reader: MultipartReader,
    counter: _Counter,
    fields: dict[str, str],
    spooled: list[tuple[str | None, TempFile]],
) -> None:
    while True:
        part = await from_client(request, reader.next())
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            raise InvalidRequest("nested multipart bodies are not accepted")
        if part.name == "file":
            tmp = await blocking(request, st.open_temp)
            spooled.append((_filename(part), tmp))
            counter.file(spooled[-1][0])
            await _spool(request, part, tmp, counter)
        elif part.name in MULTIPART_FIELDS:
            fields[part.name] = await _read_field(request, part)
        else:
            await from_client(
                request, part.release()
            )  # fields other platforms send (purpose, project_id...)


def _filename(part: BodyPartReader) -> str | None:
    """The part's filename as the client sent it.

    aiohttp strips leading slashes from a quoted filename (``/etc/passwd`` becomes
    ``etc/passwd``); SPEC 11 wants an unsafe name refused, never rewritten, so the quoted
    form is read from the header here. RFC 5987 ``filename*`` is decoded by aiohttp as is.
    """
    header = part.headers.get(hdrs.CONTENT_DISPOSITION, "")
    if "filename*" in header.lower():
        return part.filename
    match = _QUOTED_FILENAME.search(header)
    if match is None:
        return part.filename
    return re.sub(r"\\(.)", r"\1", match.group(1))


async def _read_field(request: web.Request, part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await from_client(request, part.read_chunk(8192)):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"form field {part.name!r} is longer than {MAX_FIELD_BYTES}")
    return data.decode(part.get_charset(default="utf-8"))


async def _spool(
    request: web.Request, part: BodyPartReader, tmp: TempFile, counter: _Counter
) -> None:
    """Copy one part to ``tmp`` (kept open, so gc leaves it alone until it is adopted);
    block N is written in the pool while N+1 is received."""
    fd = tmp.fd
    assert fd is not None
    writing: asyncio.Future[None] | None = None
    try:
        while True:
            block = await _read_part_block(request, part)
            if writing is not None:
                await writing
                writing = None
            if not block:
                return
            counter.add(len(block))
            writing = asyncio.ensure_future(blocking(request, _write_all, fd, block))
    finally:
        if writing is not None:
            await asyncio.gather(writing, return_exceptions=True)  # never close under a write


async def _read_part_block(request: web.Request, part: BodyPartReader) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < BLOCK:
        chunk = await from_client(request, part.read_chunk(BLOCK))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _plan(
    fields: dict[str, str], spooled: list[tuple[str | None, TempFile]]
) -> list[tuple[str, Path]]:
    """Destination of each part (SPEC 11); every path is checked before anything is stored."""
    target = fields.get("path")
    plan: list[tuple[str, Path]] = []
    for filename, tmp in spooled:
        if target and len(spooled) == 1:
            dest = target
        else:
            if not filename:
                raise InvalidPath("a 'file' part has no filename; give one or a 'path' field")
            name = names.file_path(filename)  # refused when unsafe, never rewritten
            dest = join_path(_directory(target), name) if target else name
        plan.append((names.file_path(dest), tmp.path))
    dests = [d for d, _ in plan]
    if len(set(dests)) != len(dests):
        raise InvalidRequest("two parts go to the same path")
    return plan


def _directory(target: str) -> str:
    """A ``path`` field naming a directory: a trailing slash is fine, a leading one is not."""
    return names.file_path(target[:-1] if target.endswith("/") else target)


def _commit(
    st: Store, spec: str, plan: list[tuple[str, Path]], fields: dict[str, str]
) -> list[Any]:
    metadata = None
    if "metadata" in fields and fields["metadata"].strip():
        metadata = parse_json(fields["metadata"], "metadata")
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata must be a JSON object")
    st.resolve(spec)
    return st.adopt_files(spec, plan, description=fields.get("description"), metadata=metadata)


# downloads -------------------------------------------------------------------------


class ObjectResponse(web.StreamResponse):
    """One object's bytes, whole or one range (RFC 9110 14), its ETag the object id
    (content addressing makes it exact). Sent by sendfile where the object lies raw in a
    file (a loose object, a raw blob in a pack), else decoded piece by piece off the
    event loop; never read whole into memory."""

    def __init__(self, reader: ObjectReader, oid: str, content_type: str, rng: str | None) -> None:
        super().__init__()
        self.reader = reader
        self.file_bytes = 0  # what went around aiohttp's writer, for the access log
        self.content_type = content_type
        self.etag = oid
        self.headers[hdrs.ACCEPT_RANGES] = "bytes"
        self.start, self.end = 0, reader.size
        if rng is not None:
            self.start, self.end = _byte_range(rng, reader.size, oid)
            self.set_status(206)
            self.headers[hdrs.CONTENT_RANGE] = f"bytes {self.start}-{self.end - 1}/{reader.size}"
        self.content_length = self.end - self.start

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return None
        try:
            writer = await super().prepare(request)
            if request.method != hdrs.METH_HEAD and self.end > self.start:
                await self._send(request, self.start, self.end)
            return writer
        finally:
            self.reader.close()

    async def _send(self, request: web.BaseRequest, start: int, end: int) -> None:
        """Raw runs of the object go out with sendfile, the rest read in pieces."""
        loop = asyncio.get_running_loop()
        zero_copy = request.transport is not None and not self.compression
        pos = start
        for run in self.reader.runs(start, end):
            if run.fd is not None and zero_copy:
                zero_copy = await self._sendfile(request, run)  # False: plain from here on
                if zero_copy:
                    pos += run.length
                    continue
            pieces = iter_chunks(self.reader, pos, pos + run.length)
            while piece := await loop.run_in_executor(None, next, pieces, b""):
                await self.write(piece)
            pos += run.length
        await super().write_eof()

    async def _sendfile(self, request: web.BaseRequest, run: Run) -> bool:
        assert request.transport is not None and run.fd is not None
        with open(run.fd, "rb", closefd=False) as fobj:
            try:
                await asyncio.get_running_loop().sendfile(
                    request.transport, fobj, run.at, run.length
                )
            except NotImplementedError:
                return False
        self.file_bytes += run.length
        return True


def _byte_range(rng: str, size: int, oid: str) -> tuple[int, int]:
    """[start, end) of one ``bytes=`` range (already checked to be one); 416 when no
    byte of the object is in it."""
    first, _, last = rng.replace(" ", "").removeprefix("bytes=").partition("-")
    if first:
        start, end = int(first), (min(int(last) + 1, size) if last else size)
    else:
        start, end = size - min(int(last), size) if int(last) else size, size
    if start >= size or start >= end:
        raise web.HTTPRequestRangeNotSatisfiable(
            headers={hdrs.CONTENT_RANGE: f"bytes */{size}", hdrs.ETAG: f'"{oid}"'}
        )
    return start, end


_SINGLE_RANGE = re.compile(r"bytes=(\d+-\d*|-\d+)")
_CONDITIONAL = (
    hdrs.IF_MATCH,
    hdrs.IF_NONE_MATCH,
    hdrs.IF_MODIFIED_SINCE,
    hdrs.IF_UNMODIFIED_SINCE,
    hdrs.IF_RANGE,
)


def _etag_list(header: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()]


async def get_file(request: web.Request) -> web.StreamResponse:
    spec = request.match_info["name"]
    path = request.match_info["path"]
    st = store(request)
    if flag(request, "metadata"):
        checksum = request.query.get("checksum") or None
        if checksum not in (None, "sha256"):
            raise InvalidRequest(f"checksum must be sha256, not {checksum!r}")
        access = request.app[ACCESS]

        def describe() -> dict[str, Any]:
            entry = st.stat(spec, path)
            doc = shapes.entry(entry)
            if checksum and entry.object is not None:
                doc["sha256"] = access.sha256(entry.object)
            return doc

        return web.json_response(await blocking(request, describe))
    entry = await blocking(request, st.stat, spec, path)
    if entry.is_dir:
        raise InvalidPath(f"{path!r} is a directory; list it with /files?prefix=")
    oid = entry.file_object()
    etag = f'"{oid}"'
    if_none = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none is not None and (if_none.strip() == "*" or oid in _etag_list(if_none)):
        return web.Response(status=304, headers={hdrs.ETAG: etag})
    if_match = request.headers.get(hdrs.IF_MATCH)
    if if_match is not None and if_match.strip() != "*" and oid not in _etag_list(if_match):
        raise PreconditionFailed(f"{path!r} is {etag}, not {if_match.strip()}")
    headers = CIMultiDict(request.headers)
    for name in _CONDITIONAL:
        headers.popall(name, None)
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range is not None and oid not in _etag_list(if_range):
        headers.popall(hdrs.RANGE, None)  # a stale If-Range gets the whole file
    if not _SINGLE_RANGE.fullmatch(headers.get(hdrs.RANGE, "bytes=0-").replace(" ", "")):
        # RFC 9110 14.2: a server may ignore Range; a malformed one must be, and several
        # ranges get the whole file (200) rather than multipart/byteranges
        headers.popall(hdrs.RANGE, None)
    content_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
    reader = await blocking(request, st.open_object, oid)
    try:
        return ObjectResponse(reader, oid, content_type, headers.get(hdrs.RANGE))
    except BaseException:
        reader.close()
        raise


async def delete_file(request: web.Request) -> web.Response:
    removed = await blocking(
        request, store(request).rm, request.match_info["name"], [request.match_info["path"]]
    )
    return web.json_response({"removed": removed})


async def head_status(request: web.Request) -> web.Response:
    name = names.split_ref(request.match_info["name"])[0]
    lookup = request.app[TASK_LOOKUP]

    def work() -> dict[str, Any]:
        doc = store(request).status(name)
        doc["task"] = lookup(name)
        return doc

    return web.json_response(await blocking(request, work))


ENTRY = r.ref("Entry")
FILE_PATH = "/v1/datasets/{name}/files/{path:.+}"

ROUTES = [
    r.Route(
        "GET",
        "/v1/datasets/{name}/files",
        list_files,
        "List entries below a directory of a version",
        "read",
        "files",
        params=(
            r.NAME,
            r.Param("prefix", "query", {"type": "string"}, "Directory to list (default root)"),
            r.Param("recursive", "query", {"type": "boolean"}, "Every file below prefix"),
            r.Param("category", "query", {"type": "string"}, "Only files of this category"),
            *r.PAGING,
        ),
        responses={200: r.ok("A page of entries", r.page_of("Entry"))},
    ),
    r.Route(
        "POST",
        "/v1/datasets/{name}/files",
        upload_files,
        "Upload one or more files to the head (multipart/form-data)",
        "write",
        "files",
        params=(r.NAME,),
        body={"multipart/form-data": r.ref("MultipartUpload")},
        responses={201: r.ok("Stored", r.ref("UploadResult"))},
    ),
    r.Route(
        "PUT",
        FILE_PATH,
        put_file,
        "Stream one file to the head (raw body); If-None-Match: * refuses to replace",
        "write",
        "files",
        params=(
            r.NAME,
            r.PATH,
            r.Param("If-None-Match", "header", {"type": "string"}, "`*`: only create"),
        ),
        body={"application/octet-stream": {"type": "string", "format": "binary"}},
        responses={201: r.ok("Created", ENTRY), 200: r.ok("Replaced", ENTRY)},
    ),
    r.Route(
        "GET",
        FILE_PATH,
        get_file,
        "Download a file (Range gives 206), or its entry with ?metadata=true",
        "read",
        "files",
        params=(
            r.NAME,
            r.PATH,
            r.Param("metadata", "query", {"type": "boolean"}, "Answer the entry as JSON"),
            r.Param("checksum", "query", {"type": "string", "enum": ["sha256"]}, "Add a checksum"),
        ),
        responses={
            200: (
                "The file's bytes (typed from its name), or its entry with ?metadata=true",
                {
                    "application/json": r.ref("EntryWithChecksum"),
                    "*/*": {"type": "string", "format": "binary"},
                },
            ),
            206: ("Part of the file", {"*/*": {"type": "string", "format": "binary"}}),
            304: r.empty("Not modified (If-None-Match)"),
            412: r.ok("If-Match did not match", r.ref("Error")),
            416: r.ok("Range not satisfiable", r.ref("Error")),
        },
    ),
    r.Route(
        "HEAD",
        FILE_PATH,
        get_file,
        "Size and ETag of a file",
        "read",
        "files",
        params=(r.NAME, r.PATH),
        responses={200: r.empty("Headers only"), 304: r.empty("Not modified")},
    ),
    r.Route(
        "DELETE",
        FILE_PATH,
        delete_file,
        "Remove a file or directory from the head",
        "write",
        "files",
        params=(r.NAME, r.PATH),
        responses={200: r.ok("Removed", r.ref("Removed"))},
    ),
    r.Route(
        "GET",
        "/v1/datasets/{name}/status",
        head_status,
        "Staged changes of the head and the latest processing task",
        "read",
        "files",
        params=(r.NAME,),
        responses={200: r.ok("Status", r.ref("Status"))},
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)
