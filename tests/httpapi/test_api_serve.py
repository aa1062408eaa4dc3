"""``ds serve`` as a real subprocess on 127.0.0.1, driven with ``requests``.

The workflows are those of the platforms our users come from (../shared/seeds), adapted
to our routes: create a dataset, batch-upload with a thread pool, snapshot with a tag,
read back by ``name@tag``, hand out a token and grants.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import DS_BIN

URL_RE = re.compile(r"ds serve: (http://\S+)/v1 ")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    token: str
    store_root: Path
    stderr: list[str] = field(default_factory=list)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def start_server(store_root: Path, *args: str) -> Server:
    env = {**os.environ, "DS_STORE": str(store_root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [DS_BIN, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().decode()
    match = URL_RE.search(line)
    if match is None:
        proc.kill()
        raise AssertionError(f"no URL in {line!r}: {proc.stderr.read().decode()}")
    token_file = store_root / "admin.token"
    server = Server(proc, match.group(1), token_file.read_text().strip(), store_root)
    assert str(token_file) in line
    threading.Thread(target=_drain, args=(proc.stderr, server.stderr), daemon=True).start()
    threading.Thread(target=_drain, args=(proc.stdout, []), daemon=True).start()
    return server


def _drain(stream: Any, into: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        into.append(raw.decode(errors="replace"))


@pytest.fixture
def server(store_root: Path) -> Iterator[Server]:
    srv = start_server(store_root)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def test_first_start_creates_an_admin_token_file(server: Server) -> None:
    token_file = server.store_root / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    r = requests.get(server.url("/v1/datasets"), headers=server.headers(), timeout=10)
    assert r.status_code == 200 and r.json()["items"] == []
    assert requests.get(server.url("/v1/datasets"), timeout=10).status_code == 401
    assert requests.get(server.url("/healthz"), timeout=10).json() == {"status": "ok"}
    assert server.stop() == 0
    again = start_server(server.store_root)
    try:
        assert again.token == server.token  # not recreated: the store already has a token
        assert requests.get(again.url("/v1/tokens"), headers=again.headers(), timeout=10).ok
    finally:
        assert again.stop(signal.SIGINT) == 0


def test_seed_workflows_over_http(server: Server, tmp_path: Path) -> None:
    s = requests.Session()
    s.headers.update(server.headers())
    # create datasets (seed 000 and 002)
    r = s.post(server.url("/v1/datasets"), json={"name": "papers", "description": "PDFs"})
    assert r.status_code == 201 and r.json()["name"] == "papers"
    assert s.post(server.url("/v1/datasets"), json={"name": "papers"}).status_code == 409
    # batch upload with a thread pool, one multipart request per file (seed 000)
    docs = tmp_path / "documents"
    docs.mkdir()
    for i in range(12):
        (docs / f"paper-{i:02d}.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2000 + i))

    def upload_one(path: Path) -> dict[str, Any]:
        try:
            with open(path, "rb") as f:
                resp = requests.post(
                    server.url("/v1/datasets/papers/files"),
                    files={"file": f},
                    headers=server.headers(),
                    timeout=30,
                )
            resp.raise_for_status()
            return {"file": path.name, "status": "success", "entry": resp.json()["files"][0]}
        except Exception as exc:
            return {"file": path.name, "status": "error", "error": str(exc)}

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(upload_one, sorted(docs.glob("*.pdf"))))
    assert [r["status"] for r in results] == ["success"] * 12
    # several files in one request, into a directory, with metadata
    with open(docs / "paper-00.pdf", "rb") as a, open(docs / "paper-01.pdf", "rb") as b:
        r = s.post(
            server.url("/v1/datasets/papers/files"),
            files=[("file", a), ("file", b)],
            data={"path": "copies", "metadata": '{"source": "scan"}'},
        )
    assert r.status_code == 201
    assert sorted(e["path"] for e in r.json()["files"]) == [
        "copies/paper-00.pdf",
        "copies/paper-01.pdf",
    ]
    assert r.json()["files"][0]["metadata"] == {"source": "scan"}
    # list files and status (seed 000: GET data, GET status)
    listed = s.get(server.url("/v1/datasets/papers/files"), params={"limit": 1000}).json()
    assert listed["total"] == 13
    # bulk upload with extra form fields other platforms send (seed 004), then list one
    # category and page through everything with limit/offset
    notes = {"notes/a.json": b'{"q": 1}\n', "notes/b.txt": b"plain words\n"}
    for path, data in notes.items():
        r = s.post(
            server.url("/v1/datasets/papers/files"),
            files={"file": (path.split("/")[1], data)},
            data={"purpose": "training", "path": path},
        )
        assert r.status_code == 201
    by_cat = s.get(
        server.url("/v1/datasets/papers/files"),
        params={"recursive": "true", "category": "data"},
    ).json()
    assert [e["path"] for e in by_cat["items"]] == ["notes/a.json"]
    seen: list[str] = []
    offset = 0
    while True:
        page = s.get(
            server.url("/v1/datasets/papers/files"),
            params={"recursive": "true", "limit": 4, "offset": offset},
        ).json()
        seen += [e["path"] for e in page["items"]]
        offset += page["limit"]
        if offset >= page["total"]:
            break
    assert len(seen) == len(set(seen)) == 16, seen
    meta = s.get(
        server.url("/v1/datasets/papers/files/notes/b.txt"),
        params={"metadata": "true", "checksum": "sha256"},
    ).json()
    assert meta["category"] == "text" and len(meta["sha256"]) == 64
    status = s.get(server.url("/v1/datasets/papers/status")).json()
    assert status["dirty"] is True and len(status["staged"]["added"]) >= 16
    # snapshot with a tag, then change the head
    snap = s.post(server.url("/v1/datasets/papers/snapshots"), json={"tag": "v1.0"})
    assert snap.status_code == 201 and snap.json()["tags"] == ["v1.0"]
    s.delete(server.url("/v1/datasets/papers/files/paper-03.pdf")).raise_for_status()
    s.put(server.url("/v1/datasets/papers/files/paper-04.pdf"), data=b"rewritten")
    # read by name@tag: the old bytes; the head has the new ones
    old = s.get(server.url("/v1/datasets/papers@v1.0/files/paper-04.pdf"))
    assert old.content == (docs / "paper-04.pdf").read_bytes()
    assert s.get(server.url("/v1/datasets/papers/files/paper-04.pdf")).content == b"rewritten"
    assert s.get(server.url("/v1/datasets/papers@v1.0/files/paper-03.pdf")).ok
    assert s.get(server.url("/v1/datasets/papers/files/paper-03.pdf")).status_code == 404
    diff = s.get(server.url("/v1/datasets/papers/diff"), params={"from": "v1.0"}).json()
    assert "paper-03.pdf" in str(diff["removed"]) and "paper-04.pdf" in str(diff["modified"])
    # streaming download to disk (seed 004: download with stream=True)
    dest = tmp_path / "download.pdf"
    with s.get(server.url("/v1/datasets/papers@v1.0/files/paper-05.pdf"), stream=True) as resp:
        resp.raise_for_status()
        with open(dest, "wb") as out:
            for chunk in resp.iter_content(chunk_size=8192):
                out.write(chunk)
    assert dest.read_bytes() == (docs / "paper-05.pdf").read_bytes()
    # export the tagged version as an archive (seed 002: export)
    arch = s.get(server.url("/v1/datasets/papers@v1.0/archive"), params={"format": "zip"})
    assert arch.status_code == 200 and arch.content[:2] == b"PK"
    # statistics summary (seed 002)
    assert s.get(server.url("/v1/datasets/papers/summary")).json()["file_count"] == 15
    assert s.get(server.url("/v1/stats")).json()["datasets"] == 1
    # delete the dataset (seed 000)
    assert s.delete(server.url("/v1/datasets/papers")).status_code == 204
    assert s.get(server.url("/v1/datasets/papers")).status_code == 404
    assert server.stop() == 0
    log = "".join(server.stderr)
    assert '"POST /v1/datasets/papers/files HTTP/1.1" 201' in log  # access log


def test_tokens_and_grants_via_api_and_cli(
    server: Server, ds_run: Callable[..., subprocess.CompletedProcess[bytes]]
) -> None:
    admin = requests.Session()
    admin.headers.update(server.headers())
    admin.post(server.url("/v1/datasets"), json={"name": "sales"}).raise_for_status()
    admin.put(server.url("/v1/datasets/sales/files/q1.csv"), data=b"a,b\n1,2\n")
    admin.post(server.url("/v1/datasets/sales/snapshots"), json={"tag": "v1"})
    # a token made through the API
    made = admin.post(server.url("/v1/tokens"), json={"user": "alice"})
    assert made.status_code == 201
    alice = made.json()["token"]
    url = server.url("/v1/datasets/sales@v1/files/q1.csv")
    assert requests.get(url, headers=server.headers(alice), timeout=10).status_code == 404
    r = admin.post(
        server.url("/v1/datasets/sales/grants"), json={"principal": "alice", "permission": "read"}
    )
    assert r.status_code == 201
    assert requests.get(url, headers=server.headers(alice), timeout=10).content == b"a,b\n1,2\n"
    put = requests.put(
        server.url("/v1/datasets/sales/files/x.csv"),
        data=b"x",
        headers=server.headers(alice),
        timeout=10,
    )
    assert put.status_code == 403 and put.json()["error"]["code"] == "forbidden"
    # a token made with the CLI, grants changed with the CLI, while the daemon runs
    out = ds_run("token", "create", "bob", "--json").stdout
    bob = __import__("json").loads(out)
    assert set(bob) >= {"id", "user", "admin", "token"} and bob["user"] == "bob"
    bob_url = server.url("/v1/datasets/sales/files/q1.csv")
    assert (
        requests.get(bob_url, headers=server.headers(bob["token"]), timeout=10).status_code == 404
    )
    ds_run("grant", "sales", "bob", "write")
    w = requests.put(
        server.url("/v1/datasets/sales/files/bob.csv"),
        data=b"b",
        headers=server.headers(bob["token"]),
        timeout=10,
    )
    assert w.status_code == 201
    ds_run("revoke", "sales", "bob")
    assert (
        requests.get(bob_url, headers=server.headers(bob["token"]), timeout=10).status_code == 404
    )
    listed = ds_run("token", "list", "--json").stdout.decode()
    assert "bob" in listed and bob["token"] not in listed
    ds_run("token", "revoke", bob["id"])
    gone = requests.get(bob_url, headers=server.headers(bob["token"]), timeout=10)
    assert gone.status_code == 401
    assert server.stop() == 0


def test_sigterm_finishes_in_flight_uploads(server: Server) -> None:
    s = requests.Session()
    s.headers.update(server.headers())
    s.post(server.url("/v1/datasets"), json={"name": "d"}).raise_for_status()
    started = threading.Event()
    result: dict[str, Any] = {}

    def slow_body() -> Iterator[bytes]:
        for i in range(20):
            if i == 2:
                started.set()
            yield b"z" * 65536
            threading.Event().wait(0.05)

    def upload() -> None:
        r = requests.put(
            server.url("/v1/datasets/d/files/slow.bin"),
            data=slow_body(),
            headers=server.headers(),
            timeout=30,
        )
        result["status"] = r.status_code

    t = threading.Thread(target=upload)
    t.start()
    assert started.wait(10)
    server.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert server.proc.wait(timeout=30) == 0
    assert result.get("status") == 201
    from datastore.store import Store

    st = Store.open(server.store_root)
    try:
        assert st.stat("d", "slow.bin").size == 20 * 65536
        assert st.fsck()["ok"]
    finally:
        st.close()


def test_upload_limit_and_no_auth_rules(store_root: Path) -> None:
    srv = start_server(store_root, "--max-upload-bytes", "1000")
    try:
        s = requests.Session()
        s.headers.update(srv.headers())
        s.post(srv.url("/v1/datasets"), json={"name": "d"}).raise_for_status()
        r = s.put(srv.url("/v1/datasets/d/files/big"), data=b"x" * 1001)
        assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
        assert s.put(srv.url("/v1/datasets/d/files/ok"), data=b"x" * 1000).status_code == 201
    finally:
        assert srv.stop() == 0
    env = {**os.environ, "DS_STORE": str(store_root)}
    refused = subprocess.run(
        [DS_BIN, "serve", "--host", "0.0.0.0", "--port", "0", "--no-auth"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode != 0
    assert b"--no-auth" in refused.stderr and b"loopback" in refused.stderr
    bad_mount = subprocess.run(
        [DS_BIN, "serve", "--port", "0", "--mount", str(store_root / "no" / "such" / "dir")],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert bad_mount.returncode == 2  # invalid_request: the mountpoint given is unusable
    assert b"--mount" in bad_mount.stderr and b"[invalid_request]" in bad_mount.stderr
    assert b"Traceback" not in bad_mount.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = subprocess.run(
            [DS_BIN, "serve", "--port", port], capture_output=True, env=env, timeout=60
        )
    assert busy.returncode == 7  # conflict: somebody else has the port
    assert b"cannot listen" in busy.stderr and b"[conflict]" in busy.stderr
    assert b"Traceback" not in busy.stderr


def test_no_auth_on_loopback(store_root: Path) -> None:
    env = {**os.environ, "DS_STORE": str(store_root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [DS_BIN, "serve", "--port", "0", "--no-auth"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = URL_RE.search(line)
        assert match and "--no-auth" in line
        r = requests.post(f"{match.group(1)}/v1/datasets", json={"name": "open"}, timeout=10)
        assert r.status_code == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize(
    "command",
    [["serve"], ["token"], ["token", "create"], ["token", "list"], ["token", "revoke"]]
    + [["grant"], ["revoke"]],
)
def test_help_has_an_example(
    command: list[str], ds_run: Callable[..., subprocess.CompletedProcess[bytes]]
) -> None:
    assert b"Example:" in ds_run(*command, "--help").stdout


def test_one_daemon_with_inbox_and_mount(store_root: Path, tmp_path: Path) -> None:
    """``--inbox`` ingests dropped files; ``--mount`` (when FUSE is usable) shows them."""
    inbox = tmp_path / "inbox"
    args = ["--inbox", str(inbox), "--create-datasets"]
    mnt = tmp_path / "mnt"
    fuse = Path("/dev/fuse").exists() and shutil.which("fusermount3") is not None
    if fuse:
        mnt.mkdir()
        args += ["--mount", str(mnt)]
    srv = start_server(store_root, *args)
    try:
        s = requests.Session()
        s.headers.update(srv.headers())
        s.post(srv.url("/v1/datasets"), json={"name": "drop"}).raise_for_status()
        (inbox / "drop").mkdir(parents=True, exist_ok=True)
        tmp = inbox / "drop" / ".incoming.tmp"
        tmp.write_bytes(b"id,v\n1,2\n")
        tmp.rename(inbox / "drop" / "a.csv")
        url = srv.url("/v1/datasets/drop/files/a.csv")
        deadline = time.monotonic() + 30
        while s.get(url).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert s.get(url).content == b"id,v\n1,2\n"
        auto = inbox / "made-by-the-inbox" / "b.csv"  # --create-datasets, as on ds watch
        auto.parent.mkdir()
        tmp = auto.parent / ".b.tmp"
        tmp.write_bytes(b"x\n")
        tmp.rename(auto)
        auto_url = srv.url("/v1/datasets/made-by-the-inbox/files/b.csv")
        deadline = time.monotonic() + 30
        while s.get(auto_url).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert s.get(auto_url).content == b"x\n"
        if fuse:
            assert (mnt / "drop" / "a.csv").read_bytes() == b"id,v\n1,2\n"
            (mnt / "drop" / "b.txt").write_text("through the mount")
            # the mount's per-operation latency joins /metrics (written every 2 s)
            deadline = time.monotonic() + 30
            text = ""
            while 'op="flush"' not in text and time.monotonic() < deadline:
                time.sleep(0.5)
                text = requests.get(srv.url("/metrics")).text
            assert "# TYPE ds_mount_op_duration_seconds histogram" in text
            counts = {
                line.split('"')[1]: float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("ds_mount_op_duration_seconds_count")
            }
            assert counts["create"] >= 1 and counts["flush"] >= 1 and counts["getattr"] >= 1
            assert "ds_http_request_duration_seconds_count" in text  # the API's own still there
    finally:
        assert srv.stop() == 0
    if fuse:
        assert not os.path.ismount(mnt)
        assert not list((store_root / "logs").glob("mount-metrics.*"))


def _connect(server: Server) -> socket.socket:
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _closed(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while the connection stays open."""
    sock.settimeout(0.05)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return got


