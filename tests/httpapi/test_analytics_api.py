"""The table routes through aiohttp's test client: shapes, refs, errors, export, OpenAPI."""

from __future__ import annotations

import io
import json
import time

import pandas as pd

from datastore.store import Store
from tests.httpapi.api_support import Api, api_fixture  # noqa: F401

CSV_V1 = b"id,amount,city\n1,2.5,a\n2,3.5,b\n3,,a\n4,100,c\n"
CSV_V2 = b"id,amount,city\n1,2.5,a\n2,4.5,b\n5,1,a\n"


def _setup(api: Api) -> None:
    assert api.post("/v1/datasets", json={"name": "sales"}).status == 201
    assert api.put("/v1/datasets/sales/files/raw/t.csv", data=CSV_V1).status == 201
    assert api.post("/v1/datasets/sales/snapshots", json={"tag": "v1"}).status == 201
    assert api.put("/v1/datasets/sales/files/raw/t.csv", data=CSV_V2).status == 200
    api.put("/v1/datasets/sales/files/notes.txt", data=b"just words here\n")


def test_schema_preview_stats_quality(api: Api) -> None:
    _setup(api)
    schema = api.get("/v1/datasets/sales@v1/schema/raw/t.csv").json()
    assert schema["row_count"] == 4 and schema["format"] == "csv"
    assert schema["columns"] == [
        {"name": "id", "dtype": "int64"},
        {"name": "amount", "dtype": "float64"},
        {"name": "city", "dtype": "object"},
    ]
    head = api.get("/v1/datasets/sales/schema/raw%2Ft.csv").json()
    assert head["row_count"] == 3
    preview = api.get("/v1/datasets/sales@v1/preview/raw/t.csv?limit=2").json()
    assert preview["rows"] == [
        {"id": 1, "amount": 2.5, "city": "a"},
        {"id": 2, "amount": 3.5, "city": "b"},
    ]
    assert len(api.get("/v1/datasets/sales@v1/preview/raw/t.csv").json()["rows"]) == 4
    assert api.get("/v1/datasets/sales/preview/raw/t.csv?limit=-1").code == "invalid_request"
    assert api.get("/v1/datasets/sales/preview/raw/t.csv?limit=x").status == 400
    stats = api.get("/v1/datasets/sales@v1/stats/raw/t.csv").json()
    assert list(stats)[:7] == [
        "path",
        "object",
        "format",
        "row_count",
        "column_count",
        "duplicate_rows",
        "columns",
    ]
    amount = stats["columns"]["amount"]
    assert amount["missing"] == 1 and amount["missing_percent"] == 25.0
    assert amount["mean"] == 35.333333333333336 and len(amount["histogram"]["counts"]) == 10
    assert stats["columns"]["city"]["top_values"] == {"a": 2, "b": 1, "c": 1}
    assert stats["correlations"]["id"]["id"] == 1.0
    start = time.perf_counter()
    again = api.get("/v1/datasets/sales@v1/stats/raw/t.csv")
    assert again.json() == stats and time.perf_counter() - start < 0.5
    quality = api.get("/v1/datasets/sales@v1/quality/raw/t.csv").json()
    assert 0 <= quality["overall_score"] <= 100
    assert {c["name"] for c in quality["checks"]} >= {
        "missing_values",
        "duplicate_rows",
        "constant_columns",
        "mixed_types",
        "outliers",
        "empty_file",
    }


def test_compare_route(api: Api) -> None:
    _setup(api)
    doc = api.get("/v1/datasets/sales/compare/raw/t.csv?from=v1&key=id").json()
    assert doc["summary"]["from"] == "sales@v1" and doc["summary"]["to"] == "sales"
    assert doc["summary"]["rows_diff"] == -1
    assert doc["rows"] == {**doc["rows"], "added": 1, "removed": 2, "changed": 1, "unchanged": 1}
    assert doc["column_diffs"]["amount"]["shift_level"] in ("low", "moderate", "high")
    snap = api.post("/v1/datasets/sales/snapshots", json={"tag": "v2"}).json()
    pinned = api.get("/v1/datasets/sales@v2/compare/raw/t.csv?from=v1").json()
    assert pinned["summary"]["to"] == "sales@v2" and "rows" not in pinned
    assert pinned["summary"]["to_snapshot"] == snap["id"]
    assert api.get("/v1/datasets/sales/compare/raw/t.csv").code == "invalid_request"
    assert api.get("/v1/datasets/sales/compare/raw/t.csv?from=v9").code == "ref_not_found"
    bad_key = api.get("/v1/datasets/sales/compare/raw/t.csv?from=v1&key=nope")
    assert bad_key.status == 400


def test_export_route(api: Api) -> None:
    _setup(api)
    for fmt, ctype, read in (
        ("csv", "text/csv", lambda b: pd.read_csv(io.BytesIO(b))),
        ("parquet", "application/vnd.apache.parquet", lambda b: pd.read_parquet(io.BytesIO(b))),
        ("jsonl", "application/x-ndjson", lambda b: pd.read_json(io.BytesIO(b), lines=True)),
    ):
        resp = api.get(f"/v1/datasets/sales@v1/export/raw/t.csv?format={fmt}")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith(ctype)
        assert list(read(resp.body)["id"]) == [1, 2, 3, 4]
    assert (
        api.get("/v1/datasets/sales/export/raw/t.csv")
        .headers["Content-Type"]
        .startswith("text/csv")
    )
    assert api.get("/v1/datasets/sales/export/raw/t.csv?format=xlsx").status == 400
    assert list((api.store.root / "tmp-analytics").glob("export-*")) == []


def test_errors_map_to_statuses(api: Api) -> None:
    _setup(api)
    notab = api.get("/v1/datasets/sales/stats/notes.txt")
    assert notab.status == 415 and notab.code == "not_tabular"
    api.put("/v1/datasets/sales/files/bad.csv", data=b"a,b\n1,2\n3,4,5\n")
    ragged = api.get("/v1/datasets/sales/stats/bad.csv")
    assert ragged.status == 415 and "line 3" in ragged.json()["error"]["message"]
    assert api.get("/v1/datasets/sales/stats/missing.csv").code == "file_not_found"
    assert api.get("/v1/datasets/nope/stats/a.csv").status == 404
    assert api.get("/v1/datasets/sales@v7/schema/raw/t.csv").code == "ref_not_found"
    assert api.get("/v1/datasets/sales/stats/raw").status == 400  # a directory
    assert api.get("/v1/datasets/sales/stats/raw/t.csv", token=None).status == 401


def test_read_grant_is_enough_and_needed(api: Api, store: Store) -> None:
    _setup(api)
    access = store.access()
    reader = access.create_token("reader").secret
    stranger = access.create_token("stranger").secret
    access.grant("sales", "reader", "read")
    assert api.get("/v1/datasets/sales/stats/raw/t.csv", token=reader).status == 200
    assert api.get("/v1/datasets/sales/stats/raw/t.csv", token=stranger).status == 404


def test_openapi_lists_the_table_routes(api: Api) -> None:
    doc = api.get("/v1/openapi.json").json()
    for verb in ("schema", "preview", "stats", "quality", "compare", "export"):
        op = doc["paths"][f"/v1/datasets/{{name}}/{verb}/{{path}}"]["get"]
        assert "200" in op["responses"] and "415" in op["responses"]
    compare = doc["paths"]["/v1/datasets/{name}/compare/{path}"]["get"]
    assert {p["name"] for p in compare["parameters"]} >= {"name", "path", "from", "to", "key"}
    json.dumps(doc)  # serialisable
