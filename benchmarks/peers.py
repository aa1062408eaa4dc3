"""ds side by side with DVC, restic, git-annex and `cp -a` on the same workloads, in one run.

`python -m benchmarks --peers [--quick]`: installs missing peers (see peer_tools), then for
each workload and tool: snapshot v1, mutate, snapshot v2, storage, restore v1 (checked byte
for byte against hashes of v1 taken before the mutation), diff v1..v2, peak RSS. For ds the
v1 is also read through the mount when one can be started. Writes the `## Peers` section of
benchmarks/RESULTS.md with the ratio of ds to each peer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import workloads
from .measure import drop_caches, row, run, tree_bytes
from .peer_tools import (
    DsTool,
    DvcTool,
    Layout,
    Step,
    Tool,
    all_tools,
    ensure_installed,
    shell_line,
    version,
)

FULL_SCALE = 1.0
QUICK_SCALE = 0.01  # 200 small files; mixed at 20 files + 5 MB CSV + 2 MB binary
WORKLOADS: dict[str, Callable[[Path, float], Path]] = {
    "small-many": workloads.small_many,
    "mixed": workloads.mixed,
}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
METRICS = (
    "snapshot_v1_s",
    "snapshot_v2_s",
    "snapshot_v1_durable_s",
    "snapshot_v2_durable_s",
    "checkout_v1_s",
    "diff_s",
    "mount_read_v1_s",
    "storage_after_v2_bytes",
    "storage_after_v2_disk_bytes",
    "peak_rss_mb",
)
# ds's mount read of v1 is set against each peer's restore of v1
COMPARED_WITH = {"mount_read_v1_s": "checkout_v1_s"}
NOTES_START, NOTES_END = "<!-- peers notes start -->", "<!-- peers notes end -->"


@dataclass(frozen=True)
class Target:
    """One issue's goal: ds / peer on a metric must stay at or below `max_ratio`."""

    workload: str
    metric: str
    peer: str
    max_ratio: float
    strict: bool = False  # "faster than": strictly below
    issue: int = 6

    def met(self, ratio: float) -> bool:
        return ratio < self.max_ratio if self.strict else ratio <= self.max_ratio


def issue_targets() -> list[Target]:
    targets = [
        Target("small-many", "snapshot_v1_s", "dvc", 0.1),
        Target("small-many", "snapshot_v2_s", "dvc", 0.1),
        Target("small-many", "snapshot_v1_s", "restic", 1.0, strict=True),
        Target("small-many", "snapshot_v2_s", "restic", 1.0, strict=True),
        Target("mixed", "snapshot_v1_s", "dvc", 1 / 3),
    ]
    for wl in WORKLOADS:
        for metric in ("checkout_v1_s", "diff_s"):
            targets += [Target(wl, metric, p, 1.0, strict=True) for p in ("dvc", "restic")]
        targets.append(Target(wl, "storage_after_v2_bytes", "dvc", 1.0))
    # store format 3 (packs, chunks, compression)
    for metric in ("snapshot_v1_s", "snapshot_v2_s"):
        targets.append(Target("small-many", metric, "restic", 0.6, issue=11))
    for wl in WORKLOADS:
        targets.append(Target(wl, "storage_after_v2_bytes", "restic", 0.9, issue=11))
        targets.append(Target(wl, "checkout_v1_s", "restic", 0.5, issue=11))
    targets.append(Target("mixed", "snapshot_v1_s", "dvc", 0.4, issue=11))
    return targets


@dataclass
class Report:
    """Everything RESULTS.md states besides the figures: versions, checks, notes."""

    quick: bool
    scale: float
    versions: dict[str, str] = field(default_factory=dict)
    verified: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- running


def run_peers(quick: bool) -> list[dict[str, Any]]:
    """The whole comparison; rows as measure.row with `tool` naming ds or the peer."""
    tools = all_tools()
    ensure_installed([t.name for t in tools])
    report = Report(quick, QUICK_SCALE if quick else FULL_SCALE)
    report.versions = {t.name: version(t) for t in tools}
    rows: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="ds-peers-"))
    try:
        for name in WORKLOADS:
            rows += run_workload(name, tools, base / name, report)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    write_results(RESULTS, rows, report)
    return rows


