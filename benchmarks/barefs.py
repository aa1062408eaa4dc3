"""The least a filesystem on mfusepy's high-level API does per file: an in-memory tree,
nothing stored, no checks of ours. The mount benchmark creates files on it beside the
native disk and ds's mount, so what the binding itself costs per file is a measured row,
not a guess: ds's mount cannot create files faster than this on the same machine.

Run as ``python -m benchmarks.barefs MOUNTPOINT`` (foreground; ``fusermount3 -u`` ends it).
"""

from __future__ import annotations

import errno
import stat
import sys
import threading
from typing import Any

import mfusepy


class BareFS(mfusepy.Operations):
    """Files and directories in two dicts; enough for create, write, close and stat."""

    use_ns = True

    def __init__(self) -> None:
        self.attrs: dict[str, dict[str, Any]] = {"/": {"st_mode": stat.S_IFDIR | 0o755}}
        self.data: dict[str, bytearray] = {}
        self.mutex = threading.Lock()

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        try:
            return self.attrs[path]
        except KeyError:
            raise mfusepy.FuseOSError(errno.ENOENT) from None

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        with self.mutex:
            self.attrs[path] = {"st_mode": stat.S_IFREG | mode, "st_size": 0, "st_nlink": 1}
            self.data[path] = bytearray()
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        with self.mutex:
            self.attrs[path] = {"st_mode": stat.S_IFDIR | mode, "st_nlink": 2}
        return 0

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self.mutex:
            buf = self.data[path]
            buf[offset : offset + len(data)] = data
            self.attrs[path]["st_size"] = len(buf)
        return len(data)

    def readdir(self, path: str, fh: int) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = [p[len(prefix) :] for p in self.attrs if p.startswith(prefix) and p != "/"]
        return [".", "..", *(n for n in names if "/" not in n)]


def main() -> None:
    mfusepy.FUSE(BareFS(), sys.argv[1], foreground=True, default_permissions=True)


if __name__ == "__main__":
    main()
