"""The README's examples run, in order, on a fresh directory: what a new user types first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SECTIONS = ("## Quickstart (CLI only)", "## The mount")


def _block(section: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(section)
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match is not None, section
    return match.group(1)


@pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
    reason="the mount section needs FUSE",
)
def test_the_readme_examples_run_in_order(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # '. .venv/bin/activate' as in a clone
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = "\n".join(_block(s) for s in SECTIONS).replace("/mnt/data", str(mnt))
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "DS_STORE"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2026-11-01,10" in proc.stdout  # ds cat of v1.0
    assert "2026-11-03,9" in proc.stdout  # the mount's pinned v1.2
    assert not os.path.ismount(mnt)
