"""Shared pieces of every command: ``--store``/``--json`` options, output, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # opening a store loads pyarrow: only commands that need one pay
    from datastore import Store

F = TypeVar("F", bound=Callable[..., Any])
JSON_KEY = "ds.json"  # in the context's meta (shared by the whole tree): --json was given


def common_options(func: F) -> F:
    """``--store`` and ``--json`` on every command, accepted after the command name."""

    @click.option(
        "--store",
        "store_path",
        envvar="DS_STORE",
        type=click.Path(file_okay=False),
        default=None,
        help="Store root (default $DS_STORE or ~/.local/share/ds).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @wraps(func)
    def wrapper(*args: Any, store_path: str | None, as_json: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.obj = Output(store_path, as_json)
        ctx.meta[JSON_KEY] = as_json
        return func(ctx.obj, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Output:
    """What a command needs from its invocation: the store and how to print."""

    def __init__(self, store_path: str | None, as_json: bool) -> None:
        self.store_path = store_path
        self.as_json = as_json
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from datastore import Store

            self._store = Store.open(self.store_path)
        return self._store

    def emit(self, doc: Any, human: Callable[[], None] | str | None = None) -> None:
        """The JSON document with --json, else the human rendering."""
        if self.as_json:
            click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))
        elif callable(human):
            human()
        elif human is not None:
            click.echo(human)
        else:
            click.echo(json.dumps(doc, indent=2, default=str))

    def warn(self, message: str) -> None:
        """A one-line warning on stderr, so --json output on stdout stays one document."""
        click.echo(f"ds: warning: {message}", err=True)

    @contextmanager
    def progress(self, label: str) -> Iterator[Callable[[int, int], None]]:
        """A tqdm bar on stderr that shows only once work has run for a second."""
        from tqdm import tqdm

        bar = tqdm(desc=label, unit="file", delay=1.0, disable=None, file=sys.stderr, leave=False)

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)  # refresh() would draw at once, delay or not

        try:
            yield update
        finally:
            bar.close()


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def table(rows: list[list[str]]) -> None:
    """Left-aligned columns, no borders, like ``ls -l``."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
