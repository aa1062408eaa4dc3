"""The one exception hierarchy of ds.

Every error a user can see carries the SPEC error code in ``code``; each view maps
codes once (HTTP statuses in ``httpapi.errors``, exit codes in ``cli.errors``, errnos in
``mount.errors``), so a new error class needs a code here and a row in each map.
"""

from __future__ import annotations

import errno


class DatastoreError(Exception):
    """Base of every error ds reports to a user; ``code`` is the SPEC error code."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidName(DatastoreError):
    code = "invalid_name"


class InvalidPath(DatastoreError):
    code = "invalid_path"


class InvalidRequest(DatastoreError):
    code = "invalid_request"


class DatasetExists(DatastoreError):
    code = "dataset_exists"


class DatasetNotFound(DatastoreError):
    code = "dataset_not_found"


class FileNotFound(DatastoreError):
    code = "file_not_found"


class RefNotFound(DatastoreError):
    code = "ref_not_found"


class AmbiguousRef(DatastoreError):
    code = "ambiguous_ref"


class ReadOnlyRef(DatastoreError):
    code = "read_only_ref"


class TagExists(DatastoreError):
    code = "tag_exists"


class NotTabular(DatastoreError):
    code = "not_tabular"


class MalformedTable(NotTabular):
    """A file that claims to be a table but cannot be parsed; the message names where."""


class AnalyticsError(DatastoreError):
    """DuckDB failed on a readable table (out of memory, an unsupported type)."""


class FileTooLarge(DatastoreError):
    code = "file_too_large"


class InvalidFileType(DatastoreError):
    code = "invalid_file_type"


class ProcessingInProgress(DatastoreError):
    code = "processing_in_progress"


class HashCollision(DatastoreError):
    code = "hash_collision"


class Unauthorized(DatastoreError):
    code = "unauthorized"


class Forbidden(DatastoreError):
    code = "forbidden"


class Conflict(DatastoreError):
    """A concurrent change won a compare-and-set, or the tree shape forbids the change."""

    code = "conflict"


class PreconditionFailed(DatastoreError):
    code = "precondition_failed"


class StoreCorrupt(DatastoreError):
    """The store's files are damaged or from a format this version cannot read."""

    code = "store_corrupt"


class InsufficientStorage(DatastoreError):
    """The store's filesystem is full (ENOSPC or a quota): nothing was acknowledged, and
    what the failed write left behind is gc's at once."""

    code = "insufficient_storage"


class RequestTimeout(DatastoreError):
    """A client stopped sending in the middle of a request (a slow or dead client); the
    request changed nothing."""

    code = "request_timeout"


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def storage_error(exc: OSError, what: str = "the write") -> DatastoreError | None:
    """The ds error an OSError stands for, when it is one users must act on (a full
    disk); None for any other."""
    if exc.errno in DISK_FULL:
        return InsufficientStorage(
            f"the store's disk is full: {what} failed; free space (delete data, then ds gc)"
        )
    return None


def all_error_classes() -> list[type[DatastoreError]]:
    """Every concrete error class, so each view can prove it maps them all."""
    return [DatastoreError, *_subclasses(DatastoreError)]


def _subclasses(cls: type[DatastoreError]) -> list[type[DatastoreError]]:
    found: list[type[DatastoreError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found
