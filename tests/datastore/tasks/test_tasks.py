"""Processing tasks through the API and the CLI: progress, errors, 409, interrupted tasks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from datastore.store import Store
from datastore.tasks import runner as tasks
from datastore.tasks.runner import TaskRunner
from datastore.times import utc_now
from tests.conftest import parse
from tests.httpapi.api_support import Api, make_api

BROKEN = {
    "tables/broken.csv": b"a,b\n1,2\n3\n",
    "tables/broken.jsonl": b'{"a": 1}\n{"a":\n',
}


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    client = make_api(store)
    yield client
    client.close()


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each file take a little time, so progress can be watched while it moves."""
    real = tasks.check_file

    def slow(*args: Any, **kwargs: Any) -> str | None:
        time.sleep(0.02)
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "check_file", slow)
    monkeypatch.setattr(tasks, "PROGRESS_EVERY_SECONDS", 0.05)


def fill(store: Store, name: str, n: int = 100) -> None:
    store.create_dataset(name)
    for i in range(n):
        store.put_bytes(name, f"tables/t{i:03d}.csv", f"a,b\n{i},{i * 2}\n".encode())
    store.put_bytes(name, "notes/readme.md", b"# notes\n")
    store.put_bytes(name, "data/config.json", b'{"ok": true}')
    for path, data in BROKEN.items():
        store.put_bytes(name, path, data)


def poll(api: Api, task_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every distinct state of a task seen until it finishes."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = api.get(f"/v1/tasks/{task_id}")
        assert resp.status == 200, resp.body
        doc = resp.json()
        if (
            not seen
            or doc["progress"] != seen[-1]["progress"]
            or doc["status"] != seen[-1]["status"]
        ):
            seen.append(doc)
        if doc["status"] in ("completed", "failed"):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"task {task_id} did not finish: {seen[-1]}")


def test_process_progress_moves_until_completed_with_file_errors(
    store: Store, api: Api, slow_checks: None
) -> None:
    fill(store, "sales", 40)
    resp = api.post("/v1/datasets/sales/actions", json={"action": "process"})
    assert resp.status == 202, resp.body
    task_id = resp.json()["task_id"]
    assert resp.json()["status"] in ("queued", "processing")
    seen = poll(api, task_id)
    final = seen[-1]
    assert final["status"] == "completed"
    percents = [d["progress"]["percent_complete"] for d in seen]
    assert any(0 < p < 100 for p in percents), percents  # observed while moving
    assert percents == sorted(percents)
    assert final["progress"] == {
        "files_total": 44,
        "files_processed": 44,
        "files_failed": 2,
        "percent_complete": 100.0,
    }
    assert sorted(e["file"] for e in final["errors"]) == sorted(BROKEN)
    assert all(e["error"] for e in final["errors"])
    assert final["started_at"].endswith("Z") and final["finished_at"].endswith("Z")
    status = api.get("/v1/datasets/sales/status").json()
    assert status["task"]["id"] == task_id and status["task"]["status"] == "completed"


def test_second_task_on_a_dataset_is_409(store: Store, api: Api, slow_checks: None) -> None:
    fill(store, "busy", 60)
    first = api.post("/v1/datasets/busy/actions", json={"action": "validate"})
    assert first.status == 202
    second = api.post("/v1/datasets/busy/actions", json={"action": "process"})
    assert second.status == 409 and second.code == "processing_in_progress"
    poll(api, first.json()["task_id"])
    third = api.post("/v1/datasets/busy/actions", json={"action": "validate"})
    assert third.status == 202
    assert poll(api, third.json()["task_id"])[-1]["status"] == "completed"


def test_bad_actions_and_unknown_tasks(store: Store, api: Api) -> None:
    store.create_dataset("x")
    assert api.post("/v1/datasets/x/actions", json={"action": "explode"}).status == 400
    assert api.post("/v1/datasets/x/actions", json={}).code == "invalid_request"
    assert api.post("/v1/datasets/nope/actions", json={"action": "process"}).status == 404
    assert api.get("/v1/tasks/0123456789abcdef0123456789abcdef").status == 404
    assert api.post("/v1/datasets/x@latest/actions", json={"action": "process"}).status == 409


def test_validate_a_pinned_version(store: Store, api: Api) -> None:
    store.create_dataset("pinned")
    store.put_bytes("pinned", "ok.csv", b"a\n1\n")
    store.snapshot("pinned", tag="v1")
    store.put_bytes("pinned", "bad.json", b"{nope")
    resp = api.post("/v1/datasets/pinned/actions", json={"action": "validate", "ref": "v1"})
    final = poll(api, resp.json()["task_id"])[-1]
    assert final["status"] == "completed" and final["errors"] == []
    assert final["progress"]["files_total"] == 1
    head = api.post("/v1/datasets/pinned/actions", json={"action": "validate"})
    final = poll(api, head.json()["task_id"])[-1]
    assert [e["file"] for e in final["errors"]] == ["bad.json"]


def _orphan_task(store: Store, name: str) -> str:
    """A task row whose runner died (nobody holds its lock), as after a daemon crash."""
    task_id = "f" * 32
    store.catalog.insert_task(
        {
            "id": task_id,
            "dataset_id": store.dataset(name).id,
            "action": "process",
            "status": "processing",
            "progress": {"files_total": 10, "files_processed": 3, "files_failed": 0},
            "errors": [],
            "created_at": utc_now(),
            "started_at": utc_now(),
            "finished_at": None,
        }
    )
    return task_id


