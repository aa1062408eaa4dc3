"""A hypothesis state machine drives random put/import/overwrite/symlink/rm/rename/snapshot/
tag/gc sequences against a dict model (imports pack small files and chunk large ones; gc
packs what puts stored whole and repacks): every snapshot reads back exactly; the head
equals the model. A path holds bytes or, for a symbolic link, its target (a ``Link``)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from datastore.errors import TagExists
from datastore.storage import manifest
from datastore.store import Store

ALL_PATHS = [f"f{j}" for j in range(3)] + [f"d{i}/f{j}" for i in range(3) for j in range(3)]
PATHS = st.sampled_from(ALL_PATHS)
DATA = st.binary(max_size=64)
TARGETS = st.sampled_from(["f0", "../f1", "/abs/x", "d0/f2", "nowhere"])


@dataclass(frozen=True)
class Link:
    target: str


Content = bytes | Link


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.saved = (manifest.TARGET_ROWS, manifest.MAX_ROWS)
        manifest.TARGET_ROWS, manifest.MAX_ROWS = 2, 4
        self.tmp = Path(tempfile.mkdtemp(prefix="ds-stateful-"))
        self.store = Store.open(self.tmp / "store")
        self.store.create_dataset("m")
        self.head: dict[str, Content] = {}
        self.snapshots: list[tuple[str, dict[str, Content]]] = []
        self.tags: dict[str, str] = {}

    def teardown(self) -> None:
        manifest.TARGET_ROWS, manifest.MAX_ROWS = self.saved
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(path=PATHS, data=DATA)
    def put(self, path: str, data: bytes) -> None:
        self.store.put_bytes("m", path, data)
        self.head[path] = data

    @rule(files=st.dictionaries(PATHS, DATA, min_size=1, max_size=4), big=PATHS)
    def import_tree(self, files: dict[str, bytes], big: str) -> None:
        """An import: small files packed, and now and then a large one cut into chunks
        (its bytes vary with the step, so chunks are both shared and new)."""
        if len(files) % 2:
            files = {**files, big: bytes(range(256)) * 5000 + len(self.snapshots).to_bytes(4)}
        src = Path(tempfile.mkdtemp(dir=self.tmp))
        for path, data in files.items():
            (src / path).parent.mkdir(parents=True, exist_ok=True)
            (src / path).write_bytes(data)
        self.store.put("m", [src])
        self.head.update(files)

    @precondition(lambda self: len(self.head) < len(ALL_PATHS))
    @rule(data=st.data(), to=TARGETS)  # ("target" names rule bundles in hypothesis)
    def symlink(self, data: st.DataObject, to: str) -> None:
        path = data.draw(st.sampled_from([p for p in ALL_PATHS if p not in self.head]))
        self.store.symlink("m", path, to)
        self.head[path] = Link(to)

    @precondition(lambda self: bool(self.head))
    @rule(data=st.data())
    def rm(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.head)))
        self.store.rm("m", [path])
        del self.head[path]

    @precondition(lambda self: bool(self.head))
    @rule(data=st.data(), dst=PATHS)
    def rename(self, data: st.DataObject, dst: str) -> None:
        src = data.draw(st.sampled_from(sorted(self.head)))
        self.store.rename("m", src, dst)
        self.head[dst] = self.head.pop(src)

    @rule(tag=st.none() | st.sampled_from(["t1", "t2", "t3"]))
    def snapshot(self, tag: str | None) -> None:
        try:
            snap, created = self.store.snapshot("m", tag=tag)
        except TagExists:
            assert tag in self.tags
            return
        if created or not self.snapshots:
            self.snapshots.append((snap.row.id, dict(self.head)))
        else:
            assert self.snapshots[-1][1] == self.head
        if tag:
            self.tags[tag] = snap.row.id

    @precondition(lambda self: bool(self.snapshots))
    @rule(data=st.data(), tag=st.sampled_from(["t1", "t2", "t3"]))
    def move_tag(self, data: st.DataObject, tag: str) -> None:
        sid, _ = data.draw(st.sampled_from(self.snapshots))
        self.store.tag("m", sid, tag, force=True)
        self.tags[tag] = sid

    @rule()
    def gc(self) -> None:
        self.store.gc(grace_seconds=0)

    def _matches(self, spec: str, model: dict[str, Content]) -> None:
        listed = {e.path for e in self.store.ls(spec, "", recursive=True) if not e.is_dir}
        assert listed == set(model)
        for path, content in model.items():
            if isinstance(content, Link):
                assert self.store.stat(spec, path).target == content.target
            else:
                assert self.store.read_bytes(spec, path) == content

    @invariant()
    def head_matches_model(self) -> None:
        self._matches("m", self.head)

    @invariant()
    def snapshots_read_back(self) -> None:
        for sid, files in self.snapshots:
            self._matches(f"m@{sid}", files)
        for tag, sid in self.tags.items():
            assert self.store.resolve(f"m@{tag}").snapshot == sid


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
