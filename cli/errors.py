"""The CLI's one map from error codes to exit codes; messages come from the error itself."""

from __future__ import annotations

from datastore import errors

EXIT_USAGE = 2
EXIT_CODES: dict[str, int] = {
    errors.DatastoreError.code: 1,
    errors.InvalidName.code: EXIT_USAGE,
    errors.InvalidPath.code: EXIT_USAGE,
    errors.InvalidRequest.code: EXIT_USAGE,
    errors.DatasetExists.code: 3,
    errors.DatasetNotFound.code: 4,
    errors.FileNotFound.code: 4,
    errors.RefNotFound.code: 4,
    errors.AmbiguousRef.code: EXIT_USAGE,
    errors.ReadOnlyRef.code: 5,
    errors.TagExists.code: 3,
    errors.NotTabular.code: 6,
    errors.FileTooLarge.code: 6,
    errors.InvalidFileType.code: 6,
    errors.ProcessingInProgress.code: 7,
    errors.HashCollision.code: 8,
    errors.Unauthorized.code: 9,
    errors.Forbidden.code: 9,
    errors.Conflict.code: 7,
    errors.PreconditionFailed.code: 7,
    errors.StoreCorrupt.code: 10,
    errors.InsufficientStorage.code: 11,
    errors.RequestTimeout.code: 12,
}


def exit_code(err: errors.DatastoreError) -> int:
    return EXIT_CODES.get(err.code, 1)
