"""Version commands: snapshot, log, tag, untag, forget, lineage, diff, checkout."""

from __future__ import annotations

import click

from datastore import InvalidRequest, KeepRules, names, shapes

from .common import Output, common_options, human_size, table


@click.command("snapshot")
@click.argument("name")
@click.option("--tag", default=None, help="Tag the new (or, on a clean head, latest) snapshot.")
@click.option("-m", "--message", default="", help="What changed.")
@click.option(
    "--source", "sources", multiple=True, metavar="OTHER@REF", help="An upstream version."
)
@common_options
def snapshot_cmd(
    out: Output, name: str, tag: str | None, message: str, sources: tuple[str, ...]
) -> None:
    """Freeze the head as an immutable snapshot.

    \b
    Example:
      ds snapshot sales --tag v1.0 -m "November close" --source raw@v3
    """
    snap, created = out.store.snapshot(name, tag, message, sources)
    doc = {**shapes.snapshot(snap), "created": created}
    if created:
        text = f"{name}: snapshot {snap.row.id} ({snap.row.file_count} files)"
    else:
        text = f"{name}: nothing changed; latest snapshot is {snap.row.id}"
    if tag:
        text += f", tagged {tag}"
    out.emit(doc, text)


@click.command("log")
@click.argument("name")
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=0), help="Show at most N.")
@click.option("--since", default=None, metavar="TIME", help="Only snapshots from TIME on (UTC).")
@common_options
def log_cmd(out: Output, name: str, limit: int | None, since: str | None) -> None:
    """Snapshots of a dataset, newest first.

    \b
    Example:
      ds log sales -n 5 --since 2026-11-01
    """
    when = names.since_time(since) if since is not None else None
    docs = [shapes.snapshot(s) for s in out.store.log(name, limit, when)]

    def human() -> None:
        table(
            [
                [
                    d["id"][:12],
                    d["created_at"][:19].replace("T", " "),
                    str(d["file_count"]),
                    human_size(d["size_bytes"]),
                    ",".join(d["tags"]),
                    d["message"],
                ]
                for d in docs
            ]
        )

    out.emit(shapes.page(docs, len(docs) or 1, 0), human)


@click.command("tag")
@click.argument("name")
@click.argument("args", nargs=-1, required=True, metavar="REF TAG | TAG --history")
@click.option("--force", is_flag=True, help="Move an existing tag (the move is kept in history).")
@click.option("--history", is_flag=True, help="Show every move of TAG.")
@common_options
def tag_cmd(out: Output, name: str, args: tuple[str, ...], force: bool, history: bool) -> None:
    """Name a snapshot, move a tag, or show a tag's history.

    \b
    Example:
      ds tag sales latest v1.1
      ds tag sales 3f9c2a1b v1.0 --force
      ds tag sales v1.0 --history
    """
    if history:
        if len(args) != 1:
            raise InvalidRequest("usage: ds tag NAME TAG --history")
        current, events = out.store.tag_history(name, args[0])
        doc = shapes.tag(args[0], current, events)
        out.emit(
            doc,
            lambda: table(
                [[e["at"], e["snapshot"] or "(removed)", e["by"]] for e in doc["history"]]
            ),
        )
        return
    if len(args) != 2:
        raise InvalidRequest("usage: ds tag NAME REF TAG [--force]")
    ref, tag = args
    snapshot_id, outcome = out.store.tag(name, ref, tag, force)
    current, events = out.store.tag_history(name, tag)
    human = {"created": "created", "moved": "moved", "unchanged": "already at"}[outcome]
    out.emit(
        {**shapes.tag(tag, current, events), "created": outcome == "created"},
        f"{name}: {tag} {human} -> {snapshot_id}",
    )


@click.command("untag")
@click.argument("name")
@click.argument("tag")
@common_options
def untag_cmd(out: Output, name: str, tag: str) -> None:
    """Remove a tag (the snapshot stays).

    \b
    Example:
      ds untag sales v1.0-rc1
    """
    out.store.untag(name, tag)
    out.emit({"dataset": name, "untagged": tag}, f"{name}: removed tag {tag}")


@click.command("forget")
@click.argument("name")
@click.argument("refs", nargs=-1, metavar="[REF...]")
@click.option("--keep-last", type=click.IntRange(min=0), help="Keep the N newest snapshots.")
@click.option("--keep-daily", type=click.IntRange(min=0), help="Keep the newest of each of N days.")
@click.option(
    "--keep-within",
    metavar="DURATION",
    help="Keep snapshots taken within DURATION (e.g. 30d) of the newest.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; forget nothing.")
