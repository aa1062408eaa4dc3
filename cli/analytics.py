"""Table commands: schema, preview, stats, quality, compare, export.

Each prints a readable table for people (with small text histograms) and, with
``--json``, the same document the REST API answers with.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datastore import InvalidRequest, names

from .common import Output, common_options, table

if TYPE_CHECKING:
    from datastore import Analytics

BARS = " ▁▂▃▄▅▆▇█"
# datastore.analytics (and DuckDB) load only when a table command runs, so every other
# command starts as fast as before; these mirror its EXPORT_FORMATS and PREVIEW_DEFAULT.
EXPORT_FORMATS = ("csv", "parquet", "jsonl")
PREVIEW_DEFAULT = 20


def _analytics(out: Output) -> Analytics:
    from datastore import Analytics

    return Analytics(out.store)


def _target(spec: str) -> tuple[str, str]:
    """``NAME[@REF]/PATH`` -> (``NAME[@REF]``, PATH); a path is required."""
    name, ref, path = names.split_ref_path(spec)
    if not path:
        raise InvalidRequest("name a table: NAME[@REF]/PATH")
    return (f"{name}@{ref}" if ref else name), path


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def sparkline(counts: list[int]) -> str:
    """A histogram in one line of block characters, scaled to its tallest bin."""
    top = max(counts) if counts else 0
    if not top:
        return " " * len(counts)
    return "".join(BARS[0 if c == 0 else max(1, round(8 * c / top))] for c in counts)


@click.command("schema")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@common_options
def schema_cmd(out: Output, spec: str) -> None:
    """Columns and their types, and the row count, of a CSV, TSV, Parquet or JSON lines file.

    \b
    Example:
      ds schema sales@v1.0/raw/2026-11.csv
    """
    version, path = _target(spec)
    doc = _analytics(out).schema(version, path)

    def human() -> None:
        click.echo(f"{doc['path']} ({doc['format']}, {doc['row_count']} rows)")
        table([["column", "dtype"], *[[c["name"], c["dtype"]] for c in doc["columns"]]])

    out.emit(doc, human)


@click.command("preview")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@click.option("-n", "--limit", default=PREVIEW_DEFAULT, show_default=True, help="Rows to show.")
@common_options
def preview_cmd(out: Output, spec: str, limit: int) -> None:
    """The first rows of a table.

    \b
    Example:
      ds preview sales/raw/2026-11.csv -n 5
    """
    version, path = _target(spec)
    doc = _analytics(out).preview(version, path, limit)

    def human() -> None:
        header = [c["name"] for c in doc["columns"]]
        table([header, *[[_fmt(r[h]) for h in header] for r in doc["rows"]]])

    out.emit(doc, human)


@click.command("stats")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@common_options
def stats_cmd(out: Output, spec: str) -> None:
    """Per-column statistics: missing, unique, mean, std, quartiles, histogram, top values.

    Computed once per file content and cached, so asking again is instant.

    \b
    Example:
      ds stats sales@v1.0/raw/2026-11.parquet
    """
    version, path = _target(spec)
    with out.progress("stats") as progress:  # shows only past a second
        doc = _analytics(out).stats(version, path, progress)
    out.emit(doc, lambda: _stats_human(doc))


def _stats_human(doc: dict[str, Any]) -> None:
    click.echo(
        f"{doc['path']} ({doc['format']}): {doc['row_count']} rows, "
        f"{doc['column_count']} columns, {doc['duplicate_rows']} duplicate rows"
    )
    rows = [["column", "type", "missing", "unique", "min", "mean", "max", "std", "histogram"]]
    for name, c in doc["columns"].items():
        missing = f"{c['missing']} ({c['missing_percent']:.1f}%)"
        if "histogram" in c:
            spark = sparkline(c["histogram"]["counts"])
            stats = [_fmt(c["min"]), _fmt(c["mean"]), _fmt(c["max"]), _fmt(c["std"]), spark]
        elif "top_values" in c:
            top = ", ".join(f"{k} ({v})" for k, v in list(c["top_values"].items())[:3])
            stats = ["", "", "", "", f"top: {top}" if top else ""]
        else:
            stats = [_fmt(c.get("min")), "", _fmt(c.get("max")), "", ""]
        rows.append([name, c["type"], missing, str(c["unique"]), *stats])
    table(rows)


@click.command("quality")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@common_options
def quality_cmd(out: Output, spec: str) -> None:
    """A data quality report: missing values, duplicates, constant and mixed-type columns,
    outliers, empty file, and an overall score out of 100.

    \b
    Example:
      ds quality sales/raw/2026-11.csv
    """
    version, path = _target(spec)
    doc = _analytics(out).quality(version, path)

    def human() -> None:
        click.echo(f"{doc['path']}: quality score {doc['overall_score']:.1f} / 100")
        table([["pass" if c["passed"] else "FAIL", c["name"], c["details"]] for c in doc["checks"]])

    out.emit(doc, human)


@click.command("compare")
@click.argument("spec", metavar="NAME/PATH")
@click.option("--from", "from_ref", required=True, help="The earlier version (a ref).")
@click.option("--to", "to_ref", default=None, help="The later version (default: the head).")
@click.option("--key", default=None, help="Key column: count rows added/removed/changed.")
@common_options
def compare_cmd(out: Output, spec: str, from_ref: str, to_ref: str | None, key: str | None) -> None:
    """Compare a table between two versions: schema changes, drift (PSI) per column,
    and with --key the rows added, removed and changed.

    \b
    Example:
      ds compare sales/raw/transactions.parquet --from v1.0 --to v1.1 --key id
    """
    name, ref, path = names.split_ref_path(spec)
    if not path:
        raise InvalidRequest("name a table: NAME/PATH")
    doc = _analytics(out).compare(name, path, from_ref, to_ref or ref, key)
    out.emit(doc, lambda: _compare_human(doc))


def _compare_human(doc: dict[str, Any]) -> None:
    s = doc["summary"]
    click.echo(
        f"{doc['path']}: {s['from']} -> {s['to']}: {s['from_rows']} -> {s['to_rows']} rows"
        f" ({s['rows_diff']:+d})"
    )
    for label, key in (("added", "columns_added"), ("removed", "columns_removed")):
        if s[key]:
            click.echo(f"columns {label}: {', '.join(s[key])}")
    for t in s["columns_type_changed"]:
        click.echo(f"type changed: {t['column']} {t['from']} -> {t['to']}")
    if "rows" in doc:
        r = doc["rows"]
        click.echo(
            f"rows: {r['added']} added, {r['removed']} removed, {r['changed']} changed,"
            f" {r['unchanged']} unchanged"
        )
    rows = [["column", "type", "from mean", "to mean", "shift %", "psi", "drift"]]
    for name, c in doc["column_diffs"].items():
        rows.append(
            [
                name,
                c["type"],
                _fmt(c.get("from_mean")),
                _fmt(c.get("to_mean")),
                _fmt(c.get("mean_shift_pct")),
                _fmt(c.get("psi")),
                c.get("shift_level") or "-",
            ]
        )
    table(rows)


@click.command("export")
@click.argument("spec", metavar="NAME[@REF]/PATH")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="Output.")
@click.option(
    "-o", "--output", required=True, type=click.Path(), help="File to write ('-': stdout)."
)
@common_options
def export_cmd(out: Output, spec: str, fmt: str, output: str) -> None:
    """Convert a table to CSV, Parquet or JSON lines.

    \b
    Example:
      ds export sales@v1.0/raw/2026-11.csv --format parquet -o 2026-11.parquet
    """
    version, path = _target(spec)
    an = _analytics(out)
    if output == "-":
        with an.exported(version, path, fmt) as (tmp, _type), tmp.open("rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
        return
    target = Path(output)
    content_type = an.export(version, path, fmt, target)
    doc = {
        "spec": spec,
        "format": fmt,
        "content_type": content_type,
        "output": str(target),
        "size": target.stat().st_size,
    }
    out.emit(doc, f"wrote {target} ({fmt}, {doc['size']} bytes)")


COMMANDS = [schema_cmd, preview_cmd, stats_cmd, quality_cmd, compare_cmd, export_cmd]
