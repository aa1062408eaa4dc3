"""Thread pools a process shares (manifest ranges read in parallel, a large file's chunks
compressed beside its reading), made on first use and made again in a forked child.

A child of ``fork`` inherits a pool's bookkeeping but none of its threads: work handed
to the inherited pool would wait forever. Jobs fork with the store open (a worker
pool, a shell-out after an import), so every pool is forgotten in the child.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def shared_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """This process's pool called ``name`` (``workers`` threads at most)."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    _pools.clear()


os.register_at_fork(after_in_child=_forget_in_child)
