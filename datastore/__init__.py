"""The datastore library's public door: everything a view (mount, CLI, REST, fsspec) may use.

Views import from ``datastore`` and nothing below it; ``tests/test_layering.py`` enforces
that. The modules behind the door are free to move.

Errors and name validation are light and load with the door. Everything else loads on
first use (PEP 562 ``__getattr__``), so a command that never opens a store -- ``ds
--version``, ``ds --help`` -- does not pay for pyarrow, and one that never reads a table
does not pay for DuckDB. ``_LAZY`` names the module behind each name; the ``TYPE_CHECKING``
block gives mypy and readers the same names statically.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from datastore import errors, names
from datastore.errors import (
    AmbiguousRef,
    AnalyticsError,
    Conflict,
    DatasetExists,
    DatasetNotFound,
    DatastoreError,
    FileNotFound,
    FileTooLarge,
    Forbidden,
    HashCollision,
    InvalidFileType,
    InvalidName,
    InvalidPath,
    InvalidRequest,
    MalformedTable,
    NotTabular,
    PreconditionFailed,
    ProcessingInProgress,
    ReadOnlyRef,
    RefNotFound,
    RequestTimeout,
    StoreCorrupt,
    TagExists,
    Unauthorized,
)

if TYPE_CHECKING:
    from datastore.analytics import EXPORT_FORMATS, PREVIEW_DEFAULT, PREVIEW_MAX, Analytics
    from datastore.catalog.access import ANONYMOUS_ADMIN, LEVELS, Access, Principal, permission
    from datastore.ingest.inbox import Inbox, InboxOptions, check_tag_pattern
    from datastore.maintenance.retention import KeepRules
    from datastore.present import shapes
    from datastore.present.figures import store_totals, version_summary
    from datastore.present.namespace import Location, Namespace, Node, locate
    from datastore.present.prometheus import Histogram
    from datastore.storage.manifest import KIND_DIR, Entry, join_path, split_path
    from datastore.storage.objects import ObjectId, TempFile
    from datastore.storage.reader import ObjectReader, Run, copy_to_fd, iter_chunks, open_file
    from datastore.store import (
        DEFAULT_DIR_MODE,
        DEFAULT_FILE_MODE,
        DatasetInfo,
        Forgetting,
        Snapshot,
        Store,
        default_store_path,
    )
    from datastore.tasks.runner import ACTIONS, TaskRunner

_LAZY: dict[str, str] = {
    "Store": "datastore.store",
    "DatasetInfo": "datastore.store",
    "Snapshot": "datastore.store",
    "Forgetting": "datastore.store",
    "KeepRules": "datastore.maintenance.retention",
    "DEFAULT_DIR_MODE": "datastore.store",
    "DEFAULT_FILE_MODE": "datastore.store",
    "default_store_path": "datastore.store",
    "Entry": "datastore.storage.manifest",
    "KIND_DIR": "datastore.storage.manifest",
    "join_path": "datastore.storage.manifest",
    "split_path": "datastore.storage.manifest",
    "ObjectId": "datastore.storage.objects",
    "TempFile": "datastore.storage.objects",
    "ObjectReader": "datastore.storage.reader",
    "Run": "datastore.storage.reader",
    "copy_to_fd": "datastore.storage.reader",
    "iter_chunks": "datastore.storage.reader",
    "open_file": "datastore.storage.reader",
    "Access": "datastore.catalog.access",
    "Principal": "datastore.catalog.access",
    "LEVELS": "datastore.catalog.access",
    "ANONYMOUS_ADMIN": "datastore.catalog.access",
    "permission": "datastore.catalog.access",
    "Analytics": "datastore.analytics",
    "EXPORT_FORMATS": "datastore.analytics",
    "PREVIEW_DEFAULT": "datastore.analytics",
    "PREVIEW_MAX": "datastore.analytics",
    "TaskRunner": "datastore.tasks.runner",
    "ACTIONS": "datastore.tasks.runner",
    "Inbox": "datastore.ingest.inbox",
    "InboxOptions": "datastore.ingest.inbox",
    "check_tag_pattern": "datastore.ingest.inbox",
    "version_summary": "datastore.present.figures",
    "store_totals": "datastore.present.figures",
    "Location": "datastore.present.namespace",
    "Namespace": "datastore.present.namespace",
    "Node": "datastore.present.namespace",
    "Histogram": "datastore.present.prometheus",
    "locate": "datastore.present.namespace",
    "shapes": "datastore.present.shapes",
}

__all__ = [
    "errors",
    "names",
    "AmbiguousRef",
    "AnalyticsError",
    "Conflict",
    "DatasetExists",
    "DatasetNotFound",
    "DatastoreError",
    "FileNotFound",
    "FileTooLarge",
    "Forbidden",
    "HashCollision",
    "InvalidFileType",
    "InvalidName",
    "InvalidPath",
    "InvalidRequest",
    "MalformedTable",
    "NotTabular",
    "PreconditionFailed",
    "ProcessingInProgress",
    "ReadOnlyRef",
    "RefNotFound",
    "StoreCorrupt",
    "TagExists",
    "Unauthorized",
    "Store",
    "DatasetInfo",
    "Snapshot",
    "Forgetting",
    "KeepRules",
    "DEFAULT_DIR_MODE",
    "DEFAULT_FILE_MODE",
    "default_store_path",
    "Entry",
    "KIND_DIR",
    "join_path",
    "split_path",
    "ObjectId",
    "TempFile",
    "ObjectReader",
    "Run",
    "copy_to_fd",
    "iter_chunks",
    "open_file",
    "Access",
    "Principal",
    "LEVELS",
    "ANONYMOUS_ADMIN",
    "permission",
    "Analytics",
    "EXPORT_FORMATS",
    "PREVIEW_DEFAULT",
    "PREVIEW_MAX",
    "TaskRunner",
    "ACTIONS",
    "Inbox",
    "InboxOptions",
    "check_tag_pattern",
    "version_summary",
    "store_totals",
    "RequestTimeout",
    "Location",
    "Namespace",
    "Node",
    "Histogram",
    "locate",
    "shapes",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'datastore' has no attribute {name!r}")
    target = importlib.import_module(module)
    value = target if module.endswith("." + name) else getattr(target, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
