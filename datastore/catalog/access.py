"""Who may do what: API tokens and per-dataset grants (SPEC section 8).

A token is ``ds_<id>_<secret>``. Only the sha256 of the whole token is stored; a
presented token is looked up by its id and its hash compared in constant time, so
neither the catalog nor a timing side channel gives the secret away. Grants give a
principal (a user name) ``read``, ``write`` or ``admin`` on one dataset; an admin token
may do everything. A dataset a principal may not read must look absent to it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datastore import names
from datastore.errors import DatasetNotFound, Forbidden, InvalidRequest, Unauthorized
from datastore.storage.reader import iter_chunks
from datastore.times import utc_now

if TYPE_CHECKING:
    from datastore.catalog.core import Catalog, DatasetRow
    from datastore.storage.content import ContentStore

PERMISSIONS = ("read", "write", "admin")
LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}
ADMIN_TOKEN_FILE = "admin.token"
ADMIN_USER = "admin"
TOKEN_PREFIX = "ds_"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: a user name, whether it is a store admin, its token id."""

    user: str
    admin: bool
    token_id: str | None = None


ANONYMOUS_ADMIN = Principal(user="anonymous", admin=True, token_id=None)


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    user: str
    admin: bool
    created_at: str
    secret: str | None = None  # only right after creation


def hash_secret(token: str) -> str:
    # a header's bytes that are not UTF-8 arrive as surrogates: hash them, never fail
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _new_secret() -> tuple[str, str]:
    token_id = secrets.token_hex(8)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def permission(perm: str) -> str:
    if perm not in PERMISSIONS:
        raise InvalidRequest(f"permission must be one of {', '.join(PERMISSIONS)}, not {perm!r}")
    return perm


class Access:
    """Tokens and grants over the store's catalog; every check a view makes goes here."""

    def __init__(self, catalog: Catalog, content: ContentStore, root: Path) -> None:
        self.catalog = catalog
        self.content = content
        self.root = root

    # tokens --------------------------------------------------------------------

    def create_token(self, user: str, admin: bool = False) -> Token:
        names.principal(user)
        token_id, secret = _new_secret()
        created = utc_now()
        self.catalog.insert_token(token_id, user, admin, hash_secret(secret), created)
        return Token(token_id, user, admin, created, secret)

    def tokens(self) -> list[Token]:
        return [_token(r) for r in self.catalog.tokens()]

    def revoke_token(self, token_id: str) -> bool:
        return self.catalog.delete_token(token_id)

    def token(self, token_id: str) -> Token | None:
        row = self.catalog.token(token_id)
        return _token(row) if row else None

    def authenticate(self, presented: str | None) -> Principal:
        """The principal a bearer token belongs to; Unauthorized for anything else."""
        if not presented:
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer TOKEN'")
        token_id = _token_id(presented)
        row = self.catalog.token(token_id) if token_id else None
        # Hash and compare even when the id is unknown, so both failures take the same time.
        expected = row["secret_hash"] if row else "0" * 64
        if not hmac.compare_digest(hash_secret(presented), expected) or row is None:
            raise Unauthorized("invalid or revoked token")
        return Principal(row["user"], row["admin"], row["id"])

    def ensure_admin_token(self) -> Path | None:
        """On a store with no token at all, create an admin token in ``STORE/admin.token``.

        The file is written with mode 0600 before the token row commits, so a token the
        catalog knows is never lost. Returns the file's path when one was created.
        """
        if self.catalog.tokens():
            return None
        token_id, secret = _new_secret()
        path = self.root / ADMIN_TOKEN_FILE
        tmp = path.with_name(f".{ADMIN_TOKEN_FILE}.{token_id}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secret + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if not self.catalog.insert_first_token(
            token_id, ADMIN_USER, True, hash_secret(secret), utc_now()
        ):
            tmp.unlink()
            return None
        os.replace(tmp, path)
        return path

    def admin_token_path(self) -> Path:
        return self.root / ADMIN_TOKEN_FILE

    # grants --------------------------------------------------------------------

    def level(self, who: Principal, row: DatasetRow) -> int:
        if who.admin:
            return LEVELS["admin"]
        return LEVELS[self.catalog.grant(row.id, who.user) or "none"]

    def require(self, who: Principal, name: str, need: str) -> DatasetRow:
        """The dataset row when ``who`` holds ``need`` on it.

        Not readable (or absent): DatasetNotFound, so existence never leaks. Readable but
        short of ``need``: Forbidden.
        """
        row = self.catalog.dataset(names.dataset_name(name))
        if row is None or self.level(who, row) < LEVELS["read"]:
            raise DatasetNotFound(f"dataset {name!r} not found")
        if self.level(who, row) < LEVELS[need]:
            raise Forbidden(f"{who.user} may not do this on {name}: needs {need}")
        return row

    def readable(self, who: Principal) -> set[str] | None:
        """Dataset ids ``who`` may read; None means every dataset (an admin)."""
        if who.admin:
            return None
        return set(self.catalog.grants_of(who.user))

    def grants(self, name: str) -> list[tuple[str, str]]:
        row = self.catalog.existing(name)
        return [(p, perm) for p, perm in self.catalog.grants(row.id)]

    def grant(self, name: str, user: str, perm: str) -> bool:
        """Give ``user`` ``perm`` on a dataset, replacing any grant it had; True when new."""
        names.principal(user)
        permission(perm)
        row = self.catalog.existing(name)
        return self.catalog.set_grant(row.id, user, perm)

    def revoke(self, name: str, user: str) -> bool:
        names.principal(user)
        row = self.catalog.existing(name)
        return self.catalog.delete_grant(row.id, user)

    # checksums -----------------------------------------------------------------

    def sha256(self, oid: str) -> str:
        """The sha256 of an object's bytes, computed once per object and then cached."""
        cached = self.catalog.cached_checksum(oid, "sha256")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        with self.content.reader(oid) as reader:  # loose, packed or chunked alike
            for piece in iter_chunks(reader):
                h.update(piece)
        digest = h.hexdigest()
        self.catalog.cache_checksum(oid, "sha256", digest)
        return digest


def _token(row: dict[str, Any]) -> Token:
    return Token(row["id"], row["user"], row["admin"], row["created_at"])


def _token_id(presented: str) -> str | None:
    if not presented.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, _ = presented[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 16 or any(c not in "0123456789abcdef" for c in token_id):
        return None
    return token_id
