"""The REST API: bulk transfer against a bare aiohttp server, and latency under 50 clients.

Transfers: one file (1 GiB; 64 MiB with ``quick``) uploaded with a raw ``PUT`` and as
multipart, then downloaded, through ``ds serve`` and through a bare aiohttp server that
streams the body to a file (fsynced, as ds must before it answers) and serves files with
sendfile. Both servers run as subprocesses on 127.0.0.1 in the same run; curl is the
client for both, writing downloads to /dev/null.

Latency: 50 concurrent aiohttp clients in a separate process hammer the list and metadata
routes; each route reports requests/s, p50 and p99.

``python -m benchmarks.bench_api --bare-server DIR`` and ``--load ...`` are the helper
processes this module starts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .measure import DS, drop_caches, row

MiB = 1 << 20
CLIENTS = 50
SERVE_RE = re.compile(r"(http://\S+)/v1 ")
BARE_RE = re.compile(r"bare: (http://\S+)")


def run(quick: bool) -> list[dict[str, Any]]:
    size = (64 if quick else 1024) * MiB
    requests_per_route = 1000 if quick else 4000
    work = Path(tempfile.mkdtemp(prefix="ds-bench-api-"))
    try:
        return _transfers(work, size, 3) + _latency(work, requests_per_route)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# servers ---------------------------------------------------------------------------


class Proc:
    """A server subprocess and the base URL it printed."""

    def __init__(self, cmd: list[str], pattern: re.Pattern[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = pattern.search(line)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.base = match.group(1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _start_ds(store: Path, size: int) -> tuple[Proc, str]:
    env = {"DS_STORE": str(store)}
    cmd = [DS, "serve", "--port", "0", "--max-upload-bytes", str(2 * size)]
    server = Proc(cmd, SERVE_RE, env)
    return server, (store / "admin.token").read_text().strip()


def _start_bare(root: Path) -> Proc:
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_api", "--bare-server", str(root)]
    return Proc(cmd, BARE_RE, {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})


# transfers -------------------------------------------------------------------------


def _make_file(path: Path, size: int, seed: int) -> None:
    """Incompressible bytes, different per seed so no upload dedups against another."""
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            f.write(seed.to_bytes(4, "little") + i.to_bytes(4, "little") + block[8:])


def _stamp(path: Path, n: int) -> None:
    """Change the first bytes, so a repeated upload is new content, never a dedup hit."""
    with open(path, "r+b") as f:
        f.write(n.to_bytes(8, "little"))


def _curl(*args: str) -> float:
    start = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", *args], capture_output=True, timeout=3600
    )
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)} failed: {out.stderr.decode()[-500:]}")
    return elapsed


def _transfers(work: Path, size: int, repeats: int) -> list[dict[str, Any]]:
    """Each transfer ``repeats`` times per server, alternating which goes first; medians."""
    src = work / "src.bin"
    _make_file(src, size, 0)
    ds, token = _start_ds(work / "store", size)
    auth = f"Authorization: Bearer {token}"
    bare = _start_bare(work / "bare")
    files = f"{ds.base}/v1/datasets/bench/files"
    serial = itertools.count(1)

    def put(server: str) -> float:
        n = next(serial)
        _stamp(src, n)
        if server == "ds":
            return _curl("-H", auth, "-T", str(src), f"{files}/put{n}.bin")
        return _curl("-T", str(src), f"{bare.base}/upload/put{n}.bin")

    def multipart(server: str) -> float:
        n = next(serial)
        _stamp(src, n)
        form = f"file=@{src};filename=multipart{n}.bin"
        if server == "ds":
            return _curl("-H", auth, "-F", form, files)
        return _curl("-F", form, f"{bare.base}/multipart")

    def download(server: str) -> float:
        drop_caches()
        if server == "ds":
            return _curl("-H", auth, f"{files}/dl.bin")
        return _curl(f"{bare.base}/files/dl.bin")

    def download_warm(server: str) -> float:
        if server == "ds":
            return _curl("-H", auth, f"{files}/dl.bin")
        return _curl(f"{bare.base}/files/dl.bin")

    ops = {"put": put, "multipart": multipart, "download": download}
    ops["download-warm"] = download_warm
    times: dict[tuple[str, str], list[float]] = {}
    try:
        _curl("-H", auth, "-H", "Content-Type: application/json", "-d", '{"name": "bench"}',
              f"{ds.base}/v1/datasets")  # fmt: skip
        _curl("-H", auth, "-T", str(src), f"{files}/dl.bin")  # what the downloads read
        _curl("-T", str(src), f"{bare.base}/upload/dl.bin")
        for op, fn in ops.items():
            for i in range(repeats):
                for server in ("ds", "bare") if i % 2 == 0 else ("bare", "ds"):
                    times.setdefault((server, op), []).append(fn(server))
                    os.sync()
    finally:
        ds.stop()
        bare.stop()
    return _transfer_rows(times, size)


def _transfer_rows(times: dict[tuple[str, str], list[float]], size: int) -> list[dict[str, Any]]:
    rows = []
    label = f"{size // MiB} MiB"
    for op in ("put", "multipart", "download", "download-warm"):
        ds_rate = size / MiB / statistics.median(times[("ds", op)])
        bare_rate = size / MiB / statistics.median(times[("bare", op)])
        workload = f"api-{op} {label}"
        rows.append(row(workload, "ds serve", "throughput", round(ds_rate, 1), "MiB/s"))
        rows.append(row(workload, "bare aiohttp", "throughput", round(bare_rate, 1), "MiB/s"))
        rows.append(row(workload, "ds serve", "vs bare", round(ds_rate / bare_rate * 100), "%"))
    return rows


# latency ---------------------------------------------------------------------------


def _latency(work: Path, per_route: int) -> list[dict[str, Any]]:
    ds, token = _start_ds(work / "store2", MiB)
    try:
        _seed_metadata(ds.base, token)
        routes = {
            "list datasets": "/v1/datasets",
            "dataset details": "/v1/datasets/d000",
            "list files": "/v1/datasets/d000/files?prefix=dir&limit=100",
            "file metadata": "/v1/datasets/d000/files/dir/f050.csv?metadata=true",
        }
        rows = []
        for label, path in routes.items():
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_api",
                    "--load",
                    ds.base + path,
                    token,
                    str(CLIENTS),
                    str(per_route),
                ],  # fmt: skip
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
                timeout=1800,
                check=True,
            )
            stats = json.loads(out.stdout)
            workload = f"api {label}, {CLIENTS} clients"
            rows.append(row(workload, "ds serve", "requests/s", round(stats["rps"], 1), "req/s"))
            rows.append(row(workload, "ds serve", "p50", round(stats["p50_ms"], 2), "ms"))
            rows.append(row(workload, "ds serve", "p99", round(stats["p99_ms"], 2), "ms"))
            rows.append(row(workload, "ds serve", "errors", stats["errors"], "requests"))
        return rows
    finally:
        ds.stop()


def _seed_metadata(base: str, token: str) -> None:
    """20 datasets; the first holds 100 small CSV files under dir/ and a tag."""
    import requests

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    for i in range(20):
        s.post(f"{base}/v1/datasets", json={"name": f"d{i:03d}"}).raise_for_status()
    for j in range(100):
        url = f"{base}/v1/datasets/d000/files/dir/f{j:03d}.csv"
        s.put(url, data=f"id,v\n{j},{j * 2}\n".encode()).raise_for_status()
    s.post(f"{base}/v1/datasets/d000/snapshots", json={"tag": "v1"}).raise_for_status()


async def _load(url: str, token: str, clients: int, total: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    per_client = total // clients
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client() -> None:
            nonlocal errors
            for _ in range(per_client):
                start = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(client() for _ in range(2)))  # warm up connections
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


# the bare baseline server ----------------------------------------------------------


def _bare_app(root: Path) -> Any:
    from aiohttp import BodyPartReader, web

    async def upload(request: web.Request) -> web.Response:
        fd = os.open(root / request.match_info["name"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        loop = asyncio.get_running_loop()
        try:
            async for chunk in request.content.iter_chunked(MiB):
                await loop.run_in_executor(None, os.write, fd, chunk)
            await loop.run_in_executor(None, os.fsync, fd)
        finally:
            os.close(fd)
        return web.json_response({"ok": True}, status=201)

    async def multipart(request: web.Request) -> web.Response:
        reader = await request.multipart()
        loop = asyncio.get_running_loop()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            fd = os.open(root / (part.filename or "part"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                while chunk := await part.read_chunk(MiB):
                    await loop.run_in_executor(None, os.write, fd, chunk)
                await loop.run_in_executor(None, os.fsync, fd)
            finally:
                os.close(fd)
        return web.json_response({"ok": True}, status=201)

    async def download(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / request.match_info["name"])

    app = web.Application(client_max_size=1 << 40)
    app.router.add_put("/upload/{name}", upload)
    app.router.add_post("/multipart", multipart)
    app.router.add_get("/files/{name}", download)
    return app


async def _serve_bare(root: Path) -> None:
    from aiohttp import web

    runner = web.AppRunner(_bare_app(root), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"bare: http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_api")
    parser.add_argument("--bare-server", type=Path)
    parser.add_argument("--load", nargs=4, metavar=("URL", "TOKEN", "CLIENTS", "REQUESTS"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.bare_server:
        asyncio.run(_serve_bare(args.bare_server))
    elif args.load:
        url, token, clients, total = args.load
        print(json.dumps(asyncio.run(_load(url, token, int(clients), int(total)))))
    else:
        from .__main__ import print_table

        print_table(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