def test_slow_clients_are_cut_while_normal_ones_are_served(store_root: Path) -> None:
    """Slowloris headers, a stalled body and an idle keep-alive connection are each
    closed after their timeout; a client sending steadily (gaps under the body timeout)
    and normal requests meanwhile are served."""
    server = start_server(store_root, "--idle-timeout", "1.5s", "--body-timeout", "1")
    auth = f"Authorization: Bearer {server.token}\r\n".encode()
    try:
        requests.post(
            server.url("/v1/datasets"), json={"name": "d"}, headers=server.headers(), timeout=10
        ).raise_for_status()
        slow = [_connect(server) for _ in range(50)]
        header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
        form = b"--B\r\nContent-Disposition: form-data; name=file; filename=m.bin\r\n\r\nxx"
        stalled = []
        multipart = b"Content-Type: multipart/form-data; boundary=B\r\n"
        for head, extra, body in (
            (b"PUT /v1/datasets/d/files/stalled.bin", b"", b"x" * 10),
            (b"POST /v1/datasets/d/files", multipart, form),
            (b"POST /v1/datasets", b"", b'{"name"'),
        ):
            stalled.append(_connect(server))
            stalled[-1].sendall(
                head
                + b" HTTP/1.1\r\nHost: x\r\n"
                + auth
                + extra
                + b"Content-Length: 1000\r\n\r\n"
                + body
            )
        idle = _connect(server)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        steady = _connect(server)
        steady.sendall(
            b"PUT /v1/datasets/d/files/steady.bin HTTP/1.1\r\nHost: x\r\n"
            + auth
            + b"Content-Length: 6\r\n\r\n"
        )
        start = time.monotonic()
        served = 0
        for i in range(len(header)):
            if time.monotonic() - start > 4:
                break
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(header[i : i + 1])
            if i < 6:
                steady.sendall(b"s")  # one byte every 0.5 s: under the body timeout
            served += requests.get(server.url("/healthz"), timeout=5).ok
            time.sleep(0.5)
        assert served >= 6
        assert all(_closed(sock) is not None for sock in slow), "a slow header client lives"
        for sock in stalled:
            answer = _closed(sock)
            assert answer is not None and answer.startswith(b"HTTP/1.1 408")
            assert b'"request_timeout"' in answer
        assert (_closed(idle) or b"").startswith(b"HTTP/1.1 200")  # answered, then cut idle
        steady.settimeout(10)
        assert steady.recv(65536).startswith(b"HTTP/1.1 201")
        ls = requests.get(
            server.url("/v1/datasets/d/files"), headers=server.headers(), timeout=10
        ).json()
        assert [e["path"] for e in ls["items"]] == ["steady.bin"]  # the stalled one: nothing
    finally:
        assert server.stop() == 0


def test_access_log_counts_the_bytes_of_a_file_download(server: Server) -> None:
    s = requests.Session()
    s.headers.update(server.headers())
    s.post(server.url("/v1/datasets"), json={"name": "d"}).raise_for_status()
    s.put(server.url("/v1/datasets/d/files/big.bin"), data=os.urandom(3_000_000))
    assert len(s.get(server.url("/v1/datasets/d/files/big.bin")).content) == 3_000_000
    assert server.stop() == 0
    line = next(x for x in server.stderr if '"GET /v1/datasets/d/files/big.bin' in x)
    sent = int(line.split('" 200 ')[1].split()[0])
    assert 3_000_000 < sent < 3_001_000  # the file and its headers
