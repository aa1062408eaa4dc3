"""The tools compared with ds: how each one snapshots, restores and diffs a directory.

Every tool is described by the commands a user would type, built as pure functions of a
Layout, so the benchmark runs exactly what RESULTS.md prints and the tests can check the
commands without installing anything. Initialisation (`git init`, `restic init`,
`ds create`) is setup, not timed, in every tool alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .measure import DS

PEERS_DIR = Path(__file__).resolve().parent / ".peers"
DVC_VENV = PEERS_DIR / "dvc-venv"
DVC_REQUIREMENT = "dvc==3.67.1"  # pinned so figures compare across runs
APT_PACKAGES = ("restic", "git-annex")

# commits need an identity; a fresh CI machine has none configured
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


class Step(NamedTuple):
    """One command and the directory it runs in (None: wherever, paths are absolute)."""

    argv: list[str]
    cwd: Path | None = None


@dataclass(frozen=True)
class Layout:
    """Where one tool's working tree, repository and restore target live under `work`."""

    work: Path

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    @property
    def restore(self) -> Path:
        return self.work / "restore-v1"


@dataclass
class Tool:
    """A tool as the commands that set it up, snapshot, restore and diff; subclasses fill in."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    def data(self, lay: Layout) -> Path:
        """The directory the workload is written to and mutated in."""
        return lay.work / "data"

    def init(self, lay: Layout) -> list[Step]:
        return []

    def snapshot(self, lay: Layout, tag: str) -> list[Step]:
        raise NotImplementedError

    def restore(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        raise NotImplementedError

    def restored(self, lay: Layout) -> Path:
        """Where the restored v1 tree is, to compare byte for byte."""
        return lay.restore

    def diff(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        raise NotImplementedError

    def storage(self, lay: Layout) -> list[Path]:
        """What the tool keeps besides the working tree: the figure for storage."""
        return [lay.repo]

    def refs(self, lay: Layout) -> dict[str, str]:
        """Names of the v1 and v2 snapshots as the tool's restore and diff take them."""
        return {"v1": "v1", "v2": "v2"}

    def version_cmd(self) -> list[str]:
        raise NotImplementedError


@dataclass
class DsTool(Tool):
    """ds through its CLI, as bench_store measures it: put + snapshot per version."""

    name: str = "ds"
    exe: str = DS

    def _ds(self, lay: Layout, *args: str) -> list[str]:
        return [self.exe, *args, "--store", str(lay.repo)]

    def init(self, lay: Layout) -> list[Step]:
        return [Step(self._ds(lay, "create", "bench"))]

    def snapshot(self, lay: Layout, tag: str) -> list[Step]:
        return [
            Step(self._ds(lay, "put", "bench", str(self.data(lay)))),
            Step(self._ds(lay, "snapshot", "bench", "--tag", tag)),
        ]

    def restore(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(self._ds(lay, "checkout", f"bench@{refs['v1']}", str(lay.restore)))]

    def diff(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(self._ds(lay, "diff", f"bench@{refs['v1']}", f"bench@{refs['v2']}", "--json"))]

    def mount_cmd(self, lay: Layout, mountpoint: Path, native: bool) -> list[str]:
        """`ds mount` when the CLI has it, else the daemon's --mount (same mount module)."""
        if native:  # in the foreground, so the process we stop is the one we started
            return self._ds(lay, "mount", "--foreground", "--read-only", str(mountpoint))
        return self._ds(lay, "serve", "--port", "0", "--no-auth", "--mount", str(mountpoint))

    def version_cmd(self) -> list[str]:
        return [self.exe, "--version"]


