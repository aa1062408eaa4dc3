"""fsspec's own abstract test suites (copy, get, put, open, pipe) against a ``ds://``
head: what every fsspec filesystem is expected to do, checked the way fsspec checks
its own implementations."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from fsspec.tests import abstract

from datastore.present.fsspec_ds import DatasetFileSystem
from datastore.store import Store


class DsFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, store: Store, store_root: Path) -> DatasetFileSystem:
        store.create_dataset("abstract")
        fs = fsspec.filesystem("ds", store=str(store_root), skip_instance_cache=True)
        assert isinstance(fs, DatasetFileSystem)
        return fs

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return "abstract"


class TestDsCopy(abstract.AbstractCopyTests, DsFixtures):  # type: ignore[misc]
    pass


class TestDsGet(abstract.AbstractGetTests, DsFixtures):  # type: ignore[misc]
    pass


class TestDsPut(abstract.AbstractPutTests, DsFixtures):  # type: ignore[misc]
    pass


class TestDsOpen(abstract.AbstractOpenTests, DsFixtures):  # type: ignore[misc]
    pass


class TestDsPipe(abstract.AbstractPipeTests, DsFixtures):  # type: ignore[misc]
    pass
