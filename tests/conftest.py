"""Fixtures every test module shares: a fresh store, the CLI in-process and as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import ds
from datastore.store import Store

#: the checkout: tests that read README.md, docs/ or run ``python -m`` from it start here
REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"
DS_BIN = shutil.which("ds", path=str(Path(sys.executable).parent)) or "ds"


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_root: Path) -> Iterator[Store]:
    s = Store.open(store_root)
    yield s
    s.close()


@pytest.fixture
def cli(store_root: Path) -> Callable[..., Result]:
    """Run ``ds ARGS --store STORE`` in-process; ``--json`` output parsed by ``.json()``."""
    runner = CliRunner()

    def invoke(*args: str, input: bytes | None = None) -> Result:
        return runner.invoke(ds, [*args, "--store", str(store_root)], input=input)

    return invoke


@pytest.fixture
def ds_run(store_root: Path) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run the installed ``ds`` console script as a real subprocess."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DS_STORE": str(store_root)}
        proc = subprocess.run([DS_BIN, *args], capture_output=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"ds {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc

    return run


def parse(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


@contextmanager
def gc_running(store_root: Path) -> Iterator[list[dict[str, Any]]]:
    """``gc --grace 0`` in a loop beside the body (SPEC promise 7: gc is safe while
    writers run); yields the list of its reports as they come, re-raises its failure.

    Before each run every temp file is dated an hour back, as if its writer had idled
    that long: only the writer's lock may keep gc off it."""
    stop = threading.Event()
    runs: list[dict[str, Any]] = []
    failures: list[BaseException] = []

    def loop() -> None:
        s = Store.open(store_root)
        try:
            while not stop.is_set():
                for temp in s.objects.iter_temp():
                    with contextlib.suppress(FileNotFoundError):
                        os.utime(temp, (time.time() - 3600,) * 2)
                runs.append(s.gc(grace_seconds=0))
        except BaseException as exc:  # handed to the test below
            failures.append(exc)
        finally:
            s.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield runs
    finally:
        stop.set()
        thread.join(60)
    if failures:
        raise failures[0]


def wait_until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


class ConstantHash:
    """A hasher that maps everything to one id, to force a collision."""

    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return "0" * 32
