"""Import direction is one way, and every error has a mapping in each view."""

from __future__ import annotations

import subprocess
import sys

from cli.errors import EXIT_CODES
from datastore.errors import all_error_classes

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
        "for m in pkgutil.iter_modules(datastore.__path__):\n"
        "    if m.name != 'ingest':\n"
        "        importlib.import_module('datastore.' + m.name)\n"
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
