"""``python -m benchmarks [--workload NAME] [--quick] [--json PATH]``: run and print a table."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import bench_analytics, bench_api, bench_ingest, bench_mount, bench_store

# the other suites, each a module with run(quick) -> rows
SUITES: dict[str, Any] = {
    "analytics": bench_analytics,
    "mount": bench_mount,
    "api": bench_api,
    "ingest": bench_ingest,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    choices = [*bench_store.WORKLOADS, *SUITES, "all"]
    parser.add_argument("--workload", choices=choices, default=None, help="one workload only")
    parser.add_argument("--quick", action="store_true", help="reduced sizes for a smoke check")
    parser.add_argument("--json", dest="json_path", type=Path, help="write the rows here")
    parser.add_argument(
        "--peers", action="store_true", help="ds beside DVC, restic, git-annex and cp -a"
    )
    args = parser.parse_args(argv)
    if args.peers:
        from .peers import run_peers

        rows = run_peers(args.quick)
    else:
        rows = collect(args.workload, args.quick)
    print_table(rows)
    if args.json_path:
        doc = {"machine": machine(), "date": datetime.now(UTC).isoformat(), "rows": rows}
        args.json_path.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def collect(workload: str | None, quick: bool) -> list[dict[str, Any]]:
    if workload in bench_store.WORKLOADS:
        return bench_store.run_workload(workload, quick)
    if workload in SUITES:
        rows: list[dict[str, Any]] = SUITES[workload].run(quick)
        return rows
    rows = bench_store.run_all(quick)
    if workload == "all":
        for module in SUITES.values():
            rows.extend(module.run(quick))
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ["workload", "tool", "metric", "value", "unit"]
    cells = [header] + [[str(r[h]) if h != "value" else _fmt(r[h]) for h in header] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def _fmt(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
