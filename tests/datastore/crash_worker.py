"""A writer for the crash tests: puts, imports (large files chunked one by one, or on the
chunk pool by every other seed), links, snapshots and gcs (which pack and repack) forever,
printing what was acknowledged.

Run as ``python -m tests.datastore.crash_worker STORE SEED``; each line on stdout is printed
only after the operation returned, so the parent knows exactly what ds acknowledged before the
kill.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from datastore.storage import content
from datastore.store import Store


def main(root: str, seed: int, tmp: str) -> None:
    rng = random.Random(seed)
    if seed % 2:  # every other writer cuts its large files on the chunk pool
        content.AHEAD_MIN = 0
    store = Store.open(Path(root))
    i = 0
    while True:
        i += 1
        op = rng.random()
        if op < 0.5:
            path = f"s{seed}/d{i % 7}/f{i}"
            data = rng.randbytes(rng.randint(0, 70_000))
            store.put_bytes("c", path, data)
            print(f"PUT {path} {store.objects.hash_bytes(data)}", flush=True)
        elif op < 0.65:  # an import: small files packed, a large one in chunks
            src = Path(tmp) / f"imp{i}"
            src.mkdir()
            files = {f"g{i}-{n}": rng.randbytes(rng.randint(0, 50_000)) for n in range(4)}
            if rng.random() < 0.3:
                files[f"g{i}-big"] = rng.randbytes(rng.randint(1 << 20, 3 << 20))
            for name, data in files.items():
                (src / name).write_bytes(data)
            store.put("c", [src], f"s{seed}/imp")
            for name, data in files.items():
                print(f"PUT s{seed}/imp/{name} {store.objects.hash_bytes(data)}", flush=True)
        elif op < 0.7:
            path, target = f"s{seed}/d{i % 7}/l{i}", f"f{i - 1}"
            store.symlink("c", path, target)
            print(f"LINK {path} {target}", flush=True)
        elif op < 0.9:
            snap, _ = store.snapshot("c")
            print(f"SNAP {snap.row.id} {snap.row.file_count}", flush=True)
        else:
            store.gc(grace_seconds=0)
            print("GC", flush=True)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(sys.argv[1], int(sys.argv[2]), tmp)
