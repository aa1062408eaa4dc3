"""``/v1/openapi.json`` is a valid OpenAPI 3.1 document that describes every route, and
the server keeps to it: schemathesis generates requests from it and checks that no
answer is a 5xx and every answer's status, content type, headers and body conform.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate

from datastore.errors import DatasetNotFound
from datastore.store import Store
from httpapi.routes import ROUTES_KEY
from tests.httpapi.api_support import Api, make_api

MAX_EXAMPLES = 12
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = Store.open(tmp_path_factory.mktemp("openapi") / "store")
    api = make_api(store)
    yield api
    api.close()
    store.close()


@pytest.fixture(scope="module")
def document(served: Api) -> dict[str, Any]:
    r = served.get("/v1/openapi.json", token=None)
    assert r.status == 200
    return r.json()


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_and_parameter_is_documented(served: Api, document: dict[str, Any]) -> None:
    for route in served.app[ROUTES_KEY]:
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        op = document["paths"][path][route.method.lower()]
        assert op["summary"] and op["responses"], (route.method, path)
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (route.method, path)
        if route.method in ("POST", "PUT", "PATCH"):
            assert "requestBody" in op, (route.method, path)
        if route.access != "public":
            assert "401" in op["responses"], (route.method, path)
        for status, resp in op["responses"].items():
            if int(status) >= 400:
                assert resp["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }


def _ensure_fixture(store: Store) -> None:
    """Keep dataset ``d`` (a file, a tagged snapshot) around whatever the fuzzer deleted."""
    try:
        store.dataset("d")
    except DatasetNotFound:
        store.create_dataset("d")
    if not any(e.path == "a.csv" for e in store.entries("d")):
        store.put_bytes("d", "a.csv", b"id,v\n1,2\n")
    if "v1" not in store.info("d").tags:
        store.snapshot("d", "v1", "fixture", [], author="root")


def _operations(document: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(served: Api, operation: Any, fixed: dict[str, Any] | None) -> list[str]:
    headers = {"Authorization": f"Bearer {served.token}"}
    failures: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(path_parameters=fixed))
    def run(case: Any) -> None:
        _ensure_fixture(served.store)
        response = case.call(base_url=served.base.rstrip("/"), headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Exception as exc:  # hypothesis re-raises the first (shrunk) failure
        failures.append(f"{operation.label}: {exc}"[:3000])
    return failures


def test_schemathesis_finds_no_5xx_and_no_nonconforming_answer(
    served: Api, document: dict[str, Any]
) -> None:
    failures: list[str] = []
    for operation in _operations(document):
        params = {p["name"] for p in operation.definition.raw.get("parameters", [])}
        fixed: dict[str, Any] = {}
        if "name" in params:
            fixed["name"] = "d"
        if "path" in params:
            fixed["path"] = "a.csv"
        failures += _fuzz(served, operation, None)
        if fixed:
            failures += _fuzz(served, operation, fixed)
    assert not failures, "\n\n".join(failures[:20])
