"""Validation of everything a user names: datasets, tags, principals, paths and refs.

Every interface funnels outside input through these functions before anything is
written, so a bad name is refused the same way, with the same code, everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from datastore.errors import InvalidName, InvalidPath, InvalidRequest

DATASET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
PRINCIPAL_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SNAPSHOT_ID_RE = re.compile(r"[0-9a-f]{32}")
ID_PREFIX_RE = re.compile(r"[0-9a-f]{8,32}")
TIME_REF_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
HEAD_REF = "head"  # NAME@head is NAME: the head itself (SPEC 2)
RESERVED_TAGS = frozenset({"latest", HEAD_REF})
# control characters (C0, DEL, C1) and bidi overrides and isolates, which make a listed
# name read differently from what it is (SPEC 2); a backslash stays legal, as on POSIX
UNSAFE_CHARS = re.compile("[\x01-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


def dataset_name(name: str) -> str:
    if not isinstance(name, str) or not DATASET_RE.fullmatch(name):
        raise InvalidName(
            f"invalid dataset name {name!r}: use 1-100 of a-z 0-9 . _ -, starting with a letter"
            " or digit"
        )
    return name


def tag_name(tag: str) -> str:
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise InvalidName(
            f"invalid tag {tag!r}: use 1-100 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    if tag in RESERVED_TAGS:
        raise InvalidName(f"invalid tag {tag!r}: the name is reserved")
    return tag


def principal(user: str) -> str:
    if not isinstance(user, str) or not PRINCIPAL_RE.fullmatch(user):
        raise InvalidName(f"invalid user name {user!r}: use 1-64 of a-z 0-9 . _ -")
    return user


def file_path(path: str) -> str:
    """A dataset-relative POSIX path; refuses rather than rewrites anything unsafe."""
    if not isinstance(path, str) or path == "":
        raise InvalidPath("invalid path: empty")
    if "\x00" in path:
        raise InvalidPath("invalid path: contains a NUL byte")
    bad = UNSAFE_CHARS.search(path)
    if bad is not None:
        raise InvalidPath(
            f"invalid path {path!r}: contains the control or bidi character"
            f" U+{ord(bad.group()):04X}"
        )
    if path.startswith("/"):
        raise InvalidPath(f"invalid path {path!r}: must be relative to the dataset root")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPath(f"invalid path {path!r}: not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidPath(f"invalid path: longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidPath(f"invalid path {path!r}: empty, '.' or '..' component")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise InvalidPath(f"invalid path: component longer than {MAX_COMPONENT_BYTES} bytes")
    return path


def link_target(target: str) -> str:
    """A symbolic link's target: any UTF-8 text a path can hold (absolute, ``..``, dangling
    all allowed, as POSIX allows them; it is stored, never followed by the store)."""
    if not isinstance(target, str) or target == "":
        raise InvalidPath("invalid link target: empty")
    if "\x00" in target:
        raise InvalidPath("invalid link target: contains a NUL byte")
    try:
        encoded = target.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPath(f"invalid link target {target!r}: not valid UTF-8") from exc
    if len(encoded) >= MAX_PATH_BYTES:
        raise InvalidPath(f"invalid link target: {MAX_PATH_BYTES} bytes or longer")
    return target


def dir_path(path: str) -> str:
    """A directory inside a dataset; '' (or '.') is the root, and a trailing '/' is
    allowed (``--to raw/``). A leading '/' is refused like any absolute path: it most
    likely means a path on the user's machine, not one in the dataset."""
    if path in ("", ".", None):
        return ""
    if not isinstance(path, str):
        raise InvalidPath("invalid path: not a string")
    return file_path(path[:-1] if path.endswith("/") and path != "/" else path)


def split_ref(spec: str) -> tuple[str, str | None]:
    """``name`` or ``name@ref`` -> (name, ref or None), both validated for shape;
    ``name@head`` is the head, so its ref is None too."""
    if not isinstance(spec, str):
        raise InvalidName("dataset must be a string")
    name, sep, ref = spec.partition("@")
    dataset_name(name)
    if not sep or ref == HEAD_REF:
        return name, None
    return name, ref_text(ref)


def canonical_spec(spec: str) -> str:
    """``name@head`` spelled ``name``; every other spec as it is."""
    name, ref = split_ref(spec)
    return name if ref is None else spec


def split_ref_path(spec: str) -> tuple[str, str | None, str]:
    """``name[@ref][/path]`` -> (name, ref, path), the form the CLI takes."""
    head, _, path = spec.partition("/")
    name, ref = split_ref(head)
    return name, ref, dir_path(path) if path else ""


def ref_text(ref: str) -> str:
    if not ref:
        raise InvalidName("empty ref after '@'")
    if ref == "latest" or TAG_RE.fullmatch(ref) or TIME_REF_RE.fullmatch(ref):
        return ref
    raise InvalidName(
        f"invalid ref {ref!r}: use a tag, a snapshot id (8+ hex), 'latest', 'head' or a UTC"
        " time like 2026-11-01T12:00:00Z"
    )


def parse_time_ref(ref: str) -> datetime | None:
    if not TIME_REF_RE.fullmatch(ref):
        return None
    try:
        return datetime.strptime(ref.replace("Z", "+0000"), _time_format(ref)).astimezone(UTC)
    except ValueError as exc:
        raise InvalidName(f"invalid time ref {ref!r}: {exc}") from exc


def since_time(text: str) -> datetime:
    """A ``--since`` bound: a UTC time as refs spell it, or a date (its midnight, UTC)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00Z"
    when = parse_time_ref(text)
    if when is None:
        raise InvalidRequest(
            f"invalid time {text!r}: use a UTC time like 2026-11-01T12:00:00Z or a date"
        )
    return when


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """Seconds of a duration as users spell one: ``90`` or ``90s``, ``15m``, ``2h``,
    ``30d``, ``4w``."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not match:
        raise InvalidRequest(f"invalid duration {text!r}: use e.g. 0, 90, 15m, 2h, 30d, 4w")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _time_format(ref: str) -> str:
    return "%Y-%m-%dT%H:%M:%S.%f%z" if "." in ref else "%Y-%m-%dT%H:%M:%S%z"


def page(limit: object, offset: object) -> tuple[int, int]:
    """List paging shared by every view: default 100, clamped at 1000, never negative."""
    try:
        lim = 100 if limit in (None, "") else int(str(limit))
        off = 0 if offset in (None, "") else int(str(offset))
    except ValueError as exc:
        raise InvalidRequest("limit and offset must be whole numbers") from exc
    if lim < 0 or off < 0:
        raise InvalidRequest("limit and offset must not be negative")
    return min(lim, 1000), off
