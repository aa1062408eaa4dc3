"""``python -m mount STORE MOUNTPOINT [--allow-other] [--read-only]``: the mount process."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mount")
    parser.add_argument("store", type=Path)
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--allow-other", action="store_true")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--metrics", type=Path, help="write operation latencies here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="ds mount: %(levelname)s %(message)s")
    serve(
        args.store,
        args.mountpoint,
        allow_other=args.allow_other,
        read_only=args.read_only,
        metrics_path=args.metrics,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