@common_options
def forget_cmd(
    out: Output,
    name: str,
    refs: tuple[str, ...],
    keep_last: int | None,
    keep_daily: int | None,
    keep_within: str | None,
    dry_run: bool,
) -> None:
    """Drop snapshots: the named ones, and with keep rules every one no rule keeps.

    Tagged snapshots are kept unless named; the head's base is always kept. Run
    `ds gc` afterwards to reclaim the space only they held.

    \b
    Example:
      ds forget sales --keep-last 10 --keep-daily 30 --dry-run
      ds forget sales v0.9-rc1 3f9c2a1b
    """
    within = names.duration(keep_within) if keep_within is not None else None
    rules = KeepRules(keep_last, keep_daily, within)
    result = out.store.forget(name, refs, rules, dry_run)
    verb = "would forget" if dry_run else "forgot"
    lines = [f"{name}: {verb} {s}" for s in result.forgotten]
    lines.append(
        f"{name}: {verb} {len(result.forgotten)} snapshots, kept {len(result.kept)}"
        + ("" if dry_run or not result.forgotten else "; ds gc reclaims their space")
    )
    out.emit(shapes.forgetting(result), "\n".join(lines))


@click.command("lineage")
@click.argument("spec", metavar="NAME[@REF]")
@common_options
def lineage_cmd(out: Output, spec: str) -> None:
    """A version's parent chain, the upstream versions it was built from, and the
    datasets built from it (forgotten snapshots are marked, not skipped).

    \b
    Example:
      ds lineage sales@v1.1
    """
    doc = out.store.lineage(spec)

    def human() -> None:
        click.echo(f"{doc['dataset']}@{doc['snapshot']}")
        for p in doc["parents"]:
            mark = " (forgotten)" if p.get("forgotten") else ""
            click.echo(f"  parent   {p['id'][:12]}  {','.join(p['tags'])}{mark}")
        for s in doc["sources"]:
            mark = " (forgotten)" if s.get("forgotten") else ""
            click.echo(f"  source   {s['dataset']}@{s['snapshot'][:12]}{mark}")
        for c in doc["consumers"]:
            click.echo(f"  consumer {c['dataset']}@{c['snapshot'][:12]}")

    out.emit(doc, human)


@click.command("diff")
@click.argument("a", metavar="NAME@REF")
@click.argument("b", required=False, metavar="[NAME@REF]")
@common_options
def diff_cmd(out: Output, a: str, b: str | None) -> None:
    """Files added, removed, modified and renamed between two versions (or one and the head).

    \b
    Example:
      ds diff sales@v1.0 sales@v1.1
    """
    doc = out.store.diff(a, b)

    def human() -> None:
        for e in doc["added"]:
            click.echo(f"A {e['path']}")
        for e in doc["removed"]:
            click.echo(f"D {e['path']}")
        for e in doc["modified"]:
            click.echo(f"M {e['path']}")
        for e in doc["renamed"]:
            click.echo(f"R {e['from']} -> {e['to']}")
        s = doc["summary"]
        click.echo(
            f"{s['added']} added, {s['removed']} removed, {s['modified']} modified,"
            f" {s['renamed']} renamed",
            err=True,
        )

    out.emit(doc, human)


@click.command("checkout")
@click.argument("spec", metavar="NAME@REF")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option(
    "--link",
    is_flag=True,
    help="Hard-link the stored objects instead of copying. Writing through a link damages "
    "the store: use only for read-only consumers.",
)
@common_options
def checkout_cmd(out: Output, spec: str, dest: str, link: bool) -> None:
    """Materialize a version as plain files (reflink where the filesystem has it, else copy).

    \b
    Example:
      ds checkout sales@v1.0 /scratch/sales-v1
    """
    if link:
        out.warn(
            "--link: files in the checkout are the store's objects; writing to them "
            "(even as root) corrupts every snapshot that holds them"
        )
    with out.progress("checkout") as progress:
        count = out.store.checkout(spec, dest, progress, link=link)
    out.emit({"spec": spec, "dest": dest, "files": count}, f"checked out {count} files to {dest}")


COMMANDS = [
    snapshot_cmd,
    log_cmd,
    tag_cmd,
    untag_cmd,
    forget_cmd,
    lineage_cmd,
    diff_cmd,
    checkout_cmd,
]
