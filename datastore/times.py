"""Times as the store writes them: ISO 8601 UTC with microseconds and a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    return iso(datetime.now(UTC))


def iso_from_ns(ns: int) -> str:
    return iso(datetime.fromtimestamp(ns / 1e9, UTC))


def iso(at: datetime) -> str:
    """``2026-11-22T10:00:00.000000Z``; isoformat is ~3x faster than strftime, which counts
    when a listing formats thousands of mtimes."""
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_utc(text: str) -> datetime:
    """A time this store wrote back into a datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
