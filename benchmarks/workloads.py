"""Seeded workloads shared by every benchmark, so figures compare across runs and tools.

small-many: 20,000 files of 1-16 KiB in 200 directories.
mixed: 2,000 files of 64 KiB-4 MiB (log-uniform) plus a 500 MB CSV and a 200 MB binary.
mutate: 1% of files modified, 0.5% deleted, 1% added, the CSV appended by 1%, 4 KiB
inserted in the middle of the binary.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

SEED = 20261122


def small_many(root: Path, scale: float = 1.0) -> Path:
    rng = random.Random(SEED)
    files = int(20_000 * scale)
    for i in range(files):
        d = root / f"dir{i % 200:03d}"
        if i < 200:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
    return root


def mixed(root: Path, scale: float = 1.0) -> Path:
    rng = random.Random(SEED + 1)
    files = int(2_000 * scale)
    lo, hi = math.log(64 * 1024), math.log(4 * 1024 * 1024)
    for i in range(files):
        d = root / f"part{i % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"blob{i:04d}.dat").write_bytes(rng.randbytes(int(math.exp(rng.uniform(lo, hi)))))
    _csv(root / "big.csv", int(500_000_000 * scale), rng)
    (root / "big.bin").write_bytes(rng.randbytes(int(200_000_000 * scale)))
    return root


def _csv(path: Path, size: int, rng: random.Random) -> None:
    with open(path, "w") as f:
        f.write("id,amount,merchant,flag\n")
        written, i = 0, 0
        while written < size:
            rows = "".join(
                f"{i + k},{rng.random() * 1000:.2f},m{rng.randint(0, 119)},{rng.random() < 0.5}\n"
                for k in range(10_000)
            )
            f.write(rows)
            written += len(rows)
            i += 10_000


def mutate(root: Path, seed: int = SEED + 2) -> None:
    rng = random.Random(seed)
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.name not in ("big.csv", "big.bin")
    )
    n = len(files)
    picks = rng.sample(files, int(n * 0.025))
    modified, deleted = picks[: int(n * 0.01)], picks[int(n * 0.01) : int(n * 0.015)]
    for p in modified:
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    for p in deleted:
        p.unlink()
    for i in range(int(n * 0.01)):
        target = files[i].parent / f"added{i:05d}.bin"
        target.write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
    csv = root / "big.csv"
    if csv.exists():
        size = csv.stat().st_size
        with open(csv, "a") as f:
            f.write("".join(f"{10**9 + k},1.00,m1,True\n" for k in range(size // 100 // 24)))
    binary = root / "big.bin"
    if binary.exists():
        blob = binary.read_bytes()
        mid = len(blob) // 2
        binary.write_bytes(blob[:mid] + rng.randbytes(4096) + blob[mid:])
