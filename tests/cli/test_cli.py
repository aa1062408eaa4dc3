"""The CLI end to end: in-process through click's runner and as a real subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cli.main import ds
from datastore.store import Store
from tests.conftest import DS_BIN, REPO, TEST_DATA, make_tree, parse


def test_quickstart_through_the_runner(cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "exports", {"2026-11.csv": b"a,b\n1,2\n", "notes/readme.txt": b"hi"})
    assert parse(cli("create", "sales", "-d", "daily", "--json"))["name"] == "sales"
    put = parse(cli("put", "sales", str(src), "--json"))
    assert sorted(put["added"]) == ["2026-11.csv", "notes/readme.txt"]
    status = parse(cli("status", "sales", "--json"))
    assert status["dirty"] and len(status["staged"]["added"]) == 2
    snap = parse(cli("snapshot", "sales", "--tag", "v1.0", "-m", "first", "--json"))
    assert snap["created"] and snap["tags"] == ["v1.0"] and snap["file_count"] == 2
    again = parse(cli("snapshot", "sales", "--tag", "v1.0b", "--json"))
    assert not again["created"] and again["id"] == snap["id"]
    (src / "2026-11.csv").write_bytes(b"a,b\n1,2\n3,4\n")
    cli("put", "sales", str(src))
    assert cli("cat", "sales@v1.0/2026-11.csv").stdout_bytes == b"a,b\n1,2\n"
    diff = parse(cli("diff", "sales@v1.0", "--json"))
    assert [m["path"] for m in diff["modified"]] == ["2026-11.csv"]
    log = parse(cli("log", "sales", "--json"))
    assert [s["id"] for s in log["items"]] == [snap["id"]]
    listing = parse(cli("ls", "sales@v1.0", "-R", "--json"))
    assert {i["path"] for i in listing["items"]} == {"2026-11.csv", "notes/readme.txt"}
    info = parse(cli("info", "sales", "--json"))
    assert info["dirty"] and info["tags"]["v1.0"] == snap["id"]


def test_tags_history_and_untag(cli) -> None:
    cli("create", "d")
    first = parse(cli("snapshot", "d", "--json"))["id"]
    assert cli("tag", "d", first, "prod").exit_code == 0
    result = cli("tag", "d", "latest", "prod")
    assert result.exit_code == 0 and "already at" in result.output  # nothing moved
    assert "[invalid_request]" in cli("tag", "d", "head", "other").output
    doc = parse(cli("tag", "d", "prod", "--history", "--json"))
    assert doc["tag"] == "prod" and doc["history"][0]["snapshot"] == first
    assert cli("untag", "d", "prod").exit_code == 0
    assert "[ref_not_found]" in cli("untag", "d", "prod").output
    assert "[ref_not_found]" in cli("ls", "d@prod").output
    # the removal is a move to nothing: the history outlives the tag (SPEC 11)
    doc = parse(cli("tag", "d", "prod", "--history", "--json"))
    assert doc["snapshot"] is None
    assert [h["snapshot"] for h in doc["history"]] == [first, None]
    assert "(removed)" in cli("tag", "d", "prod", "--history").output
    assert cli("tag", "d", "latest", "prod").exit_code == 0
    again = parse(cli("tag", "d", "prod", "--history", "--json"))["history"]
    assert [h["snapshot"] for h in again] == [first, None, first]
    assert "[ref_not_found]" in cli("tag", "d", "never", "--history").output
    assert "[invalid_name]" in cli("tag", "d", first, "head").output
    assert "8 hex" in cli("ls", f"d@{first[:4]}").output
    assert cli("ls", "d@head").exit_code == 0


def test_get_checkout_rm_and_maintenance(cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a/b.txt": b"bee", "c.txt": b"sea"})
    cli("create", "d")
    cli("put", "d", str(src))
    cli("snapshot", "d", "--tag", "v1")
    out = tmp_path / "got"
    out.mkdir()
    assert cli("get", "d@v1/a/b.txt", str(out)).exit_code == 0
    assert (out / "b.txt").read_bytes() == b"bee"
    assert cli("get", "d@v1/a", str(tmp_path / "tree")).exit_code == 0
    assert (tmp_path / "tree" / "b.txt").read_bytes() == b"bee"
    assert parse(cli("checkout", "d@v1", str(tmp_path / "co"), "--json"))["files"] == 2
    assert parse(cli("rm", "d/a", "--json"))["removed"] == ["a/b.txt"]
    assert parse(cli("gc", "--dry-run", "--grace", "0", "--json"))["objects_removed"] == 0
    assert "[invalid_request]" in cli("gc", "--grace", "soon").output
    assert parse(cli("fsck", "--json"))["ok"]
    assert parse(cli("du", "d", "--json"))["items"][0]["dataset"] == "d"
    assert cli("delete", "d", "--yes").exit_code == 0
    assert parse(cli("list", "--json"))["items"] == []


def test_checkout_copies_unless_asked_to_link_and_warns_then(
    cli, tmp_path: Path, store_root: Path
) -> None:
    """Only a whole object stored as its own file can be linked (one written by a close
    through the mount, an upload); a packed one is copied out of its pack."""
    src = make_tree(tmp_path / "src", {"c.txt": b"sea"})
    cli("create", "d")
    cli("put", "d", str(src))
    store = Store.open(store_root)
    store.put_bytes("d", "whole.txt", b"uploaded whole")
    store.close()
    cli("snapshot", "d", "--tag", "v1")
    plain = cli("checkout", "d@v1", str(tmp_path / "co"))
    assert plain.exit_code == 0 and "warning" not in plain.stderr
    assert (tmp_path / "co" / "whole.txt").stat().st_nlink == 1
    linked = cli("checkout", "d@v1", str(tmp_path / "ln"), "--link", "--json")
    assert "ds: warning: --link" in linked.stderr
    assert json.loads(linked.stdout)["files"] == 2
    assert (tmp_path / "ln" / "whole.txt").stat().st_nlink == 2
    assert (tmp_path / "ln" / "c.txt").stat().st_nlink == 1
    assert (tmp_path / "ln" / "c.txt").read_bytes() == b"sea"


def test_delete_without_a_terminal_needs_yes(cli, ds_run) -> None:
    """Nobody can answer the question in a script, so nothing is assumed (SPEC 5)."""
    cli("create", "keep")
    for args in (("delete", "keep"), ("delete", "keep", "--json")):
        refused = cli(*args)
        assert refused.exit_code == 2 and "--yes" in refused.stderr
    proc = ds_run("delete", "keep", check=False)  # stdin is not a terminal here either
    assert proc.returncode == 2 and b"[invalid_request]" in proc.stderr
    assert [d["name"] for d in parse(cli("list", "--json"))["items"]] == ["keep"]
    assert cli("delete", "keep", "--yes").exit_code == 0


def test_delete_asks_on_a_terminal(store_root: Path) -> None:
    import pty

    env = {**os.environ, "DS_STORE": str(store_root)}
    subprocess.run([DS_BIN, "create", "d"], env=env, check=True, capture_output=True)
    for answer, remains in ((b"n\n", True), (b"y\n", False)):
        pid, fd = pty.fork()
        if pid == 0:  # the child: ds on a pseudo-terminal
            os.execve(DS_BIN, [DS_BIN, "delete", "d"], env)
        seen = b""
        while b"?" not in seen:
            seen += os.read(fd, 1024)
        os.write(fd, answer)
        with contextlib.suppress(OSError):  # EIO once the child has gone
            while os.read(fd, 1024):
                pass
        os.waitpid(pid, 0)
        os.close(fd)
        names = Store.open(store_root).list_datasets()
        assert any(d.name == "d" for d in names) == remains


def test_a_reader_that_stops_early_is_not_an_error(ds_run, store_root: Path) -> None:
    """``ds cat ... | head -c 10`` and ``ds ls -R ... | head -3`` exit quietly."""
    ds_run("create", "big")
    src = make_tree(store_root.parent / "src", {f"f{i:04d}.txt": b"x" for i in range(1500)})
    (src / "blob.bin").write_bytes(os.urandom(2 << 20))
    ds_run("put", "big", str(src))
    env = {**os.environ, "DS_STORE": str(store_root)}
    for args in (["cat", "big/blob.bin"], ["ls", "big", "-R"], ["status", "big"]):
        proc = subprocess.Popen(
            [DS_BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10)
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(60) == 0 and err == b"", (args, err)


PROGRESS_RUN = """
import sys, time
from cli.common import Output
with Output(None, False).progress("put") as progress:
    for i in range(int(sys.argv[1])):
        progress(i + 1, 12)
        time.sleep(0.15)
