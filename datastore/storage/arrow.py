"""pyarrow, imported on first use.

Opening a store and answering from the catalog alone (``ds list``, ``ds log``, ``ds tags``,
tokens) needs no Arrow, yet pyarrow pulls numpy in and costs 0.2-0.3 s per process. The
modules that read manifests name ``pa``, ``pc`` and ``pq`` from here; each is a stand-in
that imports the real module the first time an attribute is asked of it.

pyarrow, the first time it converts a Python list, imports pandas (0.3-0.4 s) only to ask
whether the list is a pandas object. No store code hands it one, so when pyarrow loads in
a process that has not imported pandas, that probe is answered "no" once: pandas stays
importable, and ``Table.to_pandas`` still imports it for real.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any


class _PandasAbsent:
    """A meta path finder (any object with find_spec is one) refusing pandas."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ImportError("pandas is not needed to answer pyarrow's probe")


def _load_pyarrow() -> types.ModuleType:
    if "pyarrow" in sys.modules or "pandas" in sys.modules:
        return importlib.import_module("pyarrow")
    finder = _PandasAbsent()
    sys.meta_path.insert(0, finder)
    try:
        module = importlib.import_module("pyarrow")
        module.array([])
    finally:
        sys.meta_path.remove(finder)
    return module


class _Deferred(types.ModuleType):
    """A module that is imported when first used; then its names are copied in, so later
    lookups cost what a plain module attribute costs."""

    def __getattr__(self, name: str) -> Any:
        _load_pyarrow()
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, name)


if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
else:
    pa = _Deferred("pyarrow")
    pc = _Deferred("pyarrow.compute")
    pq = _Deferred("pyarrow.parquet")


def preload() -> None:
    """Import what reading manifests needs now: a long-lived view (the mount) pays the
    0.3-1 s (more with a cold page cache) at start, not in its first listing."""
    _load_pyarrow()
    for name in ("pyarrow.compute", "pyarrow.parquet"):
        importlib.import_module(name)


__all__ = ["pa", "pc", "pq", "preload"]