def test_daemon_restart_reports_interrupted_task_as_failed(store: Store) -> None:
    store.create_dataset("crashed")
    task_id = _orphan_task(store, "crashed")
    api = make_api(store)  # a daemon starting on the store reaps what the dead one left
    try:
        row = store.catalog.task(task_id)
        assert row is not None and row["status"] == "failed"
        doc = api.get(f"/v1/tasks/{task_id}").json()
        assert doc["status"] == "failed" and "interrupted" in doc["reason"]
        assert doc["finished_at"] is not None
        assert doc["progress"]["files_processed"] == 3
        again = api.post("/v1/datasets/crashed/actions", json={"action": "validate"})
        assert again.status == 202
    finally:
        api.close()


def test_dead_runner_does_not_block_a_new_task(store: Store) -> None:
    store.create_dataset("stale")
    task_id = _orphan_task(store, "stale")
    doc = TaskRunner(store).run("stale", "validate")
    assert doc["status"] == "completed"
    assert TaskRunner(store).get(task_id)["status"] == "failed"


def test_process_profiles_tables_when_analytics_is_present(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiled: list[str] = []
    monkeypatch.setattr(tasks, "_profiler", lambda st, spec: lambda e: profiled.append(e.path))
    fill(store, "prof", 3)
    doc = TaskRunner(store).run("prof", "process")
    assert doc["progress"]["files_failed"] == 0  # the stand-in profile passes every table
    tables = ["tables/t000.csv", "tables/t001.csv", "tables/t002.csv", *BROKEN]
    assert sorted(profiled) == sorted(tables)
    TaskRunner(store).run("prof", "validate")
    assert len(profiled) == 5  # validate does not profile


# rules through the API -------------------------------------------------------------


def test_rules_through_the_api_apply_to_uploads(store: Store, api: Api) -> None:
    store.create_dataset("ruled")
    resp = api.put("/v1/datasets/ruled/rules", json={"allow_categories": ["tabular"]})
    assert resp.status == 200 and resp.json()["rules"] == {"allow_categories": ["tabular"]}
    assert api.put("/v1/datasets/ruled/rules", json={"allow_categories": ["nope"]}).status == 400
    assert api.put("/v1/datasets/ruled/files/a.txt", data=b"text").code == "invalid_file_type"
    assert api.put("/v1/datasets/ruled/files/a.csv", data=b"a\n1\n").status == 201
    patch = api.patch("/v1/datasets/ruled", json={"rules": {"max_bytes": 5}})
    assert patch.status == 200 and patch.json()["rules"] == {"max_bytes": 5}
    too_big = api.put("/v1/datasets/ruled/files/b.txt", data=b"123456")
    assert too_big.status == 413 and too_big.code == "file_too_large"
    assert api.get("/v1/datasets/ruled/rules").json() == {
        "dataset": "ruled",
        "rules": {"max_bytes": 5},
    }
    assert sorted(e.path for e in store.entries("ruled")) == ["a.csv"]


# CLI --------------------------------------------------------------------------------


def test_cli_rules_process_and_task(
    store: Store, cli: Callable[..., Result], ds_run: Callable[..., Any], tmp_path: Path
) -> None:
    fill(store, "cli", 5)
    doc = parse(cli("rules", "cli", "--allow-category", "tabular", "--allow-ext", "md", "--json"))
    assert doc["rules"] == {"allow_categories": ["tabular"], "allow_extensions": ["md"]}
    txt = tmp_path / "x.txt"
    txt.write_text("no")
    refused = cli("put", "cli", str(txt))
    assert refused.exit_code != 0 and "invalid_file_type" in refused.output
    assert parse(cli("rules", "cli", "--clear", "--json"))["rules"] == {}
    done = cli("process", "cli", "--wait", "--json")
    assert done.exit_code == 1  # completed, but files failed: a script can tell
    doc = json.loads(done.stdout)
    assert doc["status"] == "completed" and doc["progress"]["files_failed"] == 2
    store.rm("cli", list(BROKEN))
    clean = cli("validate", "cli", "--wait")
    assert clean.exit_code == 0 and "completed" in clean.stdout


def test_cli_process_background_then_task(store: Store, ds_run: Callable[..., Any]) -> None:
    fill(store, "bg", 5)
    started = json.loads(ds_run("process", "bg", "--json").stdout)
    task_id = started["id"]
    deadline = time.monotonic() + 30
    while True:
        doc = json.loads(ds_run("task", task_id, "--json").stdout)
        if doc["status"] in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert doc["status"] == "completed"
    assert doc["progress"]["files_failed"] == 2
    second = ds_run("validate", "bg", "--wait", "--json", check=False)
    assert second.returncode == 1  # two files fail validation
    assert json.loads(second.stdout)["status"] == "completed"


def test_killed_runner_task_is_reported_failed(store: Store, store_root: Path) -> None:
    """SIGKILL the process running a task; the next look reports it failed, interrupted."""
    import os
    import signal
    import subprocess

    from tests.conftest import DS_BIN

    fill(store, "killed", 60)
    env = {**os.environ, "DS_STORE": str(store_root)}
    proc = subprocess.Popen(
        [DS_BIN, "process", "killed", "--wait", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dataset_id = store.dataset("killed").id
    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline:
        row = store.catalog.latest_task(dataset_id)
        if row is not None and row["progress"].get("files_processed", 0) > 0:
            break
        time.sleep(0.02)
    assert row is not None and row["status"] == "processing", row
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    doc = TaskRunner(store).get(row["id"])
    assert doc["status"] == "failed" and doc["reason"].startswith("interrupted")
    assert 0 < doc["progress"]["files_processed"] < 64
    assert doc["finished_at"] is not None
