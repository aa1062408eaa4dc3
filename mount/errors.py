"""Every error the mount can meet, as one errno: the single translation point."""

from __future__ import annotations

import errno
import logging

from datastore import DatastoreError

log = logging.getLogger("ds.mount")

ERRNO_BY_CODE: dict[str, int] = {
    "internal_error": errno.EIO,
    "invalid_name": errno.EINVAL,
    "invalid_path": errno.EINVAL,
    "invalid_request": errno.EINVAL,
    "dataset_exists": errno.EEXIST,
    "dataset_not_found": errno.ENOENT,
    "file_not_found": errno.ENOENT,
    "ref_not_found": errno.ENOENT,
    "ambiguous_ref": errno.EINVAL,
    "read_only_ref": errno.EROFS,
    "tag_exists": errno.EEXIST,
    "not_tabular": errno.EINVAL,
    "file_too_large": errno.EFBIG,
    "invalid_file_type": errno.EINVAL,
    "processing_in_progress": errno.EBUSY,
    "hash_collision": errno.EIO,
    "unauthorized": errno.EACCES,
    "forbidden": errno.EACCES,
    "conflict": errno.EEXIST,
    "precondition_failed": errno.EEXIST,
    "store_corrupt": errno.EIO,
    "insufficient_storage": errno.ENOSPC,
    "request_timeout": errno.ETIMEDOUT,
}


def to_errno(exc: BaseException) -> int:
    """The errno for any exception; unknown ones are logged with their trace and become EIO."""
    if isinstance(exc, DatastoreError):
        return ERRNO_BY_CODE.get(exc.code, errno.EIO)
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        return exc.errno
    found = getattr(exc, "errno", None)
    if isinstance(found, int) and found > 0:
        return found
    log.exception("unexpected error in the mount", exc_info=exc)
    return errno.EIO
