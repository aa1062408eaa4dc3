"""Objects: placement, write-once durability, dedup with verification, collisions, repair."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datastore.errors import FileTooLarge, HashCollision
from datastore.storage.objects import ObjectStore, object_id_from_relpath, object_relpath
from tests.conftest import ConstantHash


@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
def test_placement_round_trips(oid: str) -> None:
    assert object_id_from_relpath(object_relpath(oid)) == oid


@pytest.mark.parametrize("rel", ["tmp/abc", "ab", "zz/" + "0" * 30, "ab/" + "g" * 30, "ab/cd"])
def test_non_objects_are_not_ids(rel: str) -> None:
    assert object_id_from_relpath(rel) is None


def test_put_is_read_only_idempotent_and_deduplicated(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    objects.init()
    a = objects.put_bytes(b"hello")
    b = objects.put_bytes(b"hello")
    assert a == b
    assert objects.path(a).read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(objects.path(a)).st_mode) == 0o444
    assert list(objects.iter_ids()) == [a]
    assert list(objects.iter_temp()) == []  # in tmp/ and beside the final places


def test_stream_and_file_paths_agree(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    objects.init()
    data = os.urandom(5 << 20)
    src = tmp_path / "big"
    src.write_bytes(data)
    oid_file, size = objects.put_file(src)
    oid_stream, _ = objects.put_stream([data[: 1 << 20], data[1 << 20 :]])
    assert oid_file == oid_stream == objects.hash_bytes(data)
    assert size == len(data)


def test_stream_limit_leaves_nothing(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    objects.init()
    with pytest.raises(FileTooLarge):
        objects.put_stream([b"x" * 600, b"y" * 600], max_bytes=1000)
    assert list(objects.iter_ids()) == []
    assert list(objects.iter_temp()) == []  # in tmp/ and beside the final places


def test_forced_collision_is_refused(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects", hasher=ConstantHash)
    objects.init()
    objects.put_bytes(b"first")
    with pytest.raises(HashCollision):
        objects.put_bytes(b"second")
    with pytest.raises(HashCollision):
        objects.put_stream([b"third"])
    assert objects.path("0" * 32).read_bytes() == b"first"


def test_corrupt_stored_object_is_repaired_by_good_bytes(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    objects.init()
    oid = objects.put_bytes(b"precious bytes")
    path = objects.path(oid)
    os.chmod(path, 0o644)
    path.write_bytes(b"precious bytez")
    assert not objects.verify(oid)
    assert objects.put_bytes(b"precious bytes") == oid
    assert objects.verify(oid)
