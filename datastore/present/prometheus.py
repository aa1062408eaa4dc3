"""Latency histograms in the Prometheus text format, shared by the views that export them
(the API's request latency, the mount's per-operation latency)."""

from __future__ import annotations

import threading
from bisect import bisect_left


class Histogram:
    """Durations by one label (a route, a FUSE operation), in cumulative buckets.

    Safe to observe from many threads (libfuse calls the mount from several).
    """

    def __init__(self, name: str, help_text: str, label: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.help_text = help_text
        self.label = label
        self.buckets = buckets
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def observe(self, value: str, seconds: float) -> None:
        i = bisect_left(self.buckets, seconds)
        with self._lock:
            counts = self._counts.get(value)
            if counts is None:
                counts = self._counts[value] = [0] * len(self.buckets)
            if i < len(self.buckets):
                counts[i] += 1
            self._sums[value] = self._sums.get(value, 0.0) + seconds
            self._totals[value] = self._totals.get(value, 0) + 1

    def render(self) -> list[str]:
        """The ``# HELP``/``# TYPE`` header and every series, label values sorted."""
        out = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        with self._lock:
            rows = sorted(
                (v, list(c), self._sums[v], self._totals[v]) for v, c in self._counts.items()
            )
        for value, counts, total, count in rows:
            label = f'{self.label}="{value}"'
            cumulative = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                cumulative += n
                out.append(f'{self.name}_bucket{{{label},le="{bound}"}} {cumulative}')
            out.append(f'{self.name}_bucket{{{label},le="+Inf"}} {count}')
            out.append(f"{self.name}_sum{{{label}}} {total:.6f}")
            out.append(f"{self.name}_count{{{label}}} {count}")
        return out
