"""File commands on a head or a version: put, get, ls, cat, rm, status."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from datastore import Entry, InvalidRequest, names, shapes

from .common import Output, common_options, human_size, table


@click.command("put")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--to", "to", default="", help="Directory inside the dataset (default: root).")
@click.option(
    "-L",
    "--follow-links",
    is_flag=True,
    help="Store what symbolic links point at instead of the links (as cp -L).",
)
@common_options
def put_cmd(out: Output, name: str, sources: tuple[str, ...], to: str, follow_links: bool) -> None:
    """Add files and directories to the head (a directory's contents go under --to).

    Re-importing a directory reads only files whose size, mtime or inode changed.
    Symbolic links inside a directory are stored as links, never followed out of it,
    unless --follow-links is given.

    \b
    Example:
      ds put sales ./exports/2026-11 --to raw/2026-11
    """
    with out.progress("put") as progress:
        result = out.store.put(name, list(sources), to, progress, follow_links=follow_links)
    doc = {
        "dataset": name,
        "added": result.added,
        "modified": result.modified,
        "unchanged": result.unchanged,
        "bytes_hashed": result.bytes_hashed,
        "skipped": [{"source": src, "reason": why} for src, why in result.skipped],
    }
    for src, why in result.skipped:
        out.warn(f"skipped {src}: {why}")
    out.emit(
        doc,
        f"{name}: {len(result.added)} added, {len(result.modified)} modified,"
        f" {result.unchanged} unchanged ({human_size(result.bytes_hashed)} read)"
        + (f", {len(result.skipped)} skipped" if result.skipped else ""),
    )


@click.command("get")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@click.argument("dest", type=click.Path())
@common_options
def get_cmd(out: Output, spec: str, dest: str) -> None:
    """Copy a file or directory out of a version.

    \b
    Example:
      ds get sales@v1.0/raw/2026-11.csv ./2026-11.csv
    """
    name, ref, path = names.split_ref_path(spec)
    version = f"{name}@{ref}" if ref else name
    entry = out.store.stat(version, path)
    target = Path(dest)
    if entry.is_dir:
        count = _get_tree(out, version, path, target)
    else:
        if target.is_dir():
            target = target / Path(path).name
        _get_one(out, version, entry, target)
        count = 1
    out.emit(
        {"spec": spec, "dest": str(target), "files": count}, f"wrote {count} file(s) to {target}"
    )


def _get_tree(out: Output, version: str, path: str, target: Path) -> int:
    """Directories and files first, symbolic links last: nothing written here then
    passes through a link the version holds, wherever it points."""
    entries = out.store.ls(version, path, recursive=True)
    count = 0
    for e in sorted(entries, key=lambda e: e.is_link):
        rel = e.path[len(path) + 1 :] if path else e.path
        dst = target / rel
        if e.is_dir:
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        _get_one(out, version, e, dst)
        count += 1
    return count


def _get_one(out: Output, version: str, entry: Entry, dst: Path) -> None:
    """A file's bytes, or a link made again as a link (never followed)."""
    if entry.target is not None:
        os.symlink(entry.target, dst)
        return
    with out.store.open_file(version, entry.path) as src, open(dst, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)


@click.command("ls")
@click.argument("spec", metavar="NAME[@REF][/PATH]")
@click.option("-R", "--recursive", is_flag=True, help="Everything below, not just children.")
@common_options
def ls_cmd(out: Output, spec: str, recursive: bool) -> None:
    """List a directory of a head or a version.

    \b
    Example:
      ds ls sales@v1.0/raw -R
    """
    name, ref, path = names.split_ref_path(spec)
    entries = out.store.ls(f"{name}@{ref}" if ref else name, path, recursive)
    doc = shapes.listing(entries, recursive)  # what GET .../files?recursive= answers
    docs = doc["items"]

    def human() -> None:
        table(
            [
                [
                    d["mode"],
                    human_size(d["size"]) if d["type"] == "file" else "-",
                    d["mtime"][:19].replace("T", " "),
                    d["path"] + _suffix(d),
                ]
                for d in docs
            ]
        )

    out.emit(doc, human)


def _suffix(doc: dict[str, Any]) -> str:
    """What ``ls -F``-style listings add to a path: / for a directory, a link's target."""
    if doc["type"] == "dir":
        return "/"
    return f" -> {doc['target']}" if doc["type"] == "symlink" else ""


@click.command("cat")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@common_options
def cat_cmd(out: Output, spec: str) -> None:
    """Write a file's bytes to standard output.

    \b
    Example:
      ds cat sales@latest/raw/2026-11.csv | head
    """
    name, ref, path = names.split_ref_path(spec)
    if not path:
        raise InvalidRequest("name a file: NAME[@REF]/PATH")
    with out.store.open_file(f"{name}@{ref}" if ref else name, path) as f:
        shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
    sys.stdout.buffer.flush()


@click.command("rm")
@click.argument("specs", nargs=-1, required=True, metavar="NAME/PATH...")
@common_options
def rm_cmd(out: Output, specs: tuple[str, ...]) -> None:
    """Remove files or directories from the head.

    \b
    Example:
      ds rm sales/raw/bad.csv sales/tmp
    """
    parsed = [names.split_ref_path(s) for s in specs]
    datasets = {(n, r) for n, r, _ in parsed}
    if len(datasets) != 1:
        raise InvalidRequest("ds rm takes paths of one dataset at a time")
    ((name, ref),) = datasets
    if any(not p for _, _, p in parsed):
        raise InvalidRequest("name a path inside the dataset: NAME/PATH")
    removed = out.store.rm(f"{name}@{ref}" if ref else name, [p for _, _, p in parsed])
    out.emit({"dataset": name, "removed": removed}, f"{name}: removed {len(removed)} file(s)")


@click.command("status")
@click.argument("name")
@common_options
def status_cmd(out: Output, name: str) -> None:
    """Staged changes of the head against its base snapshot.

    \b
    Example:
      ds status sales
    """
    doc = out.store.status(name)

    def human() -> None:
        staged = doc["staged"]
        if not doc["dirty"]:
            click.echo(f"{name}: clean (base {doc['base'] or 'none'})")
            return
        click.echo(f"{name}: changes since {doc['base'] or 'the start'}")
        for label, mark in (("added", "A"), ("modified", "M"), ("removed", "D")):
            for p in staged[label]:
                click.echo(f"  {mark} {p}")
        for r in staged["renamed"]:
            click.echo(f"  R {r['from']} -> {r['to']}")

    out.emit(doc, human)


COMMANDS = [put_cmd, get_cmd, ls_cmd, cat_cmd, rm_cmd, status_cmd]