def run_workload(
    name: str,
    tools: list[Tool],
    work: Path,
    report: Report,
) -> list[dict[str, Any]]:
    """Generate the workload once, hash it, then give each tool its own copy."""
    source = work / "source"
    source.mkdir(parents=True)
    in_child("generate", name, str(source), str(report.scale))
    expected = tree_digest(source)
    rows: list[dict[str, Any]] = []
    for tool in tools:
        tool_work = work / tool.name
        try:
            rows += run_tool(name, tool, source, expected, Layout(tool_work), report)
        finally:
            _unmount_leftovers(tool_work)
            shutil.rmtree(tool_work, ignore_errors=True)
    shutil.rmtree(source, ignore_errors=True)
    return rows


class Timer:
    """Runs a tool's steps; sums their wall seconds and keeps the largest peak RSS."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.peak_rss_mb = 0.0

    def steps(self, steps: Iterable[Step]) -> float:
        total = 0.0
        for step in steps:
            r = run(step.argv, env=self.tool.env, cwd=step.cwd)
            total += r.seconds
            self.peak_rss_mb = max(self.peak_rss_mb, r.peak_rss_mb)
        return total

    def timed(self, steps: Iterable[Step]) -> float:
        """Cold-cache figure: caches dropped first (when root), then the steps."""
        drop_caches()
        return self.steps(steps)


def run_tool(
    workload: str,
    tool: Tool,
    source: Path,
    expected: dict[str, str],
    lay: Layout,
    report: Report,
) -> list[dict[str, Any]]:
    """One tool through v1, mutation, v2, storage, restore of v1 (checked), diff."""
    lay.work.mkdir(parents=True)
    (lay.work / "password").write_text("benchmark\n")
    timer = Timer(tool)
    setup = Timer(tool)  # untimed: repository creation is setup for every tool
    setup.steps(tool.init(lay))
    subprocess.run(["cp", "-a", str(source), str(tool.data(lay))], check=True)
    figures = {"snapshot_v1_s": timer.timed(tool.snapshot(lay, "v1"))}
    figures["snapshot_v1_durable_s"] = figures["snapshot_v1_s"] + flush_seconds()
    in_child("mutate", str(tool.data(lay)))
    figures["snapshot_v2_s"] = timer.timed(tool.snapshot(lay, "v2"))
    figures["snapshot_v2_durable_s"] = figures["snapshot_v2_s"] + flush_seconds()
    apparent, disk = storage_bytes(tool.storage(lay))
    refs = tool.refs(lay)
    figures["checkout_v1_s"] = timer.timed(tool.restore(lay, refs))
    report.verified[(workload, tool.name)] = compare_trees(expected, tool.restored(lay))
    figures["diff_s"] = timer.timed(tool.diff(lay, refs))
    if isinstance(tool, DsTool):
        mount_s = read_through_mount(tool, lay, expected, workload, report)
        if mount_s is not None:
            figures["mount_read_v1_s"] = mount_s
    out = [row(workload, tool.name, m, v, "s") for m, v in figures.items()]
    out += [
        row(workload, tool.name, "storage_after_v2_bytes", apparent, "B"),
        row(workload, tool.name, "storage_after_v2_disk_bytes", disk, "B"),
        row(workload, tool.name, "peak_rss_mb", timer.peak_rss_mb, "MB"),
        row(workload, tool.name, "v1_restore_ok", _ok(report.verified[(workload, tool.name)]), ""),
    ]
    return out


def flush_seconds() -> float:
    """Seconds of a `sync` right after a snapshot: what the snapshot left unwritten.

    ds syncs its objects before it commits (syncfs); DVC, git-annex and cp leave dirty
    pages that the next (untimed) drop_caches would otherwise flush for free.
    """
    return run(["sync"]).seconds


def in_child(*args: str) -> None:
    """Generate or mutate in a child process so this one stays small.

    A command's peak RSS from wait4 includes the high-water mark its parent had when it
    forked (the exec'd child inherits it), so a parent that once held the 200 MB binary
    would put a ~600 MB floor under every tool's figure.
    """
    import sys

    subprocess.run([sys.executable, "-m", "benchmarks.peers", *args], check=True, cwd=_repo_root())


def _child_main(argv: list[str]) -> None:
    if argv[0] == "generate":
        WORKLOADS[argv[1]](Path(argv[2]), float(argv[3]))
    elif argv[0] == "mutate":
        workloads.mutate(Path(argv[1]))
    else:
        raise SystemExit(f"unknown child command {argv[0]}")


def _ok(verdict: str) -> int:
    return 1 if verdict == "identical" else 0


def storage_bytes(paths: Iterable[Path]) -> tuple[int, int]:
    apparent = disk = 0
    for p in paths:
        a, d = tree_bytes(p)
        apparent, disk = apparent + a, disk + d
    return apparent, disk


# ---------------------------------------------------------------- byte-for-byte checks


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (symlinks followed, as a reader would)."""
    digests: dict[str, str] = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc")]
        for f in files:
            path = Path(dirpath) / f
            with open(path, "rb") as fh:
                digests[str(path.relative_to(root))] = hashlib.file_digest(fh, "sha256").hexdigest()
    return digests


def compare_trees(expected: dict[str, str], restored: Path) -> str:
    """'identical', or what differs: a restore that is not v1 is a failure worth reading."""
    if not restored.is_dir():
        return f"missing: {restored} is not a directory"
    return describe_difference(expected, tree_digest(restored))


def describe_difference(expected: dict[str, str], got: dict[str, str]) -> str:
    missing = expected.keys() - got.keys()
    extra = got.keys() - expected.keys()
    changed = [p for p in expected.keys() & got.keys() if expected[p] != got[p]]
    if not (missing or extra or changed):
        return "identical"
    return f"differs: {len(missing)} missing, {len(extra)} extra, {len(changed)} changed"


# ---------------------------------------------------------------- the ds mount


def mount_mode(tool: DsTool) -> str | None:
    """'native' for `ds mount`, 'serve' for `ds serve --mount`, None when neither can mount."""
    if not Path("/dev/fuse").exists():
        return None
    probe = subprocess.run([tool.exe, "mount", "--help"], capture_output=True)
    if probe.returncode == 0:
        return "native"
    python = Path(tool.exe).parent / "python"
    check = "import mount, sys; sys.exit(0 if callable(getattr(mount, 'start', None)) else 1)"
    ok = subprocess.run([str(python), "-c", check], capture_output=True, cwd=_repo_root())
    return "serve" if ok.returncode == 0 else None


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def read_through_mount(
    tool: DsTool, lay: Layout, expected: dict[str, str], workload: str, report: Report
) -> float | None:
    """Seconds to read every file of MOUNT/bench@v1 once (cold), or None when no mount."""
    mode = mount_mode(tool)
    if mode is None:
        _note(report, "mount read skipped: no `ds mount` and no mount.start in this build")
        return None
    mountpoint = lay.work / "mnt"
    mountpoint.mkdir()
    log = lay.work / "mount.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            tool.mount_cmd(lay, mountpoint, native=mode == "native"),
            stdout=err,
            stderr=subprocess.STDOUT,
            cwd=_repo_root(),
            start_new_session=True,
        )
    try:
        version_dir = mountpoint / "bench@v1"
        if not _wait_for(version_dir, proc, timeout=60):
            said = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            _note(report, f"{workload}: mount read skipped ({mode}): {said[0][:200]}")
            return None
        drop_caches()
        seconds = run(read_all_cmd(version_dir)).seconds
        _note(report, f"ds mount read through `ds {'mount' if mode == 'native' else 'serve'}`")
        verdict = compare_trees(expected, version_dir)
        report.verified[(workload, "ds mount")] = verdict
        return seconds
    finally:
        _stop(proc, mountpoint)


