"""Import direction is one way, and every error has a mapping in each view."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from cli.errors import EXIT_CODES
from datastore.errors import all_error_classes
from tests.conftest import REPO

VIEW_MODULES = (
    "click",
    "aiohttp",
    "watchdog",
    "mfusepy",
    "fuse",
    "pyfuse3",
    "cli",
    "httpapi",
    "mount",
)


def test_datastore_imports_no_view() -> None:
    code = (
        "import sys, pkgutil, importlib, datastore\n"
        "for m in pkgutil.walk_packages(datastore.__path__, 'datastore.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in {VIEW_MODULES!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_error_has_a_cli_exit_code() -> None:
    for cls in all_error_classes():
        assert cls.code in EXIT_CODES, cls


def test_every_name_of_the_door_resolves() -> None:
    import datastore

    for name in datastore.__all__:
        assert getattr(datastore, name) is not None, name


VIEW_PACKAGES = ("cli", "httpapi", "mount")
STORE_INTERNALS = frozenset({"catalog", "objects", "manifests", "locks"})
ROOT = REPO


def _view_sources() -> list[Path]:
    return sorted(p for pkg in VIEW_PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_views_use_only_the_door() -> None:
    """A view (CLI, REST, mount) imports the library only as ``from datastore import
    ...`` and never reaches into a Store's parts: the modules behind the door are free
    to move, and every view sees the same library."""
    bad: list[str] = []
    for path in _view_sources():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.startswith("datastore") and node.module != "datastore":
                    bad.append(f"{where}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Import):
                bad += [
                    f"{where}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.startswith("datastore.")
                ]
            elif isinstance(node, ast.Attribute) and node.attr in STORE_INTERNALS:
                bad.append(f"{where}:{node.lineno} .{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_views_do_not_import_each_other() -> None:
    """A view may launch another (``ds serve`` starts the API and the mount) through
    that package's own door (``from httpapi import Server``, ``import mount``), never
    through its modules."""
    bad: list[str] = []
    for path in _view_sources():
        own = path.relative_to(ROOT).parts[0]
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in VIEW_PACKAGES and top != own and name != top:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)


def _imports_of(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports when it runs (``TYPE_CHECKING``
    blocks left out), function-level imports included."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == package or m.startswith(package + ".")}


def _module_graph(package: str) -> dict[str, set[str]]:
    files = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / package).rglob("*.py")
    }
    return {
        name: {m for m in _imports_of(path, package) if m in files and m != name}
        for name, path in files.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_datastore_has_no_import_cycle() -> None:
    """Each module of the library can be understood from what it imports: no two load
    each other, however indirectly (a function-level import counts). Imports for types
    only (``TYPE_CHECKING``) are left out: they load nothing."""
    assert _cycles(_module_graph("datastore")) == []