"""


def _stderr_on_a_terminal(*args: str) -> bytes:
    """Run PROGRESS_RUN with stderr on an 80x24 pseudo-terminal; what it drew there."""
    import fcntl
    import pty
    import struct
    import sys
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRESS_RUN, *args],
        stderr=child,
        cwd=REPO,
    )
    os.close(child)
    out = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(main, 4096):
            out += chunk
    os.close(main)
    assert proc.wait(30) == 0
    return out


def test_progress_bars_show_on_work_over_a_second_only() -> None:
    """SPEC 5: a bar on a terminal once work has run a second (1.8 s here), none for a
    blink (0.3 s), so quick commands do not flicker."""
    slow = _stderr_on_a_terminal("12")
    assert b"put:" in slow and b"/12" in slow
    assert b"put:" not in _stderr_on_a_terminal("2")


def test_every_error_has_one_style_and_json_gets_the_api_document(cli, tmp_path: Path) -> None:
    """``ds: error: MESSAGE [code]`` on stderr from every command (mount and umount, bad
    flags included); with --json, stdout holds the REST API's error document too."""
    cases = [
        (("info", "missing", "--json"), "dataset_not_found", 4),
        (("umount", str(tmp_path), "--json"), "invalid_request", 2),
        (("ls", "--bogus-flag", "--json"), "invalid_request", 2),
    ]
    for args, code, status in cases:
        result = cli(*args)
        assert result.exit_code == status, (args, result.output)
        assert result.stderr.startswith("ds: error: ") and f"[{code}]" in result.stderr
        assert "Error:" not in result.stderr
        doc = json.loads(result.stdout)
        assert doc["error"]["code"] == code and doc["error"]["message"]
    plain = cli("umount", str(tmp_path))
    assert plain.stdout == "" and "is not mounted [invalid_request]" in plain.stderr


