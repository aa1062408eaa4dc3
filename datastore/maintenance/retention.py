"""Which snapshots ``ds forget``'s keep rules keep (restic's ``forget --keep-*`` model).

A snapshot is kept when any rule keeps it; the caller adds what is never dropped
unasked (tagged snapshots, the head's base) and what was named to be dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from datastore.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class KeepRules:
    """``last``: the N newest. ``daily``: the newest of each of the N newest days (UTC)
    that have a snapshot. ``within``: every snapshot taken at most this many seconds
    before the newest one (measured from the newest, not from now, so a dataset nobody
    wrote to for a year keeps its recent history)."""

    last: int | None = None
    daily: int | None = None
    within: float | None = None

    def __post_init__(self) -> None:
        for label, value in (("keep_last", self.last), ("keep_daily", self.daily)):
            if value is not None and (isinstance(value, bool) or value < 0):
                raise InvalidRequest(f"{label} must be a whole number, 0 or more")
        if self.within is not None and self.within < 0:
            raise InvalidRequest("keep_within must not be negative")

    def given(self) -> bool:
        return any(v is not None for v in (self.last, self.daily, self.within))


@dataclass(frozen=True, slots=True)
class Dated:
    id: str
    created_at: datetime


def kept(snapshots: Sequence[Dated], rules: KeepRules) -> set[str]:
    """Ids the rules keep; ``snapshots`` newest first."""
    keep: set[str] = set()
    if rules.last:
        keep.update(s.id for s in snapshots[: rules.last])
    if rules.daily:
        days: set[str] = set()
        for s in snapshots:
            day = s.created_at.date().isoformat()
            if day not in days:
                if len(days) == rules.daily:
                    break
                days.add(day)
                keep.add(s.id)
    if rules.within is not None and snapshots:
        newest = snapshots[0].created_at
        keep.update(
            s.id for s in snapshots if (newest - s.created_at).total_seconds() <= rules.within
        )
    return keep
