"""The pure parts of the peer benchmark: commands, restic ids, ratios, targets, RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from benchmarks import peers
from benchmarks.measure import row
from benchmarks.peer_tools import (
    AnnexTool,
    CpTool,
    DsTool,
    DvcTool,
    Layout,
    ResticTool,
    Step,
    all_tools,
    shell_line,
    snapshot_ids,
)

LAY = Layout(Path("/w"))
REFS = {"v1": "v1", "v2": "v2"}


def _rows() -> list[dict[str, object]]:
    return [
        row("small-many", "ds", "snapshot_v1_s", 1.0, "s"),
        row("small-many", "dvc", "snapshot_v1_s", 20.0, "s"),
        row("small-many", "restic", "snapshot_v1_s", 0.5, "s"),
        row("small-many", "ds", "checkout_v1_s", 2.0, "s"),
        row("small-many", "ds", "mount_read_v1_s", 1.0, "s"),
        row("small-many", "dvc", "checkout_v1_s", 4.0, "s"),
        row("small-many", "restic", "checkout_v1_s", 0.0, "s"),
        row("small-many", "ds", "v1_restore_ok", 1, ""),
    ]


def test_ds_commands_go_through_the_cli_with_an_explicit_store() -> None:
    ds = DsTool(exe="ds")
    assert ds.snapshot(LAY, "v1") == [
        Step(["ds", "put", "bench", "/w/data", "--store", "/w/repo"]),
        Step(["ds", "snapshot", "bench", "--tag", "v1", "--store", "/w/repo"]),
    ]
    assert ds.restore(LAY, REFS)[0].argv[:3] == ["ds", "checkout", "bench@v1"]
    assert ds.diff(LAY, REFS)[0].argv[:4] == ["ds", "diff", "bench@v1", "bench@v2"]
    assert ds.mount_cmd(LAY, Path("/m"), native=True)[:3] == ["ds", "mount", "--foreground"]
    assert "--mount" in ds.mount_cmd(LAY, Path("/m"), native=False)


def test_dvc_adds_the_data_dir_and_restores_with_git_then_dvc_checkout() -> None:
    dvc = DvcTool(exe="dvc")
    assert dvc.data(LAY) == Path("/w/repo/data")
    snap = dvc.snapshot(LAY, "v2")
    assert snap[0] == Step(["dvc", "add", "-q", "data"], Path("/w/repo"))
    assert ["git", "tag", "v2"] in [s.argv for s in snap]
    restore = [s.argv[:2] for s in dvc.restore(LAY, REFS)]
    assert restore == [["git", "checkout"], ["dvc", "checkout"]]
    assert dvc.diff(LAY, REFS)[0].argv == ["dvc", "diff", "v1", "v2"]
    assert dvc.env["DVC_NO_ANALYTICS"] == "1"


def test_restic_uses_its_repo_password_file_and_snapshot_ids() -> None:
    restic = ResticTool()
    backup = restic.snapshot(LAY, "v1")[0].argv
    assert backup[:3] == ["restic", "-r", "/w/repo"]
    assert "--password-file" in backup and backup[-3:] == ["--tag", "v1", "/w/data"]
    assert restic.diff(LAY, {"v1": "aaaa", "v2": "bbbb"})[0].argv[-3:] == ["diff", "aaaa", "bbbb"]
    assert restic.restored(LAY) == Path("/w/restore-v1/w/data")


def test_snapshot_ids_keep_the_last_snapshot_per_tag() -> None:
    snaps = [
        {"id": "1" * 64, "short_id": "11111111", "tags": ["v1"]},
        {"id": "2" * 64, "tags": ["v2"]},
        {"id": "3" * 64, "short_id": "33333333", "tags": None},
    ]
    assert snapshot_ids(snaps) == {"v1": "11111111", "v2": "22222222"}


def test_annex_keeps_files_unlocked_and_stages_deletions() -> None:
    annex = AnnexTool()
    assert ["git", "config", "annex.addunlocked", "true"] in [s.argv for s in annex.init(LAY)]
    argvs = [s.argv for s in annex.snapshot(LAY, "v1")]
    assert argvs[0] == ["git", "annex", "add", "-q", "data"]
    assert ["git", "add", "-A", "data"] in argvs
    assert annex.diff(LAY, REFS)[0].argv == ["git", "diff", "--stat", "v1", "v2"]


def test_cp_diff_accepts_the_exit_code_for_differences() -> None:
    argv = CpTool().diff(LAY, REFS)[0].argv
    assert argv[:2] == ["sh", "-c"] and "test $? -le 1" in argv[2]


def test_every_tool_has_all_phases_and_a_printable_command() -> None:
    for tool in all_tools():
        for steps in (tool.snapshot(LAY, "v1"), tool.restore(LAY, REFS), tool.diff(LAY, REFS)):
            assert steps and all(shell_line(s) for s in steps)
    assert shell_line(Step(["git", "tag", "v 1"], Path("/r"))) == "(cd /r && git tag 'v 1')"


def test_ratios_are_ds_over_peer_and_skip_unmeasured_or_zero() -> None:
    got = {
        (e["workload"], e["metric"]): e["ratios"] for e in peers.ratios(_rows(), ["dvc", "restic"])
    }
    assert got[("small-many", "snapshot_v1_s")] == {"dvc": 0.05, "restic": 2.0}
    assert got[("small-many", "checkout_v1_s")] == {"dvc": 0.5, "restic": None}
    # the mount read is set against the peer's restore
    assert got[("small-many", "mount_read_v1_s")]["dvc"] == 0.25
    assert ("small-many", "v1_restore_ok") not in got


def test_targets_report_met_missed_and_unmeasured() -> None:
    targets = [
        peers.Target("small-many", "snapshot_v1_s", "dvc", 0.1),
        peers.Target("small-many", "snapshot_v1_s", "restic", 1.0, strict=True),
        peers.Target("mixed", "diff_s", "dvc", 1.0),
    ]
    lines = peers.check_targets(_rows(), targets)
    assert lines[0].startswith("- [x]") and "(met)" in lines[0]
    assert lines[1].startswith("- [ ]") and "MISSED" in lines[1]
    assert lines[2].endswith("not measured")
    assert not peers.Target("w", "m", "p", 1.0, strict=True).met(1.0)
    assert peers.Target("w", "m", "p", 1.0).met(1.0)


def test_issue_targets_cover_both_workloads() -> None:
    names = {(t.workload, t.metric, t.peer) for t in peers.issue_targets()}
    assert ("mixed", "snapshot_v1_s", "dvc") in names
    assert ("small-many", "snapshot_v2_s", "restic") in names
    assert ("mixed", "storage_after_v2_bytes", "dvc") in names


def test_tables_render_one_line_per_measured_metric() -> None:
    figures = peers.figures_table(_rows(), ["ds", "dvc", "restic"])
    assert figures[2] == "| small-many | snapshot_v1_s | 1.00 s | 20.00 s | 0.50 s |"
    ratio = peers.ratio_table(_rows(), ["dvc", "restic"])
    assert "| small-many | checkout_v1_s | 0.5 | - |" in ratio


def test_difference_names_missing_extra_and_changed() -> None:
    assert peers.describe_difference({"a": "1"}, {"a": "1"}) == "identical"
    got = peers.describe_difference({"a": "1", "b": "2"}, {"a": "x", "c": "3"})
    assert got == "differs: 1 missing, 1 extra, 1 changed"


def test_tree_digest_and_compare(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    expected = peers.tree_digest(tmp_path)
    assert list(expected) == ["d/f"]
    assert peers.compare_trees(expected, tmp_path) == "identical"
    (tmp_path / "d" / "f").write_bytes(b"y")
    assert "1 changed" in peers.compare_trees(expected, tmp_path)
    assert peers.compare_trees(expected, tmp_path / "nope").startswith("missing")


def test_replace_section_keeps_the_other_sections() -> None:
    text = "# R\n\n## Store\nstore figures\n\n## Peers\nold\n\n## Mount\nmount figures\n"
    out = peers.replace_section(text, "## Peers", "## Peers\nnew\n")
    assert "old" not in out and "new" in out
    assert out.index("## Store") < out.index("## Peers") < out.index("## Mount")
    assert "mount figures" in out and "store figures" in out
    added = peers.replace_section("# R\n", "## Peers", "## Peers\nnew\n")
    assert added == "# R\n\n## Peers\nnew\n"


def test_hand_written_notes_survive_a_rerun() -> None:
    text = f"## Peers\n{peers.NOTES_START}\nwhy ds loses\n{peers.NOTES_END}\n"
    assert peers.kept_notes(text).strip() == "why ds loses"
    assert "Where ds loses" in peers.kept_notes("no markers")


def test_command_lines_document_every_tool() -> None:
    text = "\n".join(peers.command_lines())
    for name in ("ds", "dvc", "restic", "git-annex", "cp"):
        assert f"**{name}**" in text
    assert "`ds put bench $WORK/data --store $WORK/repo`" in text
    assert "(cd $WORK/repo && dvc add -q data)" in text