def test_put_stores_links_as_links_and_says_what_it_skipped(cli, tmp_path: Path) -> None:
    """Links inside a tree are stored as links, never followed (out of the tree or not),
    unless -L asks; FIFOs are not read. What is skipped is named on stderr and counted."""
    src = make_tree(tmp_path / "src", {"real.csv": b"a\n1\n", "sub/x.txt": b"x"})
    outside = make_tree(tmp_path / "outside", {"secret.txt": b"not for the dataset"})
    (src / "link.csv").symlink_to("real.csv")
    (src / "escape").symlink_to(outside)
    (src / "sub" / "loop").symlink_to("..")
    os.mkfifo(src / "pipe")
    cli("create", "d")
    result = cli("put", "d", str(src), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert sorted(doc["added"]) == ["escape", "link.csv", "real.csv", "sub/loop", "sub/x.txt"]
    skipped = {Path(s["source"]).name: s["reason"] for s in doc["skipped"]}
    assert set(skipped) == {"pipe"} and "FIFO" in skipped["pipe"]
    assert result.stderr.count("ds: warning: skipped") == 1
    listed = {i["path"]: i for i in parse(cli("ls", "d", "-R", "--json"))["items"]}
    assert listed["escape"]["type"] == "symlink" and listed["escape"]["target"] == str(outside)
    assert listed["link.csv"]["target"] == "real.csv" and listed["link.csv"]["size"] == 8
    assert "link.csv -> real.csv" in cli("ls", "d").stdout
    again = json.loads(cli("put", "d", str(src), "--json").stdout)
    assert again["added"] == [] and again["modified"] == [] and again["unchanged"] == 5
    # -L stores what links point at; a link back up the tree is a loop, skipped
    followed = cli("put", "d", str(src), "--to", "copy", "-L", "--json")
    doc = json.loads(followed.stdout)
    assert "copy/escape/secret.txt" in doc["added"] and "copy/link.csv" in doc["added"]
    assert {Path(s["source"]).name: s["reason"] for s in doc["skipped"]}.keys() == {
        "loop",
        "pipe",
    }
    assert cli("cat", "d/copy/link.csv").stdout == "a\n1\n"
    refused = cli("cat", "d/link.csv")
    assert refused.exit_code != 0 and "symbolic link" in refused.stderr


def test_ls_json_is_the_rest_listing_document(store_root: Path, tmp_path: Path) -> None:
    """SPEC 11: ``ds ls NAME -R --json`` prints what ``GET .../files?recursive=true``
    answers (the same entries in the same order), and so for one directory level."""
    from click.testing import CliRunner

    from tests.httpapi.api_support import make_api

    store = Store.open(store_root)
    store.create_dataset("d")
    src = make_tree(tmp_path / "src", {"b.csv": b"1", "a/z.txt": b"2", "a/b/c.json": b"{}"})
    store.put("d", [src])
    api = make_api(store)
    try:
        for recursive in ("true", "false"):
            rest = api.get(f"/v1/datasets/d/files?recursive={recursive}&limit=1000").json()
            args = ["ls", "d", "--json", "--store", str(store_root)]
            if recursive == "true":
                args.insert(2, "-R")
            mine = json.loads(CliRunner().invoke(ds, args).stdout)
            assert mine["items"] == rest["items"] and mine["total"] == rest["total"]
    finally:
        api.close()


def test_log_takes_a_count_and_a_since(cli, store_root: Path) -> None:
    cli("create", "d")
    ids = []
    for i in range(4):
        cli("put", "d", str(make_tree(store_root.parent / f"s{i}", {f"f{i}": b"x"})))
        ids.append(parse(cli("snapshot", "d", "--json"))["id"])
    newest_first = ids[::-1]
    assert [s["id"] for s in parse(cli("log", "d", "-n", "2", "--json"))["items"]] == (
        newest_first[:2]
    )
    assert parse(cli("log", "d", "-n", "0", "--json"))["items"] == []
    store = Store.open(store_root)
    third = store.log("d")[1].row.created_at  # the third snapshot's time
    since = third[:19] + "Z"
    got = [s["id"] for s in parse(cli("log", "d", "--since", since, "--json"))["items"]]
    assert got[: len(newest_first[:2])] == newest_first[:2] and set(got) <= set(ids)
    assert parse(cli("log", "d", "--since", "2999-01-01", "--json"))["items"] == []
    assert len(parse(cli("log", "d", "--since", "2000-01-01", "--json"))["items"]) == 4
    bad = cli("log", "d", "--since", "yesterday")
    assert bad.exit_code == 2 and "[invalid_request]" in bad.stderr


def test_subprocess_round_trip_and_exit_codes(ds_run, tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"\x00\x01binary")
    ds_run("create", "bin")
    ds_run("put", "bin", str(f), "--to", "raw")
    snap = json.loads(ds_run("snapshot", "bin", "--tag", "v1", "--json").stdout)
    assert ds_run("cat", "bin@v1/raw/x.bin").stdout == b"\x00\x01binary"
    assert ds_run("cat", f"bin@{snap['id'][:10]}/raw/x.bin").stdout == b"\x00\x01binary"
    missing = ds_run("cat", "bin@v9/raw/x.bin", check=False)
    assert missing.returncode == 4
    assert missing.stderr.decode().count("\n") == 1 and "ref_not_found" in missing.stderr.decode()
    assert ds_run("create", "Bad", check=False).returncode == 2


def test_every_command_is_in_the_readme_with_an_example() -> None:
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"`ds ([a-z]+)", readme))
    for name, cmd in ds.commands.items():
        assert name in documented, f"ds {name} is missing from the README"
        assert "Example:" in (cmd.help or ""), f"ds {name} has no Example: in its help"


