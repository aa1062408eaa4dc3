"""Every invalid name, path and ref is refused with its code, by the library and the CLI,
and nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from datastore import names
from datastore.errors import DatastoreError, InvalidName, InvalidPath, InvalidRequest
from datastore.store import Store

BAD_DATASETS = ["", "Sales", "-x", ".x", "a@b", "a/b", "a" * 101, "sp ace", "ü"]
BAD_TAGS = ["", "-v1", "v1/x", "a" * 101, "latest", "v1:0", "v 1"]
BAD_PATHS = [
    "",
    "/abs",
    "a//b",
    "./a",
    "a/./b",
    "../x",
    "a/../b",
    "a/..",
    "nul\x00byte",
    "x" * 256,
    "/".join(["d" * 200] * 21),
    "tab\tname",
    "line\nbreak",
    "bell\x07",
    "del\x7f",
    "c1\x85next",
    "c1\x9f",
    "invoice\u202etxt.exe",
    "ltr\u202a",
    "isolate\u2066x",
    "pop\u2069",
]
GOOD_PATHS = ["a", "a/b.csv", "é/ü.txt", "x" * 255, "sp ace/x", ".hidden/file", "back\\slash"]


def test_good_names_pass() -> None:
    assert names.dataset_name("sales-2026.v1_x") == "sales-2026.v1_x"
    assert names.tag_name("V1.0-rc_1") == "V1.0-rc_1"
    for p in GOOD_PATHS:
        assert names.file_path(p) == p


@pytest.mark.parametrize("name", BAD_DATASETS)
def test_bad_dataset_names(store: Store, name: str) -> None:
    with pytest.raises(InvalidName):
        store.create_dataset(name)
    assert store.list_datasets() == []


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_bad_tags(store: Store, tag: str) -> None:
    store.create_dataset("d")
    store.snapshot("d")
    with pytest.raises(InvalidName):
        store.snapshot("d", tag=tag)
    with pytest.raises(InvalidName):
        store.tag("d", "latest", tag)
    assert store.info("d").tags == {}


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths(store: Store, path: str) -> None:
    store.create_dataset("d")
    with pytest.raises(InvalidPath):
        store.put_bytes("d", path, b"x")
    assert store.ls("d", "", recursive=True) == []
    assert list(store.objects.iter_ids()) == []


@pytest.mark.parametrize("ref", ["", "a b", "x/y", "2026-13-01T00:00:00", "-bad"])
def test_bad_refs(store: Store, ref: str) -> None:
    store.create_dataset("d")
    with pytest.raises(InvalidName):
        store.resolve(f"d@{ref}")


def test_bad_time_ref_is_invalid_not_missing(store: Store) -> None:
    store.create_dataset("d")
    with pytest.raises(InvalidName):
        store.resolve("d@2026-02-30T00:00:00Z")


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [(None, None, (100, 0)), ("5000", "3", (1000, 3)), (0, 0, (0, 0))],
)
def test_paging(limit: object, offset: object, expected: tuple[int, int]) -> None:
    assert names.page(limit, offset) == expected


@pytest.mark.parametrize(("limit", "offset"), [("-1", 0), ("x", 0), (10, "-5")])
def test_bad_paging(limit: object, offset: object) -> None:
    with pytest.raises(InvalidRequest):
        names.page(limit, offset)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["create", "Bad"], "invalid_name"),
        (["ls", "d@"], "invalid_name"),
        (["ls", "d@nope"], "ref_not_found"),
        (["ls", "missing"], "dataset_not_found"),
        (["cat", "d/../x"], "invalid_path"),
        (["snapshot", "d", "--tag", "latest"], "invalid_name"),
        (["tag", "d", "latest", "bad/tag"], "invalid_name"),
        (["rm", "d/nope"], "file_not_found"),
        (["rm", "d//a.txt"], "invalid_path"),
        (["put", "d", "SRC", "--to", "/abs"], "invalid_path"),
        (["put", "d", "SRC", "--to", "raw//x"], "invalid_path"),
        (["ls", "d/a\x01b"], "invalid_path"),
        (["snapshot", "d@latest"], "read_only_ref"),
    ],
)
def test_cli_refuses_bad_input(cli, store_root: Path, args: list[str], code: str) -> None:
    assert cli("create", "d").exit_code == 0
    assert cli("snapshot", "d").exit_code == 0
    before = Store.open(store_root).log("d")
    src = store_root.parent / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_bytes(b"a")
    result = cli(*[str(src) if a == "SRC" else a for a in args])
    assert result.exit_code != 0
    assert f"[{code}]" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert Store.open(store_root).log("d") == before
    assert Store.open(store_root).status("d")["dirty"] is False


def test_errors_carry_codes() -> None:
    from datastore.errors import all_error_classes

    classes = all_error_classes()
    assert {cls.__module__ for cls in classes} == {"datastore.errors"}
    # a code names one error; only a refinement of an error (a subclass) may share it
    for cls in classes:
        assert isinstance(cls.code, str) and cls.code
        twins = [other for other in classes if other.code == cls.code]
        assert all(issubclass(a, b) or issubclass(b, a) for a in twins for b in twins)
    assert DatastoreError("x").to_dict() == {"error": {"code": "internal_error", "message": "x"}}