def read_all_cmd(root: Path) -> list[str]:
    """Read every file's bytes once, as a consumer scanning the version would."""
    return ["sh", "-c", f'find "{root}" -type f -print0 | xargs -0 -r cat > /dev/null']


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if path.is_dir():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen[bytes], mountpoint: Path) -> None:
    """Unmount, then SIGTERM the mount process we started (by its pid) if it is still up."""
    _unmount_leftovers(mountpoint.parent)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _unmount_leftovers(mountpoint.parent)


def _unmount_leftovers(work: Path) -> None:
    mnt = work / "mnt"
    if os.path.ismount(mnt):
        subprocess.run(["fusermount", "-u", "-z", str(mnt)], capture_output=True)


def _note(report: Report, text: str) -> None:
    if text not in report.notes:
        report.notes.append(text)


# ---------------------------------------------------------------- tables


def index(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """{(workload, metric): {tool: value}}."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        out.setdefault((r["workload"], r["metric"]), {})[r["tool"]] = r["value"]
    return out


def ratios(rows: Iterable[dict[str, Any]], peers: list[str]) -> list[dict[str, Any]]:
    """Rows of ds / peer per workload and metric; below 1 means ds is faster or smaller."""
    table = index(rows)
    out = []
    for (wl, metric), values in table.items():
        if metric not in METRICS or "ds" not in values:
            continue
        against = table.get((wl, COMPARED_WITH.get(metric, metric)), {})
        cells = {p: _ratio(values["ds"], against.get(p)) for p in peers}
        out.append({"workload": wl, "metric": metric, "ratios": cells})
    return out


def _ratio(ds: float, peer: float | None) -> float | None:
    if peer is None or peer <= 0:
        return None
    return ds / peer


def check_targets(rows: Iterable[dict[str, Any]], targets: list[Target]) -> list[str]:
    """One markdown line per target: met or missed, with the measured ratio."""
    table = index(rows)
    lines = []
    for t in targets:
        values = table.get((t.workload, t.metric), {})
        r = _ratio(values.get("ds", 0.0), values.get(t.peer))
        op = "<" if t.strict else "<="
        goal = f"ds/{t.peer} {op} {t.max_ratio:.3g} (issue {t.issue})"
        if r is None:
            lines.append(f"- [ ] {t.workload} {t.metric}: {goal}: not measured")
            continue
        mark = "x" if t.met(r) else " "
        verdict = "met" if t.met(r) else "MISSED"
        lines.append(f"- [{mark}] {t.workload} {t.metric}: {goal}: {r:.3g} ({verdict})")
    return lines


def figures_table(rows: list[dict[str, Any]], tools: list[str]) -> list[str]:
    table = index(rows)
    lines = [
        "| workload | metric | " + " | ".join(tools) + " |",
        "|---|---|" + "---:|" * len(tools),
    ]
    for wl in WORKLOADS:
        for metric in METRICS:
            values = table.get((wl, metric))
            if values:
                cells = [_human(metric, values.get(t)) for t in tools]
                lines.append(f"| {wl} | {metric} | " + " | ".join(cells) + " |")
    return lines


def ratio_table(rows: list[dict[str, Any]], peers: list[str]) -> list[str]:
    lines = [
        "| workload | metric | " + " | ".join(f"ds/{p}" for p in peers) + " |",
        "|---|---|" + "---:|" * len(peers),
    ]
    order = {m: i for i, m in enumerate(METRICS)}
    wl_order = {w: i for i, w in enumerate(WORKLOADS)}
    entries = sorted(
        ratios(rows, peers), key=lambda e: (wl_order.get(e["workload"], 99), order[e["metric"]])
    )
    for e in entries:
        cells = [f"{v:.3g}" if v is not None else "-" for v in e["ratios"].values()]
        lines.append(f"| {e['workload']} | {e['metric']} | " + " | ".join(cells) + " |")
    return lines


def _human(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.endswith("_bytes"):
        return f"{value / 1e6:.1f} MB"
    if metric.endswith("_mb"):
        return f"{value:.0f} MB"
    return f"{value:.2f} s"


# ---------------------------------------------------------------- RESULTS.md


def command_lines() -> list[str]:
    """The exact commands, with $WORK for the tool's scratch directory."""
    lay = Layout(Path("$WORK"))
    refs = {"v1": "v1", "v2": "v2"}
    lines = []
    for tool in _doc_tools():
        ids = {"v1": "$V1_ID", "v2": "$V2_ID"} if tool.name == "restic" else refs
        phases = [
            ("setup (not timed)", tool.init(lay)),
            ("snapshot v1 / v2", tool.snapshot(lay, "v1")),
            ("restore v1", tool.restore(lay, ids)),
            ("diff", tool.diff(lay, ids)),
        ]
        lines.append(
            f"- **{tool.name}** (data in `{tool.data(lay)}`, storage = "
            + ", ".join(f"`{p}`" for p in tool.storage(lay))
            + ")"
        )
        for label, steps in phases:
            cmds = "; ".join(f"`{shell_line(s)}`" for s in steps)
            lines.append(f"  - {label}: {cmds}")
        if isinstance(tool, DsTool):
            mnt = lay.work / "mnt"
            native, serve = (shell_line(Step(tool.mount_cmd(lay, mnt, n))) for n in (True, False))
            lines.append(
                f"  - mount read v1: `{native}` (builds without `ds mount`: `{serve}`)"
                f", then `{shell_line(Step(read_all_cmd(mnt / 'bench@v1')))}`, then "
                "`fusermount -u $WORK/mnt`"
            )
    return [_unquote_placeholders(ln) for ln in lines]


def _unquote_placeholders(line: str) -> str:
    """shlex quotes '$WORK/data'; the documented line reads better as $WORK/data."""
    import re

    return re.sub(r"'(\$[A-Za-z0-9_./@-]*)'", r"\1", line)


def _doc_tools() -> list[Tool]:
    tools = all_tools()
    for t in tools:
        if isinstance(t, DsTool | DvcTool):
            t.exe = t.name
    return tools


def section(rows: list[dict[str, Any]], report: Report, notes: str, when: datetime) -> str:
    from .__main__ import machine

    tools = list(report.versions) or sorted({r["tool"] for r in rows})
    peers = [t for t in tools if t != "ds"]
    mode = "--quick" if report.quick else "full"
    lines = [
        "## Peers",
        "",
        f"Run {when:%Y-%m-%d %H:%M} UTC, `python -m benchmarks --peers"
        f"{' --quick' if report.quick else ''}` ({mode}, workload scale {report.scale}), "
        f"on {machine()}.",
        "",
        "A virtual machine with a shared disk: runs beside other work swung single figures "
        "2-4x, so take differences under ~30% as ties. Times are wall seconds of the tool's own "
        "commands with the page cache dropped before each timed step; peak RSS is the largest "
        "of the tool's timed commands (wait4); storage is what the tool keeps besides the "
        "working tree, after v2. The `_durable_s` figures add a `sync` run right after the "
        "snapshot: ds flushes its objects (syncfs) before it commits, the peers leave dirty "
        "pages behind, so this is the time until each tool's snapshot is on disk.",
        "",
        "### Versions",
        "",
        *[f"- {t}: {v}" for t, v in report.versions.items()],
        "",
        "### Figures",
        "",
        *figures_table(rows, tools),
        "",
        "### Ratio ds / peer (below 1: ds is faster or smaller)",
        "",
        "mount_read_v1_s is ds's read of every v1 file through the mount against the "
        "peer's restore of v1.",
        "",
        *ratio_table(rows, peers),
        "",
        "### Targets",
        "",
        *check_targets(rows, issue_targets()),
        "",
        "### v1 restores checked byte for byte",
        "",
        *[f"- {wl} {tool}: {v}" for (wl, tool), v in report.verified.items()],
        "",
        "### Commands",
        "",
        "Each tool runs on its own `cp -a` copy of the seeded workload; the mutation is "
        "`benchmarks.workloads.mutate` on that copy. restic's `$V1_ID`/`$V2_ID` come from "
        "`restic snapshots --json` (not timed).",
        "",
        *command_lines(),
        "",
        *[f"- {n}" for n in report.notes],
        "",
        NOTES_START,
        notes.strip(),
        NOTES_END,
        "",
    ]
    return "\n".join(lines)


def write_results(path: Path, rows: list[dict[str, Any]], report: Report) -> None:
    """Replace (or add) the `## Peers` section, keeping every other section as it was."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    new = section(rows, report, kept_notes(text), datetime.now(UTC))
    path.write_text(replace_section(text, "## Peers", new))


def kept_notes(text: str) -> str:
    """Hand-written notes between the markers survive a re-run."""
    start, end = text.find(NOTES_START), text.find(NOTES_END)
    if start < 0 or end < start:
        return "### Where ds loses\n\n(written after a full run)"
    return text[start + len(NOTES_START) : end]


def replace_section(text: str, heading: str, new: str) -> str:
    """Swap the level-2 section starting at `heading` for `new` (appended when absent)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    if start is None:
        sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + sep + new
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + new + ("\n" + tail if tail else "")


if __name__ == "__main__":
    import sys

    _child_main(sys.argv[1:])
