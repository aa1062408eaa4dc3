"""Every SPEC section 6 route through aiohttp's test server: success and error paths."""

from __future__ import annotations

import json
import re

from datastore.store import Store
from tests.httpapi.api_support import Api, api_fixture, make_api  # noqa: F401

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def create(api: Api, name: str = "sales", **body: object) -> dict[str, object]:
    r = api.post("/v1/datasets", json={"name": name, **body})
    assert r.status == 201, r.body
    return r.json()


def put(api: Api, name: str, path: str, data: bytes, **kw: object) -> dict[str, object]:
    r = api.put(f"/v1/datasets/{name}/files/{path}", data=data, **kw)
    assert r.status in (200, 201), r.body
    return r.json()


def snapshot(api: Api, name: str, **body: object) -> dict[str, object]:
    r = api.post(f"/v1/datasets/{name}/snapshots", json=body)
    assert r.status in (200, 201), r.body
    return r.json()


# datasets ---------------------------------------------------------------------------


def test_create_get_update_delete_dataset(api: Api) -> None:
    doc = create(api, "sales", description="Q1 sales", metadata={"team": "bi"})
    assert doc["name"] == "sales" and doc["description"] == "Q1 sales"
    assert doc["metadata"] == {"team": "bi"}
    assert ISO_Z.match(str(doc["created_at"])) and ISO_Z.match(str(doc["updated_at"]))
    assert doc["file_count"] == 0 and doc["dirty"] in (True, False)
    got = api.get("/v1/datasets/sales").json()
    for key in ("id", "name", "description", "metadata", "created_at", "updated_at"):
        assert got[key] == doc[key]
    for key in ("file_count", "size_bytes", "latest_snapshot", "tags", "dirty"):
        assert key in got
    r = api.patch("/v1/datasets/sales", json={"description": "all sales"})
    assert r.status == 200 and r.json()["description"] == "all sales"
    assert r.json()["metadata"] == {"team": "bi"}
    assert api.delete("/v1/datasets/sales").status == 204
    r = api.get("/v1/datasets/sales")
    assert (r.status, r.code) == (404, "dataset_not_found")