def test_a_second_setup_installs_nothing() -> None:
    """``make run`` and ``make test`` run the bootstrap every time; once the environment
    is current (its stamp newer than pyproject.toml) it answers at once."""
    import sys

    repo = REPO
    venv = Path(sys.prefix)
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < (repo / "pyproject.toml").stat().st_mtime:
        import pytest

        pytest.skip("this environment was not made by scripts/bootstrap.sh")
    before = stamp.stat().st_mtime_ns
    proc = subprocess.run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=repo,
        env={**os.environ, "VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "is up to date" in proc.stdout and "pip" not in proc.stdout + proc.stderr
    assert stamp.stat().st_mtime_ns == before


def test_forget_by_name_and_by_rule(cli, tmp_path: Path) -> None:
    cli("create", "d")
    ids = []
    for i in range(4):
        src = make_tree(tmp_path / f"v{i}", {f"f{i}.txt": f"{i}".encode()})
        cli("put", "d", str(src / f"f{i}.txt"))
        ids.append(parse(cli("snapshot", "d", "--json"))["id"])
    assert "[invalid_request]" in cli("forget", "d").output
    cli("tag", "d", ids[0], "keep-me")
    dry = parse(cli("forget", "d", "--keep-last", "1", "--dry-run", "--json"))
    assert dry == {
        "dataset": "d",
        "forgotten": [ids[2], ids[1]],
        "kept": [ids[3], ids[0]],
        "dry_run": True,
    }
    result = cli("forget", "d", "--keep-last", "1", "--keep-within", "1h")
    assert result.exit_code == 0 and "forgot 0 snapshots, kept 4" in result.output
    result = cli("forget", "d", ids[1][:8], "keep-me")
    assert result.exit_code == 0 and "forgot 2 snapshots, kept 2" in result.output
    assert "ds gc" in result.output
    assert [s["id"] for s in parse(cli("log", "d", "--json"))["items"]] == [ids[3], ids[2]]
    assert "forgotten" in cli("ls", f"d@{ids[1]}").output
    assert "[invalid_request]" in cli("forget", "d", "--keep-within", "soon").output
    assert "[conflict]" in cli("forget", "d", ids[3]).output


def test_summary_and_lineage_show_what_rest_shows(cli, tmp_path: Path, store_root: Path) -> None:
    from datastore import store_totals, version_summary

    src = make_tree(tmp_path / "src", {"a.csv": b"x,y\n1,2\n", "b.tar.gz": b"\x1f\x8b..."})
    cli("create", "raw")
    cli("put", "raw", str(src))
    up = parse(cli("snapshot", "raw", "--tag", "v1", "--json"))["id"]
    cli("create", "clean")
    cli("put", "clean", str(src / "a.csv"))
    down = parse(cli("snapshot", "clean", "--source", "raw@v1", "--json"))["id"]
    doc = parse(cli("summary", "raw@v1", "--json"))
    store = Store.open(store_root)
    assert doc == version_summary(store, "raw@v1")
    assert doc["by_extension"] == {
        "csv": {"count": 1, "size_bytes": 8},
        "tar.gz": {"count": 1, "size_bytes": 5},
    }
    totals = parse(cli("summary", "--json"))
    assert totals == store_totals(store) and totals["datasets"] == 2
    human = cli("summary", "raw").output
    assert "by extension" in human and "tar.gz" in human
    lin = parse(cli("lineage", "raw", "--json"))
    assert lin["consumers"] == [{"dataset": "clean", "snapshot": down, "source": up}]
    cli("forget", "clean", "--keep-last", "0")  # the base stays; nothing to forget
    assert f"raw@{up[:12]}" in cli("lineage", "clean").output
    assert "[dataset_not_found]" in cli("lineage", "nope").output


HEAVY = ("pyarrow", "numpy", "pandas", "duckdb", "aiohttp", "asyncio", "watchdog")


def _loaded_by(store_root: Path, *args: str) -> set[str]:
    """The heavy modules one CLI run imports (run in a fresh interpreter)."""
    code = (
        "import sys\n"
        f"sys.argv = ['ds', *{list(args)!r}]\n"
        "from cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "DS_STORE": str(store_root)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("loaded:"))
    return set(filter(None, line.removeprefix("loaded:").split(",")))


def test_start_up_imports_only_what_the_command_needs(cli, store_root: Path) -> None:
    """ds --version, --help and what the catalog alone answers load none of pyarrow,
    pandas or DuckDB (each costs 0.1-0.4 s per start); reading a version's files needs
    pyarrow (manifests are Parquet), never pandas or DuckDB, and a diff needs no DuckDB."""
    cli("create", "d")
    cli("put", "d", str(make_tree(store_root.parent / "src", {"a.txt": b"1"})))
    cli("snapshot", "d", "--tag", "v1")
    for args in (("--version",), ("--help",), ("list",), ("log", "d"), ("tags", "d")):
        assert _loaded_by(store_root, *args) == set(), args
    for args in (("ls", "d"), ("status", "d"), ("cat", "d/a.txt"), ("diff", "d@v1", "d")):
        assert _loaded_by(store_root, *args) <= {"pyarrow", "numpy"}, args


def test_ds_upgrade_packs_a_format_1_store_and_every_version_reads_the_same(
    cli, store_root: Path
) -> None:
    """tests/data/format1-store: every object is its own file; after ds upgrade none is,
    the format says 3, and every version reads byte for byte as before."""
    import shutil

    shutil.copytree(TEST_DATA / "format1-store", store_root)
    store = Store.open(store_root)
    versions = ("sales@v1.0", "sales@v1.1", "sales")
    before = {
        (v, e.path): store.read_bytes(v, e.path)
        for v in versions
        for e in store.entries(v)
        if e.is_file
    }
    loose = list(store.objects.iter_ids())
    store.close()
    assert loose
    report = parse(cli("upgrade", "--json"))
    assert report["format"] == 3 and report["objects_packed"] == len(loose)
    assert json.loads((store_root / "FORMAT").read_text())["version"] == 3
    store = Store.open(store_root)
    assert list(store.objects.iter_ids()) == []
    assert {k: store.read_bytes(*k) for k in before} == before
    assert store.fsck()["ok"]
    store.close()
    assert parse(cli("upgrade", "--json"))["objects_packed"] == 0
    assert "store format 3: packed 0 objects" in cli("upgrade").output
