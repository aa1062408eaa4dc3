"""Store upkeep: gc, fsck, du, upgrade."""

from __future__ import annotations

import sys

import click

from datastore import names

from .common import Output, common_options, human_size, table


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--grace", default="15m", show_default=True, help="Spare anything younger.")
@common_options
def gc_cmd(out: Output, dry_run: bool, grace: str) -> None:
    """Delete objects and ranges that no snapshot, head or staged file references, then
    pack objects kept as their own files (older than the grace period).

    Safe while the daemon, mounts and uploads run.

    \b
    Example:
      ds gc --dry-run
      ds gc --grace 1h
    """
    with out.progress("gc") as progress:
        report = out.store.gc(names.duration(grace), dry_run, progress)
    verb, pack = ("would remove", "would pack") if dry_run else ("removed", "packed")
    out.emit(
        report,
        f"{verb} {report['objects_removed']} objects and {report['ranges_removed']} ranges,"
        f" {human_size(report['bytes_freed'])}; {pack} {report['objects_packed']} loose"
        f" objects, {human_size(report['bytes_packed'])}",
    )


@click.command("upgrade")
@common_options
def upgrade_cmd(out: Output) -> None:
    """Bring the store to the current format now: pack every object kept as its own file.

    ds gc does the same for objects older than its grace period; an older store opens
    and works without either. Writers wait while it runs, as during gc.

    \b
    Example:
      ds upgrade
    """
    with out.progress("upgrade") as progress:
        report = out.store.upgrade(progress)
    out.emit(
        report,
        f"store format {report['format']}: packed {report['objects_packed']} objects,"
        f" {human_size(report['bytes_packed'])}",
    )


@click.command("fsck")
@common_options
def fsck_cmd(out: Output) -> None:
    """Re-hash every object and range; name the datasets, snapshots and paths damage affects.

    Exits non-zero when anything is missing or corrupt.

    \b
    Example:
      ds fsck
    """
    with out.progress("fsck") as progress:
        report = out.store.fsck(progress)

    def human() -> None:
        click.echo(
            f"checked {report['objects_checked']} objects, {report['ranges_checked']} ranges:"
            f" {'ok' if report['ok'] else str(len(report['problems'])) + ' problem(s)'}"
        )
        for p in report["problems"]:
            click.echo(f"  {p['problem']} {p['kind']} {p['id']}")
            for a in p["affected"]:
                where = a["snapshot"] or "head"
                click.echo(f"    {a['dataset']}@{where} {a['path'] or ''}".rstrip())
        if report["unreferenced_damaged"]:
            click.echo(
                f"  {len(report['unreferenced_damaged'])} damaged object(s) nothing"
                " references (left by a power cut; gc removes them)"
            )

    out.emit(report, human)
    if not report["ok"]:
        sys.exit(1)


@click.command("du")
@click.argument("name", required=False)
@common_options
def du_cmd(out: Output, name: str | None) -> None:
    """Logical, physical and exclusive bytes per dataset, its head and its snapshots.

    \b
    Example:
      ds du sales
    """
    rows = out.store.du(name)

    def human() -> None:
        lines = [["DATASET/SNAPSHOT", "LOGICAL", "PHYSICAL", "EXCLUSIVE"]]
        for d in rows:
            lines.append([d["dataset"], *(human_size(d[k]) for k in _KEYS)])
            head = d["head"]
            label = "  head (changed)" if head["dirty"] else "  head"
            lines.append([label, *(human_size(head[k]) for k in _KEYS)])
            for s in d["snapshots"]:
                lines.append(["  " + s["id"][:12], *(human_size(s[k]) for k in _KEYS)])
        table(lines)

    out.emit({"items": rows}, human)


_KEYS = ("logical_bytes", "physical_bytes", "exclusive_bytes")

COMMANDS = [gc_cmd, fsck_cmd, du_cmd, upgrade_cmd]
