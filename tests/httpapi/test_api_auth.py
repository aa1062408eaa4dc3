"""The authorization matrix: every route in the table x (no token, no grant, read, write,
admin grant, admin token). A dataset the caller may not read must look exactly like one
that does not exist, and no refusal may carry anything about the dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from datastore.catalog.access import LEVELS
from datastore.store import Store
from httpapi.routes import ROUTES_KEY, Route
from tests.httpapi.api_support import Api, Resp, make_api

CSV = b"id,value\n1,10\n2,20\n3,30\n"
# principal -> grant it holds on every dataset of the test (None: no grant)
USERS: dict[str, str | None] = {"nobody": None, "reader": "read", "writer": "write"}
USERS["owner"] = "admin"
CALLERS = ("anonymous", "nobody", "reader", "writer", "owner", "root")


@dataclass
class World:
    api: Api
    store: Store
    tokens: dict[str, str]
    counter: int = 0

    def fresh_dataset(self) -> tuple[str, str]:
        """A new dataset with a file, a tagged snapshot and the grants of USERS."""
        self.counter += 1
        name = f"m{self.counter}"
        self.store.create_dataset(name)
        self.store.put_bytes(name, "a.csv", CSV)
        self.store.put_bytes(name, "dir/b.txt", b"hello")
        snap, _ = self.store.snapshot(name, "v1", "first", [], author="root")
        access = self.store.access()
        for user, perm in USERS.items():
            if perm is not None:
                access.grant(name, user, perm)
        return name, snap.row.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    store = Store.open(tmp_path_factory.mktemp("authz") / "store")
    api = make_api(store)
    access = store.access()
    tokens = {user: access.create_token(user).secret or "" for user in USERS}
    tokens["root"] = api.token or ""
    yield World(api, store, tokens)
    api.close()
    store.close()


def _routes(world: World) -> list[Route]:
    return list(world.api.app[ROUTES_KEY])


def _fill(route: Route, name: str, snap: str) -> str:
    values = {
        "name": name,
        "path": "a.csv",
        "tag": "v9" if route.method == "PUT" else "v1",
        "principal": "reader",
        "id": snap if "/snapshots/" in route.path else "0123456789abcdef",
    }
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: values.get(m.group(1), "x"), route.path)


def _body(route: Route, snap: str, n: int) -> dict[str, Any]:
    key = (route.method, re.sub(r":[^}]*", "", route.path))
    if key == ("POST", "/v1/datasets/{name}/files"):
        form = aiohttp.FormData()
        form.add_field("file", b"uploaded", filename="up.txt")
        return {"data": form}
    if key == ("PUT", "/v1/datasets/{name}/files/{path}"):
        return {"data": b"new bytes"}
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/datasets"): {"name": f"new{n}"},
        ("PATCH", "/v1/datasets/{name}"): {"description": "changed"},
        ("POST", "/v1/datasets/{name}/snapshots"): {"tag": "v2"},
        ("PUT", "/v1/datasets/{name}/tags/{tag}"): {"snapshot": snap},
        ("POST", "/v1/datasets/{name}/grants"): {"principal": "someone", "permission": "read"},
        ("POST", "/v1/tokens"): {"user": f"user{n}"},
        ("POST", "/v1/datasets/{name}/actions"): {"action": "validate"},
        ("POST", "/v1/datasets/{name}/forget"): {"keep_last": 1, "dry_run": True},
    }
    if key in bodies:
        return {"json": bodies[key]}
    return {"json": {}} if route.method in ("POST", "PUT", "PATCH") else {}


def _call(world: World, route: Route, caller: str, name: str, snap: str) -> Resp:
    token = None if caller == "anonymous" else world.tokens[caller]
    world.counter += 1
    url = _fill(route, name, snap)
    return world.api.request(route.method, url, token=token, **_body(route, snap, world.counter))


def _level(caller: str) -> int:
    if caller == "root":
        return LEVELS["admin"]
    return LEVELS[USERS.get(caller) or "none"]


def _authorized(resp: Resp) -> bool:
    return resp.status not in (401, 403) and resp.code != "dataset_not_found"


def _scrub(text: bytes, name: str) -> bytes:
    return re.sub(rb"\b" + name.encode() + rb"\b", b"NAME", text)


@pytest.mark.parametrize("caller", CALLERS)
def test_every_route_for_every_caller(world: World, caller: str) -> None:
    failures: list[str] = []
    for route in _routes(world):
        name, snap = world.fresh_dataset()
        resp = _call(world, route, caller, name, snap)
        where = f"{route.method} {route.path} as {caller}: {resp.status} {resp.body[:200]!r}"
        if resp.status >= 500:
            failures.append(f"server error: {where}")
            continue
        expected = _expected(route, caller)
        if expected == "ok":
            if not _authorized(resp):
                failures.append(f"refused: {where}")
        elif expected == "hidden":
            # HEAD answers carry no body, so only their status can be compared
            want = 404 if route.method == "HEAD" else (404, "dataset_not_found")
            got = resp.status if route.method == "HEAD" else (resp.status, resp.code)
            if got != want:
                failures.append(f"leaks existence: {where}")
            else:
                ghost = _call(world, route, caller, "ghost-dataset", snap)
                if _scrub(ghost.body, "ghost-dataset") != _scrub(resp.body, name):
                    failures.append(f"404 differs from a missing dataset: {where}")
        elif (resp.status, resp.code) != expected and not (
            route.method == "HEAD" and resp.status == expected[0]
        ):
            failures.append(f"expected {expected}: {where}")
        if resp.status == 401 and name.encode() in resp.body:
            failures.append(f"refusal names the dataset: {where}")
    assert not failures, "\n".join(failures)


def _expected(route: Route, caller: str) -> str | tuple[int, str]:
    if route.access == "public":
        return "ok"
    if caller == "anonymous":
        return (401, "unauthorized")
    if route.access == "token":
        return "ok"
    if route.access == "store_admin":
        return "ok" if caller == "root" else (403, "forbidden")
    level = _level(caller)
    if level < LEVELS["read"]:
        return "hidden"
    if level < LEVELS[route.access]:
        return (403, "forbidden")
    return "ok"


def test_lists_show_only_readable_datasets(world: World) -> None:
    name, _ = world.fresh_dataset()
    private = f"{name}-private"
    world.store.create_dataset(private)
    for caller in ("nobody", "reader"):
        listed = world.api.get("/v1/datasets?limit=1000", token=world.tokens[caller]).json()
        names = {d["name"] for d in listed["items"]}
        assert private not in names
        assert (name in names) == (caller == "reader")
        assert listed["total"] == len(names)
        found = world.api.get(f"/v1/datasets?search={private}", token=world.tokens[caller])
        assert found.json()["total"] == 0
    admin = world.api.get(f"/v1/datasets?search={private}").json()
    assert admin["total"] == 1


def test_lineage_hides_unreadable_consumers(world: World) -> None:
    upstream, snap = world.fresh_dataset()
    secret = f"{upstream}-secret"
    world.store.create_dataset(secret)
    world.store.snapshot(secret, None, "", [f"{upstream}@v1"], author="root")
    mine = world.api.get(f"/v1/datasets/{upstream}/lineage", token=world.tokens["reader"])
    assert mine.status == 200 and secret.encode() not in mine.body
    everything = world.api.get(f"/v1/datasets/{upstream}/lineage").json()
    assert [c["dataset"] for c in everything["consumers"]] == [secret]


def test_tokens_are_private_to_their_user(world: World) -> None:
    listed = world.api.get("/v1/tokens", token=world.tokens["reader"]).json()
    assert {t["user"] for t in listed["items"]} == {"reader"}
    body = world.api.get("/v1/tokens").body
    for secret in world.tokens.values():
        assert secret.encode() not in body


def test_malformed_and_revoked_tokens_are_401(world: World) -> None:
    name, _ = world.fresh_dataset()
    url = f"/v1/datasets/{name}"
    real = world.tokens["reader"]
    for header in (
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        f"bearer {real}x",
        f"Bearer {real[:-1]}",
        "Bearer ds_0123456789abcdef_nope",
        "Bearer " + "x" * 5000,
    ):
        r = world.api.get(url, token=None, headers={"Authorization": header})
        assert (r.status, r.code) == (401, "unauthorized"), header
        assert name.encode() not in r.body
    assert world.api.get(url, token=None, headers={"Authorization": f"bearer {real}"}).status == 200
    access = world.store.access()
    temp = access.create_token("reader")
    assert world.api.get(url, token=temp.secret).status == 200
    access.revoke_token(temp.id)
    r = world.api.get(url, token=temp.secret)
    assert (r.status, r.code) == (401, "unauthorized")


def test_grant_changes_take_effect_at_once(world: World) -> None:
    name, _ = world.fresh_dataset()
    url = f"/v1/datasets/{name}/files/c.txt"
    nobody = world.tokens["nobody"]
    assert world.api.put(url, data=b"x", token=nobody).code == "dataset_not_found"
    world.api.post(
        f"/v1/datasets/{name}/grants", json={"principal": "nobody", "permission": "read"}
    )
    assert world.api.put(url, data=b"x", token=nobody).code == "forbidden"
    world.api.post(
        f"/v1/datasets/{name}/grants", json={"principal": "nobody", "permission": "write"}
    )
    assert world.api.put(url, data=b"x", token=nobody).status == 201
    world.api.delete(f"/v1/datasets/{name}/grants/nobody")
    assert world.api.get(url, token=nobody).code == "dataset_not_found"


def test_creator_administers_the_new_dataset(world: World) -> None:
    nobody = world.tokens["nobody"]
    r = world.api.post("/v1/datasets", json={"name": "made-by-nobody"}, token=nobody)
    assert r.status == 201
    grants = world.api.get("/v1/datasets/made-by-nobody/grants", token=nobody).json()
    assert grants["items"] == [{"principal": "nobody", "permission": "admin"}]
    r = world.api.patch(
        "/v1/datasets/made-by-nobody", json={"rules": {}}, token=world.tokens["writer"]
    )
    assert r.code == "dataset_not_found"


def test_rules_need_the_admin_grant(world: World) -> None:
    name, _ = world.fresh_dataset()
    url = f"/v1/datasets/{name}"
    r = world.api.patch(url, json={"rules": {}}, token=world.tokens["writer"])
    assert (r.status, r.code) == (403, "forbidden")
    r = world.api.patch(url, json={"description": "ok"}, token=world.tokens["writer"])
    assert r.status == 200 and r.json()["description"] == "ok"
    r = world.api.patch(url, json={"rules": {}}, token=world.tokens["owner"])
    assert r.status == 200, r.body
