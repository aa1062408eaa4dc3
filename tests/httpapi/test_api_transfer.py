"""Downloads (ETag, Range, conditionals, HEAD, checksums) and streamed archives."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from datastore.storage import chunker
from datastore.store import Store
from tests.conftest import gc_running, make_tree, wait_until
from tests.httpapi.api_support import Api, api_fixture, temp_leftovers  # noqa: F401

BLOB = os.urandom(300_000)
FILES = {
    "data/a.csv": b"id,v\n1,2\n",
    "data/deep/b.json": b'{"k": 1}\n',
    "img/p.png": b"\x89PNG\r\n\x1a\n" + os.urandom(5000),
    "blob.bin": BLOB,
    "empty.txt": b"",
}


@pytest.fixture
def loaded(api: Api) -> Api:
    assert api.post("/v1/datasets", json={"name": "d"}).status == 201
    for path, data in FILES.items():
        assert api.put(f"/v1/datasets/d/files/{path}", data=data).status == 201
    return api


def test_download_etag_and_conditionals(loaded: Api) -> None:
    r = loaded.get("/v1/datasets/d/files/blob.bin")
    assert r.status == 200 and r.body == BLOB
    etag = r.headers["ETag"]
    oid = loaded.get("/v1/datasets/d/files/blob.bin?metadata=true").json()["object"]
    assert etag == f'"{oid}"'
    assert r.headers["Content-Length"] == str(len(BLOB))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert "Last-Modified" not in r.headers
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        nm = loaded.get("/v1/datasets/d/files/blob.bin", headers={"If-None-Match": header})
        assert nm.status == 304 and nm.body == b"" and nm.headers["ETag"] == etag, header
    stale = loaded.get("/v1/datasets/d/files/blob.bin", headers={"If-None-Match": '"nope"'})
    assert stale.status == 200 and stale.body == BLOB
    ok = loaded.get("/v1/datasets/d/files/blob.bin", headers={"If-Match": etag})
    assert ok.status == 200
    bad = loaded.get("/v1/datasets/d/files/blob.bin", headers={"If-Match": '"nope"'})
    assert bad.status == 412
    csv = loaded.get("/v1/datasets/d/files/data/a.csv")
    assert csv.headers["Content-Type"].startswith("text/csv")


def test_range_requests(loaded: Api) -> None:
    url = "/v1/datasets/d/files/blob.bin"
    size = len(BLOB)
    cases = {
        "bytes=0-99": BLOB[:100],
        "bytes=1000-": BLOB[1000:],
        "bytes=-500": BLOB[-500:],
        f"bytes={size - 1}-{size + 100}": BLOB[-1:],
    }
    for header, want in cases.items():
        r = loaded.get(url, headers={"Range": header})
        assert r.status == 206, header
        assert r.body == want, header
        assert r.headers["Content-Range"].startswith("bytes ") and r.headers["ETag"]
        assert r.headers["Content-Length"] == str(len(want))
    r = loaded.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    etag = loaded.head(url).headers["ETag"]
    r = loaded.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206 and r.body == BLOB[:10]
    r = loaded.get(url, headers={"Range": "bytes=0-9", "If-Range": '"changed"'})
    assert r.status == 200 and r.body == BLOB
    # RFC 9110: several ranges may be answered whole; a malformed Range is ignored
    for header in ("bytes=0-0,5-9", "bytes=abc", "items=0-9", "bytes=9-1x", "bytes="):
        r = loaded.get(url, headers={"Range": header})
        assert (r.status, r.body) == (200, BLOB), header


def test_a_chunked_file_downloads_whole_and_by_range(api: Api, tmp_path: Path) -> None:
    """Raw chunks go out with sendfile straight from their packs, compressed ones are
    decoded in between; ranges start and end inside chunks of both kinds."""
    text = b"".join(b"%08d,repeated text that compresses well\n" % i for i in range(60_000))
    data = os.urandom(3 << 20) + text + os.urandom(2 << 20)
    api.store.create_dataset("c")
    api.store.put("c", [make_tree(tmp_path / "src", {"big.bin": data})])
    oid = api.store.stat("c", "big.bin").file_object()
    listed = api.store.catalog.chunk_list(oid)
    assert listed is not None
    codecs = {ref.codec for c, _ in chunker.decode(listed[1]) if (ref := api.store.catalog.blob(c))}
    assert codecs == {0, 1}  # raw and compressed chunks both
    url = "/v1/datasets/c/files/big.bin"
    whole = api.get(url)
    assert whole.status == 200 and whole.body == data
    rnd = random.Random(3)
    for _ in range(12):
        start = rnd.randrange(len(data))
        end = min(len(data) - 1, start + rnd.choice([1, 70_000, 1 << 20, 5 << 20]))
        r = api.get(url, headers={"Range": f"bytes={start}-{end}"})
        assert r.status == 206 and r.body == data[start : end + 1], (start, end)
    api.store.checkout("c", tmp_path / "co")
    assert (tmp_path / "co" / "big.bin").read_bytes() == data


def test_head_gives_size_and_etag_without_body(loaded: Api) -> None:
    r = loaded.head("/v1/datasets/d/files/blob.bin")
    assert r.status == 200 and r.body == b""
    assert r.headers["Content-Length"] == str(len(BLOB)) and r.headers["ETag"].startswith('"')
    assert loaded.head("/v1/datasets/d/files/empty.txt").headers["Content-Length"] == "0"
    assert loaded.get("/v1/datasets/d/files/empty.txt").body == b""
    assert loaded.head("/v1/datasets/d/files/missing").status == 404
    etag = r.headers["ETag"]
    cached = loaded.head("/v1/datasets/d/files/blob.bin", headers={"If-None-Match": etag})
    assert cached.status == 304


def test_metadata_and_sha256_checksum(loaded: Api) -> None:
    doc = loaded.get("/v1/datasets/d/files/blob.bin?metadata=true").json()
    assert doc["path"] == "blob.bin" and doc["size"] == len(BLOB) and "sha256" not in doc
    doc = loaded.get("/v1/datasets/d/files/blob.bin?metadata=true&checksum=sha256").json()
    assert doc["sha256"] == hashlib.sha256(BLOB).hexdigest()
    again = loaded.get("/v1/datasets/d/files/blob.bin?metadata=true&checksum=sha256").json()
    assert again == doc
    cached = loaded.store.catalog.cached_checksum(doc["object"], "sha256")
    assert cached == doc["sha256"]
    r = loaded.get("/v1/datasets/d/files/blob.bin?metadata=true&checksum=md5")
    assert (r.status, r.code) == (400, "invalid_request")
    r = loaded.get("/v1/datasets/d/files/nope?metadata=true")
    assert (r.status, r.code) == (404, "file_not_found")
    d = loaded.get("/v1/datasets/d/files/data?metadata=true").json()
    assert d["type"] == "dir"


def test_downloads_of_a_pinned_version_never_change(loaded: Api) -> None:
    loaded.post("/v1/datasets/d/snapshots", json={"tag": "v1"})
    old = loaded.get("/v1/datasets/d@v1/files/blob.bin")
    loaded.put("/v1/datasets/d/files/blob.bin", data=b"replaced")
    pinned = loaded.get("/v1/datasets/d@v1/files/blob.bin")
    assert pinned.body == BLOB and pinned.headers["ETag"] == old.headers["ETag"]
    assert loaded.get("/v1/datasets/d/files/blob.bin").body == b"replaced"


def _want(prefix: str = "") -> dict[str, bytes]:
    return {p: d for p, d in FILES.items() if not prefix or p.startswith(prefix + "/")}


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
def test_tar_archives(loaded: Api, fmt: str) -> None:
    r = loaded.get(f"/v1/datasets/d/archive?format={fmt}")
    assert r.status == 200
    assert r.headers["Content-Type"] == (
        "application/x-tar" if fmt == "tar" else "application/gzip"
    )
    assert f".{fmt}" in r.headers["Content-Disposition"]
    assert "Content-Length" not in r.headers  # streamed, never built first
    with tarfile.open(fileobj=io.BytesIO(r.body), mode="r:*") as tar:
        members = {m.name: m for m in tar.getmembers()}
        files = {n: tar.extractfile(m).read() for n, m in members.items() if m.isfile()}  # type: ignore[union-attr]
        dirs = {n for n, m in members.items() if m.isdir()}
    assert files == FILES
    assert {"data", "data/deep", "img"} <= dirs
    assert all(not n.startswith(("/", "d/", "..")) for n in members)


def test_zip_archive(loaded: Api) -> None:
    r = loaded.get("/v1/datasets/d/archive?format=zip")
    assert r.status == 200 and r.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.body)) as zf:
        assert zf.testzip() is None
        files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    assert files == FILES


def test_archive_of_a_prefix_and_of_a_version(loaded: Api) -> None:
    r = loaded.get("/v1/datasets/d/archive?format=tar&prefix=data")
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == set(_want("data"))
    loaded.post("/v1/datasets/d/snapshots", json={"tag": "v1"})
    loaded.put("/v1/datasets/d/files/later.txt", data=b"later")
    r = loaded.get("/v1/datasets/d@v1/archive?format=zip")
    with zipfile.ZipFile(io.BytesIO(r.body)) as zf:
        assert "later.txt" not in zf.namelist()


def test_archive_errors(loaded: Api) -> None:
    r = loaded.get("/v1/datasets/d/archive?format=rar")
    assert (r.status, r.code) == (400, "invalid_request")
    r = loaded.get("/v1/datasets/d/archive?prefix=nope")
    assert (r.status, r.code) == (404, "file_not_found")
    r = loaded.get("/v1/datasets/d/archive?prefix=../x")
    assert (r.status, r.code) == (400, "invalid_path")
    r = loaded.get("/v1/datasets/d@nope/archive")
    assert (r.status, r.code) == (404, "ref_not_found")


def test_empty_dataset_archives_are_valid(api: Api) -> None:
    api.post("/v1/datasets", json={"name": "e"})
    for fmt in ("tar", "tar.gz", "zip"):
        r = api.get(f"/v1/datasets/e/archive?format={fmt}")
        assert r.status == 200, fmt
        if fmt == "zip":
            assert zipfile.ZipFile(io.BytesIO(r.body)).namelist() == []
        else:
            with tarfile.open(fileobj=io.BytesIO(r.body), mode="r:*") as tar:
                assert tar.getmembers() == []


def test_uploads_stream_into_objects_and_leave_no_temp(loaded: Api) -> None:
    big = os.urandom(3 << 20)
    r = loaded.put("/v1/datasets/d/files/big.bin", data=big)
    assert r.status == 201 and r.json()["size"] == len(big)
    r = loaded.upload("d", [("big2.bin", big[::-1])], {"path": "more/big2.bin"})
    assert r.status == 201
    assert loaded.get("/v1/datasets/d/files/big.bin").body == big
    assert loaded.get("/v1/datasets/d/files/more/big2.bin").body == big[::-1]
    # identical bytes are stored once
    before = sum(1 for _ in loaded.store.objects.iter_ids())
    loaded.put("/v1/datasets/d/files/copy.bin", data=big)
    assert sum(1 for _ in loaded.store.objects.iter_ids()) == before
    assert temp_leftovers(loaded.store) == []


def _slow_body(data: bytes, pieces: int = 20, pause: float = 0.1) -> object:
    """A request body sent piece by piece, a pause between pieces (a slow client)."""

    async def gen() -> object:
        step = -(-len(data) // pieces)
        for i in range(0, len(data), step):
            await asyncio.sleep(pause)
            yield data[i : i + step]

    return gen()


def test_gc_beside_uploads_loses_nothing(api: Api) -> None:
    """Promise 7: a multipart part being spooled and a PUT being streamed survive gc."""
    assert api.post("/v1/datasets", json={"name": "d"}).status == 201
    store_root = api.store.root
    blob = os.urandom(2 << 20)
    boundary = "gcboundary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + blob
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with gc_running(store_root) as runs:
        wait_until(lambda: len(runs) >= 1)
        multi = api.post(
            "/v1/datasets/d/files",
            data=_slow_body(form),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        put = api.put("/v1/datasets/d/files/p.bin", data=_slow_body(blob[::-1], 5))
    assert multi.status == 201, multi.body
    assert put.status == 201, put.body
    assert api.get("/v1/datasets/d/files/m.bin").body == blob
    assert api.get("/v1/datasets/d/files/p.bin").body == blob[::-1]
    assert api.store.fsck()["ok"]


def test_links_in_listings_downloads_and_archives(loaded: Api, store: Store) -> None:
    """A symbolic link is listed with its target, never served as what it points at, and
    archived as a link (tar: a symlink member; zip: Info-ZIP's link mode)."""
    store.symlink("d", "data/latest.csv", "a.csv")
    store.symlink("d", "escape", "/etc/passwd")
    listed = loaded.get("/v1/datasets/d/files?recursive=true").json()["items"]
    link = next(i for i in listed if i["path"] == "data/latest.csv")
    assert (link["type"], link["target"], link["size"], link["object"]) == (
        "symlink",
        "a.csv",
        5,
        None,
    )
    meta = loaded.get("/v1/datasets/d/files/escape?metadata=true").json()
    assert meta["type"] == "symlink" and meta["target"] == "/etc/passwd"
    r = loaded.get("/v1/datasets/d/files/escape")
    assert (r.status, r.code) == (400, "invalid_path") and b"root:" not in r.body
    with tarfile.open(fileobj=io.BytesIO(loaded.get("/v1/datasets/d/archive").body)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["escape"].issym() and members["escape"].linkname == "/etc/passwd"
    assert members["data/latest.csv"].linkname == "a.csv"
    with zipfile.ZipFile(io.BytesIO(loaded.get("/v1/datasets/d/archive?format=zip").body)) as zf:
        info = zf.getinfo("data/latest.csv")
        assert (info.external_attr >> 16) & 0o170000 == 0o120000
        assert zf.read(info) == b"a.csv"


def test_packed_and_chunked_files_download_whole_and_in_ranges(api: Api, tmp_path) -> None:
    """Imported files live in packs (compressed or raw) or as chunk lists; downloads,
    ranges and archives read them without a whole-file copy."""
    rnd = random.Random(5)
    text = b"".join(b"%d,%d\n" % (i, rnd.getrandbits(40)) for i in range(300_000))  # chunked
    files = {
        "small.csv": b"a,b\n" + b"1,2\n" * 500,  # a compressed blob
        "noise.bin": os.urandom(70_000),  # a raw blob
        "big.csv": text,
    }
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    api.store.create_dataset("p")
    api.store.put("p", [src])
    assert api.store.catalog.chunk_list(api.store.stat("p", "big.csv").file_object())
    for name, data in files.items():
        url = f"/v1/datasets/p/files/{name}"
        r = api.get(url)
        assert r.status == 200 and r.body == data, name
        size = len(data)
        for header, want in {
            "bytes=1-10": data[1:11],
            f"bytes={size // 2}-": data[size // 2 :],
            "bytes=-700": data[-700:],
        }.items():
            r = api.get(url, headers={"Range": header})
            assert (r.status, r.body) == (206, want), (name, header)
    for name, data in files.items():  # checksums read packed and chunked bytes too
        doc = api.get(f"/v1/datasets/p/files/{name}?metadata=true&checksum=sha256").json()
        assert doc["sha256"] == hashlib.sha256(data).hexdigest(), name
    r = api.get("/v1/datasets/p/archive?format=tar")
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tar:
        for name, data in files.items():
            member = tar.extractfile(name)
            assert member is not None and member.read() == data
