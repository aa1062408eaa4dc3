"""Fixtures every test module shares: a fresh store, the CLI in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import ds
from datastore.store import Store

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