def test_create_errors(api: Api) -> None:
    create(api, "sales")
    r = api.post("/v1/datasets", json={"name": "sales"})
    assert (r.status, r.code) == (409, "dataset_exists")
    for bad in ("Sales", "a/b", "x@y", "", "-x", "a" * 101):
        r = api.post("/v1/datasets", json={"name": bad})
        assert (r.status, r.code) == (400, "invalid_name"), bad
    r = api.post("/v1/datasets", json={"description": "no name"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.post("/v1/datasets", json={"name": "x", "metadata": "not an object"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.post("/v1/datasets", data=b"{nope", headers={"Content-Type": "application/json"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.post("/v1/datasets", json=["sales"])
    assert (r.status, r.code) == (400, "invalid_request")


def test_list_datasets_envelope_search_sort_and_paging(api: Api) -> None:
    for name, desc in (("beta", "second"), ("alpha", "first"), ("gamma", "holds sales")):
        create(api, name, description=desc)
    put(api, "gamma", "big.bin", b"x" * 1000)
    put(api, "alpha", "small.bin", b"x" * 10)
    doc = api.get("/v1/datasets").json()
    assert set(doc) == {"items", "total", "limit", "offset"}
    assert (doc["total"], doc["limit"], doc["offset"]) == (3, 100, 0)
    assert [d["name"] for d in doc["items"]] == ["alpha", "beta", "gamma"]
    desc = api.get("/v1/datasets?sort=name&order=desc").json()
    assert [d["name"] for d in desc["items"]] == ["gamma", "beta", "alpha"]
    by_size = api.get("/v1/datasets?sort=size_bytes&order=desc").json()
    assert [d["name"] for d in by_size["items"]] == ["gamma", "alpha", "beta"]
    by_created = api.get("/v1/datasets?sort=created_at").json()
    assert [d["name"] for d in by_created["items"]] == ["beta", "alpha", "gamma"]
    assert [d["name"] for d in api.get("/v1/datasets?search=sales").json()["items"]] == ["gamma"]
    assert [d["name"] for d in api.get("/v1/datasets?search=ALP").json()["items"]] == ["alpha"]
    page = api.get("/v1/datasets?limit=1&offset=1").json()
    assert ([d["name"] for d in page["items"]], page["total"]) == (["beta"], 3)
    assert api.get("/v1/datasets?limit=5000").json()["limit"] == 1000
    for bad in ("limit=-1", "limit=x", "offset=-3", "sort=color", "order=up"):
        r = api.get(f"/v1/datasets?{bad}")
        assert (r.status, r.code) == (400, "invalid_request"), bad


def test_summary_lineage_and_store_stats(api: Api) -> None:
    create(api, "raw")
    put(api, "raw", "a.csv", b"x,y\n1,2\n")
    put(api, "raw", "img/p.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    s1 = snapshot(api, "raw", tag="v1")
    summary = api.get("/v1/datasets/raw/summary").json()
    assert summary["file_count"] == 2 and summary["snapshot_count"] == 1
    assert summary["size_bytes"] == 8 + 28
    assert summary["by_extension"]["csv"] == {"count": 1, "size_bytes": 8}
    assert sum(c["count"] for c in summary["by_category"].values()) == 2
    put(api, "raw", "b.txt", b"later")
    assert api.get("/v1/datasets/raw@v1/summary").json()["file_count"] == 2
    assert api.get("/v1/datasets/raw/summary").json()["file_count"] == 3
    create(api, "clean")
    put(api, "clean", "a.csv", b"x,y\n1,2\n")
    s2 = snapshot(api, "clean", sources=["raw@v1"])
    lin = api.get("/v1/datasets/clean/lineage").json()
    assert lin["dataset"] == "clean" and lin["parents"][0]["id"] == s2["id"]
    assert lin["sources"][0]["dataset"] == "raw" and lin["sources"][0]["snapshot"] == s1["id"]
    up = api.get("/v1/datasets/raw/lineage").json()
    assert up["consumers"] == [{"dataset": "clean", "snapshot": s2["id"], "source": s1["id"]}]
    stats = api.get("/v1/stats").json()
    assert stats["datasets"] == 2 and stats["snapshots"] == 2
    assert stats["physical_bytes"] > 0 and stats["logical_bytes"] >= stats["physical_bytes"]
    assert stats["dedup_ratio"] >= 1.0
    r = api.get("/v1/datasets/nope/summary")
    assert (r.status, r.code) == (404, "dataset_not_found")


# files ------------------------------------------------------------------------------


def test_put_get_head_delete_file(api: Api) -> None:
    create(api, "sales")
    first = api.put("/v1/datasets/sales/files/q1/jan.csv", data=b"a,b\n1,2\n")
    assert first.status == 201
    entry = first.json()
    assert entry["path"] == "q1/jan.csv" and entry["type"] == "file" and entry["size"] == 8
    assert entry["category"] == "tabular" and len(entry["object"]) == 32
    again = api.put("/v1/datasets/sales/files/q1/jan.csv", data=b"a,b\n3,4\n")
    assert again.status == 200
    refused = api.put(
        "/v1/datasets/sales/files/q1/jan.csv", data=b"zzz", headers={"If-None-Match": "*"}
    )
    assert (refused.status, refused.code) == (412, "precondition_failed")
    got = api.get("/v1/datasets/sales/files/q1/jan.csv")
    assert got.status == 200 and got.body == b"a,b\n3,4\n"
    assert got.headers["ETag"] == f'"{again.json()["object"]}"'
    head = api.head("/v1/datasets/sales/files/q1/jan.csv")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == "8" and head.headers["ETag"] == got.headers["ETag"]
    encoded = api.get("/v1/datasets/sales/files/q1%2Fjan.csv")
    assert encoded.status == 200 and encoded.body == got.body
    r = api.delete("/v1/datasets/sales/files/q1/jan.csv")
    assert r.status == 200 and r.json() == {"removed": ["q1/jan.csv"]}
    r = api.get("/v1/datasets/sales/files/q1/jan.csv")
    assert (r.status, r.code) == (404, "file_not_found")
    r = api.delete("/v1/datasets/sales/files/q1/jan.csv")
    assert (r.status, r.code) == (404, "file_not_found")
    r = api.get("/v1/datasets/sales/files/q1")
    assert r.status == 400 and r.code == "invalid_path"


def test_list_files_prefix_recursive_category_paging(api: Api) -> None:
    create(api, "d")
    for path in ("top.txt", "a/one.csv", "a/two.csv", "a/deep/three.json", "b/x.bin"):
        put(api, "d", path, path.encode())
    root = api.get("/v1/datasets/d/files").json()
    assert set(root) == {"items", "total", "limit", "offset"}
    assert {(e["path"], e["type"]) for e in root["items"]} == {
        ("top.txt", "file"),
        ("a", "dir"),
        ("b", "dir"),
    }
    a = api.get("/v1/datasets/d/files?prefix=a").json()["items"]
    assert {e["path"] for e in a} == {"a/one.csv", "a/two.csv", "a/deep"}
    rec = api.get("/v1/datasets/d/files?prefix=a&recursive=true").json()["items"]
    assert {e["path"] for e in rec} == {"a/one.csv", "a/two.csv", "a/deep/three.json"}
    tab = api.get("/v1/datasets/d/files?recursive=true&category=tabular").json()["items"]
    assert {e["path"] for e in tab} == {"a/one.csv", "a/two.csv"}
    for e in rec:
        assert set(e) >= {"path", "type", "size", "object", "mtime", "category"}
        assert set(e) >= {"description", "metadata"}
    page = api.get("/v1/datasets/d/files?recursive=true&limit=2&offset=1").json()
    assert (len(page["items"]), page["total"], page["limit"], page["offset"]) == (2, 5, 2, 1)
    r = api.get("/v1/datasets/d/files?recursive=maybe")
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.get("/v1/datasets/d/files?prefix=nope")
    assert r.status == 404 and r.code == "file_not_found"


def test_multipart_upload_single_and_many(api: Api) -> None:
    create(api, "docs")
    r = api.upload("docs", [("paper.pdf", b"%PDF-1.4 one")])
    assert r.status == 201
    assert [e["path"] for e in r.json()["files"]] == ["paper.pdf"]
    r = api.upload(
        "docs",
        [("ignored.bin", b"renamed")],
        {"path": "renamed/it.bin", "description": "hello", "metadata": '{"k": 1}'},
    )
    assert r.status == 201
    (e,) = r.json()["files"]
    assert (e["path"], e["description"], e["metadata"]) == ("renamed/it.bin", "hello", {"k": 1})
    r = api.upload("docs", [("a.txt", b"a"), ("b.txt", b"b")], {"path": "batch"})
    assert r.status == 201
    assert sorted(e["path"] for e in r.json()["files"]) == ["batch/a.txt", "batch/b.txt"]
    assert api.get("/v1/datasets/docs/files/batch/b.txt").body == b"b"
    r = api.upload("docs", [("c.txt", b"c"), ("d.txt", b"d")])
    assert sorted(e["path"] for e in r.json()["files"]) == ["c.txt", "d.txt"]
    # fields other platforms send are ignored
    r = api.upload("docs", [("e.txt", b"e")], {"purpose": "fine-tune", "project_id": "7"})
    assert r.status == 201


def test_multipart_errors(api: Api) -> None:
    create(api, "docs")
    r = api.upload("docs", [], {"path": "x"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.upload("docs", [("a.txt", b"1")], {"metadata": "{bad json"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.upload("docs", [("a.txt", b"1")], {"metadata": "[1]"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.upload("docs", [("a.txt", b"1"), ("a.txt", b"2")])
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.post("/v1/datasets/docs/files", json={"file": "x"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.upload("nope", [("a.txt", b"1")])
    assert (r.status, r.code) == (404, "dataset_not_found")
    assert api.get("/v1/datasets/docs/files").json()["total"] == 0


def test_status_shows_staged_changes(api: Api) -> None:
    create(api, "d")
    put(api, "d", "a.txt", b"a")
    doc = api.get("/v1/datasets/d/status").json()
    assert doc["dataset"] == "d" and doc["dirty"] is True and doc["task"] is None
    assert "a.txt" in doc["staged"]["added"]
    assert set(doc["staged"]) >= {"added", "modified", "removed"}
    snapshot(api, "d")
    put(api, "d", "a.txt", b"b")
    api.delete("/v1/datasets/d/files/a.txt")
    doc = api.get("/v1/datasets/d/status").json()
    assert doc["staged"]["removed"] == ["a.txt"]


# versions ---------------------------------------------------------------------------


def test_snapshots_tags_and_read_by_ref(api: Api) -> None:
    create(api, "d")
    put(api, "d", "a.txt", b"one")
    s1 = api.post("/v1/datasets/d/snapshots", json={"tag": "v1", "message": "first"})
    assert s1.status == 201
    snap1 = s1.json()
    assert snap1["created"] is True and snap1["tags"] == ["v1"] and snap1["message"] == "first"
    assert snap1["file_count"] == 1 and snap1["author"] == "root"
    assert ISO_Z.match(snap1["created_at"])
    clean = api.post("/v1/datasets/d/snapshots", json={"tag": "also"})
    assert clean.status == 200 and clean.json()["created"] is False
    assert clean.json()["id"] == snap1["id"]
    put(api, "d", "a.txt", b"two")
    snap2 = snapshot(api, "d", tag="v2")
    assert snap2["parent"] == snap1["id"]
    assert api.get("/v1/datasets/d@v1/files/a.txt").body == b"one"
    assert api.get(f"/v1/datasets/d@{snap1['id'][:8]}/files/a.txt").body == b"one"
    assert api.get("/v1/datasets/d@latest/files/a.txt").body == b"two"
    assert api.get("/v1/datasets/d@v1").json()["name"] == "d"
    snaps = api.get("/v1/datasets/d/snapshots").json()
    assert [s["id"] for s in snaps["items"]] == [snap2["id"], snap1["id"]]
    assert snaps["total"] == 2
    one = api.get(f"/v1/datasets/d/snapshots/{snap1['id']}").json()
    assert one["id"] == snap1["id"] and sorted(one["tags"]) == ["also", "v1"]
    assert api.get("/v1/datasets/d/snapshots/v2").json()["id"] == snap2["id"]
    r = api.get("/v1/datasets/d/snapshots/deadbeefdeadbeef")
    assert (r.status, r.code) == (404, "ref_not_found")
    r = api.get("/v1/datasets/d@nope/files/a.txt")
    assert (r.status, r.code) == (404, "ref_not_found")
    r = api.put("/v1/datasets/d@v1/files/a.txt", data=b"x")
    assert (r.status, r.code) == (409, "read_only_ref")
    r = api.post("/v1/datasets/d@v1/snapshots", json={})
    assert (r.status, r.code) == (409, "read_only_ref")
    r = api.delete("/v1/datasets/d@v1/files/a.txt")
    assert (r.status, r.code) == (409, "read_only_ref")
    r = api.upload("d@v1", [("x.txt", b"x")])
    assert (r.status, r.code) == (409, "read_only_ref")
    r = api.post("/v1/datasets/d/snapshots", json={"tag": "v1"})
    assert (r.status, r.code) == (409, "tag_exists")
    r = api.post("/v1/datasets/d/snapshots", json={"tag": "latest"})
    assert (r.status, r.code) == (400, "invalid_name")
    r = api.post("/v1/datasets/d/snapshots", json={"sources": "raw@v1"})
    assert (r.status, r.code) == (400, "invalid_request")


def test_tag_routes(api: Api) -> None:
    create(api, "d")
    put(api, "d", "a.txt", b"one")
    s1 = snapshot(api, "d")
    put(api, "d", "a.txt", b"two")
    s2 = snapshot(api, "d")
    r = api.put("/v1/datasets/d/tags/prod", json={"snapshot": s1["id"]})
    assert r.status == 201
    assert r.json()["tag"] == "prod" and r.json()["snapshot"] == s1["id"]
    r = api.put("/v1/datasets/d/tags/prod", json={"snapshot": s2["id"]})
    assert (r.status, r.code) == (409, "tag_exists")
    r = api.put("/v1/datasets/d/tags/prod", json={"snapshot": s2["id"], "force": True})
    assert r.status == 200
    history = r.json()["history"]
    assert [h["snapshot"] for h in history] == [s1["id"], s2["id"]]
    assert all(h["by"] == "root" and ISO_Z.match(h["at"]) for h in history)
    assert api.get("/v1/datasets/d/tags/prod").json() == r.json()
    tags = api.get("/v1/datasets/d/tags").json()
    assert tags["items"] == [{"tag": "prod", "snapshot": s2["id"]}] and tags["total"] == 1
    r = api.put("/v1/datasets/d/tags/bad:tag", json={"snapshot": s1["id"]})
    assert (r.status, r.code) == (400, "invalid_name")
    r = api.put("/v1/datasets/d/tags/x", json={"snapshot": "ffffffffff"})
    assert (r.status, r.code) == (404, "ref_not_found")
    r = api.put("/v1/datasets/d/tags/x", json={})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.put("/v1/datasets/d/tags/x", json={"snapshot": s1["id"], "force": "yes"})
    assert (r.status, r.code) == (400, "invalid_request")
    assert api.delete("/v1/datasets/d/tags/prod").status == 204
    r = api.get("/v1/datasets/d/tags/prod")  # gone, with every move kept, the removal last
    assert r.status == 200 and r.json()["snapshot"] is None
    assert [h["snapshot"] for h in r.json()["history"]][-2:] == [s2["id"], None]
    assert r.json()["history"][-1]["by"] == "root"
    r = api.get("/v1/datasets/d@prod/files")
    assert (r.status, r.code) == (404, "ref_not_found")
    r = api.delete("/v1/datasets/d/tags/prod")
    assert (r.status, r.code) == (404, "ref_not_found")
    r = api.get("/v1/datasets/d/tags/never")
    assert (r.status, r.code) == (404, "ref_not_found")
    r = api.put("/v1/datasets/d/tags/head", json={"snapshot": s1["id"]})
    assert (r.status, r.code) == (400, "invalid_name")
    put(api, "d", "h.txt", b"in the head")
    assert api.get("/v1/datasets/d@head/files/h.txt").body == b"in the head"


def test_diff(api: Api) -> None:
    create(api, "d")
    put(api, "d", "keep.txt", b"same")
    put(api, "d", "change.txt", b"before")
    put(api, "d", "drop.txt", b"bye")
    snapshot(api, "d", tag="v1")
    put(api, "d", "change.txt", b"after!")
    api.delete("/v1/datasets/d/files/drop.txt")
    put(api, "d", "new.txt", b"hello")
    doc = api.get("/v1/datasets/d/diff?from=v1").json()
    assert set(doc) >= {"from", "to", "added", "removed", "modified", "renamed", "summary"}
    flat = json.dumps(doc)
    assert "new.txt" in json.dumps(doc["added"]) and "drop.txt" in json.dumps(doc["removed"])
    assert "change.txt" in json.dumps(doc["modified"]) and "keep.txt" not in flat
    snapshot(api, "d", tag="v2")
    same = api.get("/v1/datasets/d@v1/diff?to=v2").json()
    assert json.dumps(same["added"]) == json.dumps(doc["added"])
    r = api.get("/v1/datasets/d/diff")
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.get("/v1/datasets/d/diff?from=nope")
    assert (r.status, r.code) == (404, "ref_not_found")


# grants and tokens ------------------------------------------------------------------


def test_grants_routes(api: Api) -> None:
    create(api, "d")
    r = api.post("/v1/datasets/d/grants", json={"principal": "alice", "permission": "read"})
    assert r.status == 201 and r.json() == {"principal": "alice", "permission": "read"}
    r = api.post("/v1/datasets/d/grants", json={"principal": "alice", "permission": "write"})
    assert r.status == 200
    grants = api.get("/v1/datasets/d/grants").json()
    assert grants["items"] == [{"principal": "alice", "permission": "write"}]
    r = api.post("/v1/datasets/d/grants", json={"principal": "alice", "permission": "owner"})
    assert (r.status, r.code) == (400, "invalid_request")
    r = api.post("/v1/datasets/d/grants", json={"principal": "Alice!", "permission": "read"})
    assert (r.status, r.code) == (400, "invalid_name")
    assert api.delete("/v1/datasets/d/grants/alice").status == 204
    assert api.get("/v1/datasets/d/grants").json()["items"] == []
    r = api.post("/v1/datasets/nope/grants", json={"principal": "a", "permission": "read"})
    assert (r.status, r.code) == (404, "dataset_not_found")


def test_token_routes(api: Api) -> None:
    r = api.post("/v1/tokens", json={"user": "alice"})
    assert r.status == 201
    doc = r.json()
    assert set(doc) >= {"id", "user", "admin", "token"}
    assert doc["user"] == "alice" and doc["admin"] is False
    alice = doc["token"]
    listed = api.get("/v1/tokens").json()
    assert {t["user"] for t in listed["items"]} == {"root", "alice"}
    assert all("token" not in t for t in listed["items"])
    assert alice not in json.dumps(listed)
    mine = api.get("/v1/tokens", token=alice).json()
    assert [t["user"] for t in mine["items"]] == ["alice"]
    root_id = next(t["id"] for t in listed["items"] if t["user"] == "root")
    r = api.delete(f"/v1/tokens/{root_id}", token=alice)
    assert r.status == 404
    r = api.post("/v1/tokens", json={"user": "bob"}, token=alice)
    assert (r.status, r.code) == (403, "forbidden")
    r = api.post("/v1/tokens", json={"user": "Bad User"})
    assert (r.status, r.code) == (400, "invalid_name")
    assert api.delete(f"/v1/tokens/{doc['id']}", token=alice).status == 204
    r = api.get("/v1/datasets", token=alice)
    assert (r.status, r.code) == (401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = api.delete(f"/v1/tokens/{doc['id']}")
    assert (r.status, r.code) == (404, "not_found")


# service routes ---------------------------------------------------------------------


def test_healthz_and_metrics_need_no_token(api: Api) -> None:
    create(api, "secret-project")
    put(api, "secret-project", "alice-notes.txt", b"x" * 100)
    api.get("/v1/datasets/secret-project/files/alice-notes.txt")
    assert api.get("/healthz", token=None).json() == {"status": "ok"}
    r = api.get("/metrics", token=None)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    for metric in (
        "ds_http_requests_total",
        "ds_http_request_duration_seconds_bucket",
        "ds_http_request_bytes_total",
        "ds_http_response_bytes_total",
        "ds_datasets 1",
        "ds_objects 1",
    ):
        assert metric in text, metric
    assert 'route="/v1/datasets/{name}/files/{path}"' in text
    assert "secret-project" not in text and "alice" not in text and "root" not in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z_]+(\{.*\})? [0-9.e+-]+", line), line
    sent = re.search(r"ds_http_response_bytes_total (\d+)", text)
    received = re.search(r"ds_http_request_bytes_total (\d+)", text)
    assert sent and int(sent.group(1)) >= 100
    assert received and int(received.group(1)) >= 100


def test_unknown_route_and_method_use_the_error_shape(api: Api) -> None:
    r = api.get("/v1/nothing")
    assert r.status == 404 and r.code == "not_found"
    r = api.request("PATCH", "/v1/tokens")
    assert r.status == 405 and r.code == "method_not_allowed"


def test_every_spec_route_is_in_the_table(api: Api) -> None:
    """The SPEC section 6 table (less the analytics/task routes another module adds)."""
    spec = {
        ("GET", "/v1/datasets"),
        ("POST", "/v1/datasets"),
        ("GET", "/v1/datasets/{name}"),
        ("PATCH", "/v1/datasets/{name}"),
        ("DELETE", "/v1/datasets/{name}"),
        ("GET", "/v1/datasets/{name}/files"),
        ("POST", "/v1/datasets/{name}/files"),
        ("PUT", "/v1/datasets/{name}/files/{path}"),
        ("GET", "/v1/datasets/{name}/files/{path}"),
        ("HEAD", "/v1/datasets/{name}/files/{path}"),
        ("DELETE", "/v1/datasets/{name}/files/{path}"),
        ("GET", "/v1/datasets/{name}/status"),
        ("POST", "/v1/datasets/{name}/snapshots"),
        ("GET", "/v1/datasets/{name}/snapshots"),
        ("GET", "/v1/datasets/{name}/snapshots/{id}"),
        ("GET", "/v1/datasets/{name}/tags"),
        ("GET", "/v1/datasets/{name}/tags/{tag}"),
        ("PUT", "/v1/datasets/{name}/tags/{tag}"),
        ("DELETE", "/v1/datasets/{name}/tags/{tag}"),
        ("GET", "/v1/datasets/{name}/diff"),
        ("POST", "/v1/datasets/{name}/forget"),
        ("GET", "/v1/datasets/{name}/summary"),
        ("GET", "/v1/datasets/{name}/archive"),
        ("GET", "/v1/datasets/{name}/lineage"),
        ("GET", "/v1/datasets/{name}/grants"),
        ("POST", "/v1/datasets/{name}/grants"),
        ("DELETE", "/v1/datasets/{name}/grants/{principal}"),
        ("POST", "/v1/tokens"),
        ("GET", "/v1/tokens"),
        ("DELETE", "/v1/tokens/{id}"),
        ("GET", "/v1/stats"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    }
    doc = api.get("/v1/openapi.json", token=None).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert spec <= documented, spec - documented


def test_forget_route(api: Api) -> None:
    create(api, "raw")
    ids = []
    for i in range(3):
        put(api, "raw", f"f{i}.txt", b"%d" % i)
        ids.append(snapshot(api, "raw", tag="v1" if i == 0 else None)["id"])
    create(api, "clean")
    put(api, "clean", "a.txt", b"a")
    snapshot(api, "clean", sources=[f"raw@{ids[1]}"])
    url = "/v1/datasets/raw/forget"
    r = api.post(url, json={"keep_last": 1, "dry_run": True})
    assert r.status == 200 and r.json() == {
        "dataset": "raw",
        "forgotten": [ids[1]],
        "kept": [ids[2], ids[0]],
        "dry_run": True,
    }
    for bad in (
        {},
        {"keep_lst": 1},
        {"keep_last": -1},
        {"keep_last": "1"},
        {"keep_within": "soon"},
        {"snapshots": "v1"},
        {"snapshots": [1]},
        {"snapshots": ["head"]},
    ):
        r = api.post(url, json=bad)
        assert (r.status, r.code) == (400, "invalid_request"), bad
    r = api.post(url, json={"snapshots": [ids[2]]})
    assert (r.status, r.code) == (409, "conflict")
    r = api.post("/v1/datasets/raw@v1/forget", json={"keep_last": 1})
    assert (r.status, r.code) == (409, "read_only_ref")
    r = api.post(url, json={"snapshots": ["v1"], "keep_within": "1d"})
    assert r.status == 200 and r.json()["forgotten"] == [ids[0]]
    assert r.json()["kept"] == [ids[2], ids[1]]
    r = api.post(url, json={"snapshots": [ids[1]]})
    assert r.status == 200 and r.json()["forgotten"] == [ids[1]]
    assert api.get(f"/v1/datasets/raw/snapshots/{ids[1]}").code == "ref_not_found"
    lin = api.get("/v1/datasets/clean/lineage").json()
    assert lin["sources"][0]["forgotten"] is True
    assert api.get("/v1/datasets/raw/snapshots").json()["total"] == 1


def test_no_auth_mode_is_anonymous_admin(store: Store) -> None:
    client = make_api(store, auth=False)
    try:
        client.token = None
        assert client.post("/v1/datasets", json={"name": "open"}).status == 201
        assert client.get("/v1/datasets").json()["total"] == 1
    finally:
        client.close()
