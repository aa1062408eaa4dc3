"""File categories (SPEC section 7), decided by extension first, then by content.

The category is stored with each entry when it is written, so listings can filter by it
and per-dataset rules can refuse a type on every way in.
"""

from __future__ import annotations

CATEGORIES = ("tabular", "data", "text", "image", "audio", "archive", "binary")

_BY_EXTENSION: dict[str, str] = {}
for _cat, _exts in {
    "tabular": "csv tsv parquet pq jsonl ndjson csv.gz tsv.gz",
    "data": "json yaml yml xml toml",
    "text": "txt md rst log html htm py sql ini cfg",
    "image": "png jpg jpeg gif bmp tif tiff webp svg",
    "audio": "wav mp3 flac ogg m4a aac",
    "archive": "zip tar gz tgz bz2 xz zst 7z",
}.items():
    for _ext in _exts.split():
        _BY_EXTENSION[_ext] = _cat

_MAGIC: list[tuple[bytes, str]] = [
    (b"PAR1", "tabular"),
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
    (b"RIFF", "audio"),
    (b"ID3", "audio"),
    (b"fLaC", "audio"),
    (b"PK\x03\x04", "archive"),
    (b"\x1f\x8b", "archive"),
]


def extension(name: str) -> str:
    """The lower-case extension, keeping a compression suffix: ``x.csv.gz`` -> ``csv.gz``."""
    base = name.rsplit("/", 1)[-1].lower()
    parts = base.split(".")
    if len(parts) < 2:
        return ""
    if len(parts) >= 3 and parts[-1] in ("gz", "bz2", "xz", "zst"):
        return ".".join(parts[-2:])
    return parts[-1]


def categorize(name: str, head: bytes) -> str:
    """Category from the name, falling back to the first bytes of the content."""
    ext = extension(name)
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    for magic, category in _MAGIC:
        if head.startswith(magic):
            return category
    return "text" if _looks_like_text(head) else "binary"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 4
    return True
