"""Shared pieces of the API tests: the app behind aiohttp's TestServer, driven synchronously.

The event loop runs in a background thread for the length of a test, so tests read like
plain request/response scripts and can fire requests from many threads at once.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from datastore.store import Store
from httpapi.app import create_app
from httpapi.state import Settings


@dataclass
class Resp:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


class Api:
    """A TestClient on its own loop thread; every method is synchronous."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app = create_app(store, settings)
        self.client: TestClient[Any, Any] = self._call(self._start())
        self.token: str | None = None

    async def _start(self) -> TestClient[Any, Any]:
        client = TestClient(TestServer(self.app, host="127.0.0.1"))
        await client.start_server()
        return client

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self._call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def base(self) -> str:
        return str(self.client.make_url(""))

    def request(
        self, method: str, path: str, *, token: str | None = "default", **kwargs: Any
    ) -> Resp:
        headers = dict(kwargs.pop("headers", {}) or {})
        use = self.token if token == "default" else token
        if use is not None:
            headers.setdefault("Authorization", f"Bearer {use}")

        async def go() -> Resp:
            async with self.client.request(method, path, headers=headers, **kwargs) as r:
                return Resp(r.status, r.headers, await r.read())

        return self._call(go())

    def get(self, path: str, **kw: Any) -> Resp:
        return self.request("GET", path, **kw)

    def head(self, path: str, **kw: Any) -> Resp:
        return self.request("HEAD", path, **kw)

    def post(self, path: str, **kw: Any) -> Resp:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Resp:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Resp:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Resp:
        return self.request("DELETE", path, **kw)

    def upload(
        self,
        name: str,
        files: list[tuple[str | None, bytes]],
        fields: dict[str, str] | None = None,
        **kw: Any,
    ) -> Resp:
        """Multipart POST: fields first (as requests sends them), then the file parts."""
        form = aiohttp.FormData()
        for key, value in (fields or {}).items():
            form.add_field(key, value)
        for filename, data in files:
            form.add_field("file", data, filename=filename, content_type="application/octet-stream")
        return self.post(f"/v1/datasets/{name}/files", data=form, **kw)


def make_api(store: Store, **settings: Any) -> Api:
    api = Api(store, Settings(**settings))
    api.token = store.access().create_token("root", admin=True).secret
    return api


@pytest.fixture(name="api")
def api_fixture(store: Store) -> Iterator[Api]:
    """An admin-token client on a fresh store; import ``api_fixture`` to use ``api``."""
    client = make_api(store)
    yield client
    client.close()


def temp_leftovers(store: Store) -> list[Path]:
    """Temp files left in the object store (spooled uploads, half-written objects)."""
    return list(store.objects.iter_temp())


def object_count(store: Store) -> int:
    return sum(1 for _ in store.objects.iter_ids())


def raw_request(
    api: Api,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = "default",
) -> Resp:
    """Send ``target`` byte for byte (no client-side normalization of ``..`` or ``%2F``)."""
    server = api.client.server
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    sent = dict(headers or {})
    use = api.token if token == "default" else token
    if use is not None:
        sent.setdefault("Authorization", f"Bearer {use}")
    try:
        conn.request(method, target, body=body, headers=sent)
        resp = conn.getresponse()
        return Resp(resp.status, CIMultiDictProxy(CIMultiDict(resp.getheaders())), resp.read())
    finally:
        conn.close()
