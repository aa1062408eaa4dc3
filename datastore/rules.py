"""Per-dataset rules: which file types a dataset accepts and how large a file may be.

Rules live in the dataset's ``rules`` column as a small JSON object::

    {"allow_categories": ["tabular", "text"], "allow_extensions": ["csv", "md"],
     "max_bytes": 1048576}

Every key is optional; an empty object means "anything goes". When both allow lists are
given a file passes if it matches either (a category *or* an extension). The Store checks
them on every way in (``put``, ``put_stream``, ``put_file_at``), so the inbox, the CLI,
the API and the mount all refuse the same files with the same codes:
``invalid_file_type`` (415) and ``file_too_large`` (413).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datastore.categories import CATEGORIES, extension
from datastore.errors import FileTooLarge, InvalidFileType, InvalidRequest

KEYS = ("allow_categories", "allow_extensions", "max_bytes")


@dataclass(frozen=True, slots=True)
class Rules:
    allow_categories: tuple[str, ...] = ()
    allow_extensions: tuple[str, ...] = ()
    max_bytes: int | None = None

    @property
    def restricts_type(self) -> bool:
        return bool(self.allow_categories or self.allow_extensions)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form: only the keys that restrict something."""
        out: dict[str, Any] = {}
        if self.allow_categories:
            out["allow_categories"] = list(self.allow_categories)
        if self.allow_extensions:
            out["allow_extensions"] = list(self.allow_extensions)
        if self.max_bytes is not None:
            out["max_bytes"] = self.max_bytes
        return out


def parse(raw: Mapping[str, Any] | None) -> Rules:
    """Validate a rules object from a user (CLI, API) or the catalog; 400 on anything odd."""
    if not raw:
        return Rules()
    if not isinstance(raw, Mapping):
        raise InvalidRequest("rules must be a JSON object")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise InvalidRequest(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    categories = _strings(raw.get("allow_categories"), "allow_categories")
    bad = [c for c in categories if c not in CATEGORIES]
    if bad:
        raise InvalidRequest(
            f"unknown categor{'y' if len(bad) == 1 else 'ies'} {', '.join(bad)};"
            f" known: {', '.join(CATEGORIES)}"
        )
    extensions = tuple(
        e.lower().lstrip(".") for e in _strings(raw.get("allow_extensions"), "allow_extensions")
    )
    max_bytes = raw.get("max_bytes")
    if max_bytes is not None and (
        not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0
    ):
        raise InvalidRequest("max_bytes must be a non-negative integer")
    return Rules(tuple(sorted(set(categories))), tuple(sorted(set(extensions))), max_bytes)


def normalize(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the catalog stores: validated, sorted, without empty keys."""
    return parse(raw).to_dict()


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(f"{key} must be a list of non-empty strings")
    return tuple(value)


def check_size(rules: Rules, path: str, size: int) -> None:
    """Refuse a file over the dataset's limit (before its bytes are read where possible)."""
    if rules.max_bytes is not None and size > rules.max_bytes:
        raise FileTooLarge(
            f"{path!r} is {size} bytes; this dataset accepts at most {rules.max_bytes}"
        )


def check_type(rules: Rules, path: str, category: str) -> None:
    """Refuse a file whose category and extension are both outside the allow lists."""
    if not rules.restricts_type:
        return
    if category in rules.allow_categories:
        return
    ext = extension(path)
    if ext and (ext in rules.allow_extensions or ext.rsplit(".", 1)[-1] in rules.allow_extensions):
        return
    allowed = [*rules.allow_categories, *(f".{e}" for e in rules.allow_extensions)]
    raise InvalidFileType(
        f"{path!r} is {category}{f' (.{ext})' if ext else ''}; this dataset accepts only"
        f" {', '.join(allowed)}"
    )


def check(rules: Rules, path: str, size: int, category: str) -> None:
    check_size(rules, path, size)
    check_type(rules, path, category)