@dataclass
class DvcTool(Tool):
    """DVC in a git repo: `dvc add data` + commit per version; git checkout + dvc checkout."""

    name: str = "dvc"
    exe: str = str(DVC_VENV / "bin" / "dvc")
    env: dict[str, str] = field(default_factory=lambda: {**GIT_ENV, "DVC_NO_ANALYTICS": "1"})

    def data(self, lay: Layout) -> Path:
        return lay.repo / "data"

    def init(self, lay: Layout) -> list[Step]:
        return [
            Step(["git", "init", "-q", str(lay.repo)]),
            Step([self.exe, "init", "-q"], lay.repo),
            Step([self.exe, "config", "core.analytics", "false"], lay.repo),
            Step(["git", "commit", "-q", "-m", "dvc init"], lay.repo),
        ]

    def snapshot(self, lay: Layout, tag: str) -> list[Step]:
        return [
            Step([self.exe, "add", "-q", "data"], lay.repo),
            Step(["git", "add", "data.dvc", ".gitignore"], lay.repo),
            Step(["git", "commit", "-q", "-m", tag], lay.repo),
            Step(["git", "tag", tag], lay.repo),
        ]

    def restore(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [
            Step(["git", "checkout", "-q", refs["v1"]], lay.repo),
            Step([self.exe, "checkout", "-q", "--force"], lay.repo),
        ]

    def restored(self, lay: Layout) -> Path:
        return self.data(lay)

    def diff(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step([self.exe, "diff", refs["v1"], refs["v2"]], lay.repo)]

    def storage(self, lay: Layout) -> list[Path]:
        return [lay.repo / ".dvc", lay.repo / ".git"]

    def version_cmd(self) -> list[str]:
        return [self.exe, "--version"]


@dataclass
class ResticTool(Tool):
    """restic: `backup` per version (the second finds its parent and skips unchanged files)."""

    name: str = "restic"
    exe: str = "restic"

    def _restic(self, lay: Layout, *args: str) -> list[str]:
        return [
            self.exe,
            "-r",
            str(lay.repo),
            "--password-file",
            str(lay.work / "password"),
            "--cache-dir",
            str(lay.work / "cache"),
            "-q",
            *args,
        ]

    def init(self, lay: Layout) -> list[Step]:
        return [Step(self._restic(lay, "init"))]

    def snapshot(self, lay: Layout, tag: str) -> list[Step]:
        return [Step(self._restic(lay, "backup", "--tag", tag, str(self.data(lay))))]

    def restore(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(self._restic(lay, "restore", refs["v1"], "--target", str(lay.restore)))]

    def restored(self, lay: Layout) -> Path:
        """restic restores the backed-up absolute path beneath the target."""
        return lay.restore / str(self.data(lay)).lstrip("/")

    def diff(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(self._restic(lay, "diff", refs["v1"], refs["v2"]))]

    def snapshots_cmd(self, lay: Layout) -> list[str]:
        return self._restic(lay, "snapshots", "--json")

    def refs(self, lay: Layout) -> dict[str, str]:
        """restic diff takes snapshot IDs, not tags: look them up (not timed)."""
        import json

        out = subprocess.run(self.snapshots_cmd(lay), capture_output=True, check=True).stdout
        return snapshot_ids(json.loads(out))

    def version_cmd(self) -> list[str]:
        return [self.exe, "version"]


def snapshot_ids(snapshots: list[dict[str, object]]) -> dict[str, str]:
    """{tag: short id} from `restic snapshots --json` (the last snapshot with a tag wins)."""
    refs: dict[str, str] = {}
    for snap in snapshots:
        tags = snap.get("tags")
        for tag in tags if isinstance(tags, list) else []:
            refs[str(tag)] = str(snap.get("short_id") or str(snap["id"])[:8])
    return refs


@dataclass
class AnnexTool(Tool):
    """git-annex with unlocked files: the tree stays plain files, so the shared mutation edits
    them as it does for every tool (locked files are read-only symlinks into the annex)."""

    name: str = "git-annex"
    env: dict[str, str] = field(default_factory=lambda: dict(GIT_ENV))

    def data(self, lay: Layout) -> Path:
        return lay.repo / "data"

    def init(self, lay: Layout) -> list[Step]:
        return [
            Step(["git", "init", "-q", str(lay.repo)]),
            Step(["git", "annex", "init", "-q", "bench"], lay.repo),
            Step(["git", "config", "annex.addunlocked", "true"], lay.repo),
        ]

    def snapshot(self, lay: Layout, tag: str) -> list[Step]:
        return [
            Step(["git", "annex", "add", "-q", "data"], lay.repo),
            Step(["git", "add", "-A", "data"], lay.repo),
            Step(["git", "commit", "-q", "-m", tag], lay.repo),
            Step(["git", "tag", tag], lay.repo),
        ]

    def restore(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(["git", "checkout", "-q", refs["v1"]], lay.repo)]

    def restored(self, lay: Layout) -> Path:
        return self.data(lay)

    def diff(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(["git", "diff", "--stat", refs["v1"], refs["v2"]], lay.repo)]

    def storage(self, lay: Layout) -> list[Path]:
        return [lay.repo / ".git"]

    def version_cmd(self) -> list[str]:
        return ["git", "annex", "version", "--raw"]


@dataclass
class CpTool(Tool):
    """The naive baseline: a full `cp -a` per version; `diff -rq` compares two copies."""

    name: str = "cp"

    def snapshot(self, lay: Layout, tag: str) -> list[Step]:
        return [Step(["cp", "-a", str(self.data(lay)), str(lay.repo / tag)])]

    def init(self, lay: Layout) -> list[Step]:
        return [Step(["mkdir", "-p", str(lay.repo)])]

    def restore(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        return [Step(["cp", "-a", str(lay.repo / refs["v1"]), str(lay.restore)])]

    def diff(self, lay: Layout, refs: dict[str, str]) -> list[Step]:
        # diff exits 1 when the trees differ, which is the expected outcome here
        a, b = lay.repo / refs["v1"], lay.repo / refs["v2"]
        return [Step(["sh", "-c", f'diff -rq "{a}" "{b}"; test $? -le 1'])]

    def version_cmd(self) -> list[str]:
        return ["cp", "--version"]


def all_tools() -> list[Tool]:
    return [DsTool(), DvcTool(), ResticTool(), AnnexTool(), CpTool()]


def shell_line(step: Step) -> str:
    """A step as a copy-pasteable shell line, for RESULTS.md."""
    import shlex

    line = shlex.join(step.argv)
    return f"(cd {shlex.quote(str(step.cwd))} && {line})" if step.cwd else line


def version(tool: Tool) -> str:
    """First line of the tool's own version output; 'unavailable' if it will not run."""
    try:
        out = subprocess.run(
            tool.version_cmd(), capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def ensure_installed(names: Sequence[str]) -> None:
    """Install missing peers: DVC into its own venv from PyPI, the rest from Debian packages.

    Own venv so DVC's many pinned dependencies never touch ds's environment.
    """
    if "dvc" in names and not Path(DvcTool().exe).exists():
        _install_dvc()
    missing = [p for p in APT_PACKAGES if p in names and not _apt_tool_present(p)]
    if missing:
        _apt_install(missing)


def _install_dvc() -> None:
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(DVC_VENV)], check=True)
    pip = [str(DVC_VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, DVC_REQUIREMENT], check=True)


def _apt_tool_present(package: str) -> bool:
    if package == "git-annex":
        return shutil.which("git-annex") is not None
    return shutil.which(package) is not None


def _apt_install(packages: Sequence[str]) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(f"install {' '.join(packages)} (apt-get needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
