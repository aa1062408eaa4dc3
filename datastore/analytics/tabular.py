"""Tables in object files: which format a file is, and a DuckDB connection that reads it.

Object files have no extension, so the format is decided here once — by the entry's
name first, then by the first bytes — and passed to DuckDB explicitly. Parquet is read
in place (DuckDB reads only the columns and row groups a query needs); text formats are
parsed once into a scratch DuckDB database on the store's disk, so that the several
passes a profile makes do not parse the text again and memory stays bounded.

Every connection gets a memory limit, a thread count and a spill directory
(:class:`Limits`, from ``DS_ANALYTICS_MEMORY`` / ``DS_ANALYTICS_THREADS``), so a large
file streams through DuckDB instead of being loaded whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb

from datastore.categories import extension
from datastore.errors import AnalyticsError, MalformedTable, NotTabular

FORMATS = ("csv", "tsv", "csv.gz", "parquet", "jsonl")
_BY_EXTENSION = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "csv.gz": "csv.gz",
    "tsv.gz": "csv.gz",
    "parquet": "parquet",
    "pq": "parquet",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", "\t", ";", "|")
TABLE = "t"  # every query reads the view of this name
DEFAULT_MEMORY = "300MB"
STALE_SCRATCH_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of the machine one analysis may use."""

    memory: str = DEFAULT_MEMORY
    threads: int = 0  # 0: DuckDB's default (every core)

    def exact_values(self) -> int:
        """How many values an exact quantile may hold at once: about 24 bytes each
        (the value, DuckDB's copy while sorting, slack) within the memory limit. Past
        it, or when DuckDB runs out of memory anyway, quartiles are windowed."""
        return max(1_000_000, memory_bytes(self.memory) // 24)

    @classmethod
    def from_env(cls) -> Limits:
        threads = os.environ.get("DS_ANALYTICS_THREADS", "")
        return cls(
            memory=os.environ.get("DS_ANALYTICS_MEMORY", DEFAULT_MEMORY),
            threads=int(threads) if threads.isdigit() else 0,
        )


@dataclass(frozen=True, slots=True)
class TableFile:
    """An object file and the table format it holds."""

    path: Path
    name: str  # the dataset path, for messages and extension rules
    format: str
    delimiter: str = ","
    object: str = ""  # the object id: the cache key
    encoding: str = "utf-8"  # of a text format: utf-8, utf-16 (with a BOM) or latin-1

    @property
    def empty(self) -> bool:
        return self.path.stat().st_size == 0


def memory_bytes(text: str) -> int:
    """``512MB``, ``1GiB``, ``300 MB`` -> bytes (DuckDB's spellings)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"memory limit {text!r} is not like 512MB or 1GB")
    power = " KMGT".index(m.group(2).upper() or " ")
    base = 1024 if (m.group(3) or "").lower() == "ib" else 1000
    return int(float(m.group(1)) * base**power)


# detection -------------------------------------------------------------------------


def detect(path: Path, name: str, object_id: str = "") -> TableFile:
    """The table format of a file: extension first, then content; else ``not_tabular``."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    by_name = _BY_EXTENSION.get(extension(name))
    by_content = _content_format(head)
    if by_content in ("parquet", "csv.gz"):
        fmt = by_content  # unmistakable magic bytes win over a misleading name
    elif by_name is not None:
        fmt = by_name
        if head and not _is_text(head):
            raise NotTabular(f"{name} is named like {fmt} but holds binary data")
    elif by_content is not None and head:
        fmt = by_content
    else:
        raise NotTabular(f"{name} is not a table (csv, tsv, csv.gz, parquet or jsonl)")
    if fmt == "csv.gz":
        head = _gunzip_head(path, name)
        if head and not _is_text(head):
            raise NotTabular(f"{name} is gzip but not compressed text")
    if fmt == "parquet":
        return TableFile(path, name, fmt, ",", object_id or path.name)
    encoding = _encoding(head) or "utf-8"
    if fmt == "jsonl" and encoding != "utf-8":
        raise NotTabular(f"{name}: JSON lines must be UTF-8, this looks like {encoding}")
    text = _decode(head, encoding)
    delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(text)
    return TableFile(path, name, fmt, delimiter, object_id or path.name, encoding)


def _content_format(head: bytes) -> str | None:
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "csv.gz"
    encoding = _encoding(head) if head else None
    if encoding is None:
        return None
    text = _decode(head, encoding)
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    if lines and all(ln.lstrip().startswith("{") for ln in lines):
        return "jsonl"
    if lines and _sniff_delimiter(text, strict=True) is not None:
        return "csv"
    return None


def _is_text(head: bytes) -> bool:
    return _encoding(head) is not None


_CONTROL = set(range(0x00, 0x09)) | set(range(0x0E, 0x20)) | {0x7F}


def _encoding(head: bytes) -> str | None:
    """utf-8, utf-16 (marked by a BOM) or latin-1 text; None for binary data."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:
            return "utf-8"  # a multi-byte character cut by the sample
    if _CONTROL.isdisjoint(head) and sum(b >= 0x80 for b in head) < len(head) // 4:
        return "latin-1"  # a few accented letters in otherwise plain text
    return None


def _decode(head: bytes, encoding: str) -> str:
    return head.decode(encoding, "replace")


def _gunzip_head(path: Path, name: str) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise MalformedTable(f"{name} is not readable gzip: {exc}") from exc


def _sniff_delimiter(text: str, strict: bool = False) -> Any:
    """The delimiter that splits the first lines into the same number (>1) of fields.

    ``strict`` (content sniffing of an unnamed file) answers None when nothing fits;
    otherwise a single-column file gets ``,``.
    """
    lines = [ln for ln in text.splitlines()[:-1] or text.splitlines() if ln.strip()][:20]
    best: tuple[int, str] | None = None
    for d in DELIMITERS:
        counts = [len(r) for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=d)]
        fits = counts and counts[0] > 1 and all(c == counts[0] for c in counts)
        if fits and (best is None or counts[0] > best[0]):
            best = (counts[0], d)
    if best is not None:
        return best[1]
    return None if strict else ","


# reading -----------------------------------------------------------------------------


def connect(limits: Limits, spill: Path, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the memory limit, thread count and spill directory set."""
    con = duckdb.connect(database)
    con.execute(f"SET memory_limit='{limits.memory}'")
    if limits.threads:
        con.execute(f"SET threads={int(limits.threads)}")
    con.execute(f"SET temp_directory='{_sql_str(str(spill))}'")
    con.execute("SET preserve_insertion_order=false")
    return con


@contextmanager
def open_table(
    table: TableFile, scratch_root: Path, limits: Limits, materialize: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection where the view ``t`` is the table (NaN read as NULL and -0.0 as 0.0,
    as pandas counts them).

    Text formats are parsed once into a scratch database when ``materialize`` (several
    passes follow); a preview reads the first rows straight from the file instead.
    """
    with open_tables({TABLE: table}, scratch_root, limits, materialize) as con:
        yield con


@contextmanager
def open_tables(
    tables: dict[str, TableFile], scratch_root: Path, limits: Limits, materialize: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection with a view per table, named by the keys (compare joins two)."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    _sweep(scratch_root)
    work = Path(tempfile.mkdtemp(prefix="analysis-", dir=scratch_root))
    try:
        parse_once = materialize and any(t.format != "parquet" for t in tables.values())
        con = connect(limits, work / "spill", str(work / "t.duckdb") if parse_once else ":memory:")
        try:
            for view, table in tables.items():
                once = parse_once and table.format != "parquet"
                _create_view(con, table, once, view=view, scratch=work)
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sweep(scratch_root: Path) -> None:
    """Remove scratch left by an analysis that was killed (days-old, so never a live one)."""
    cutoff = time.time() - STALE_SCRATCH_SECONDS
    for old in scratch_root.glob("analysis-*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:
            continue


def _create_view(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    parse_once: bool,
    full_sniff: bool = False,
    view: str = TABLE,
    scratch: Path | None = None,
) -> None:
    """The view ``view``; text is parsed into a table first when ``parse_once``.

    DuckDB's type sniffer samples rows; when a later row does not fit the sniffed type,
    the whole file is sniffed instead (slower, but never a wrong type or a failure). A
    text file DuckDB cannot read whose lines end both in CRLF and in LF (a CRLF export
    appended to on Unix, which pandas reads) is read from a copy with LF endings in
    ``scratch``.
    """
    if table.empty:
        raise NotTabular(f"{table.name} is empty")
    source = _source_sql(table, full_sniff)
    try:
        if parse_once:
            con.execute(f"CREATE OR REPLACE TABLE raw_{view} AS SELECT * FROM {source}")
            source = f"raw_{view}"
        cols = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.ConversionException as exc:
        if full_sniff or table.format in ("parquet", "jsonl"):
            raise _malformed(table, exc) from exc
        _create_view(con, table, parse_once, True, view)
        return
    except duckdb.OutOfMemoryException as exc:
        raise out_of_memory(table, exc) from exc
    except duckdb.Error as exc:
        uniform = _uniform_line_endings(table, scratch, view) if scratch is not None else None
        if uniform is None:
            raise _malformed(table, exc) from exc
        _create_view(con, uniform, parse_once, full_sniff, view)
        return
    _check_field_counts(table, len(cols))
    floats = [c[0] for c in cols if c[1] in ("DOUBLE", "FLOAT", "REAL")]
    replace = ", ".join(f"{_no_nan(quote(c))} AS {quote(c)}" for c in floats)
    select = f"* REPLACE ({replace})" if replace else "*"
    con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {select} FROM {source}")


def _no_nan(c: str) -> str:
    """NaN as NULL and -0.0 as 0.0, as pandas counts them. Spelled with isfinite, not
    isnan: DuckDB folds isnan() to false from Parquet statistics, which leave NaN out."""
    return (
        f"CASE WHEN isfinite({c}) THEN {c} + 0.0"
        f" WHEN {c} = 'inf'::DOUBLE OR {c} = '-inf'::DOUBLE THEN {c} END"
    )


def _uniform_line_endings(table: TableFile, scratch: Path, view: str) -> TableFile | None:
    """A copy of a text table with every CRLF turned into LF, when its lines end both
    ways; None when they do not (or the format is not plain 8-bit text)."""
    if table.format not in ("csv", "tsv") or table.encoding not in ("utf-8", "latin-1"):
        return None
    crlf = lf = False
    tail = b""
    with open(table.path, "rb") as f:
        while block := f.read(1 << 20):
            data = tail + block
            crlf = crlf or b"\r\n" in data
            lf = lf or re.search(b"(?<!\r)\n", data) is not None
            tail = data[-1:]
    if not (crlf and lf):
        return None
    copy = scratch / f"{view}.lf.{table.format}"
    with open(table.path, "rb") as src, open(copy, "wb") as out:
        carry = b""
        while block := src.read(1 << 20):
            data = carry + block
            carry = data[-1:] if data.endswith(b"\r") else b""
            out.write((data[:-1] if carry else data).replace(b"\r\n", b"\n"))
        out.write(carry)
    return replace(table, path=copy)


def resniff(con: duckdb.DuckDBPyConnection, table: TableFile, view: str = TABLE) -> None:
    """Re-create a view from a whole-file type sniff (a row past the sample did not fit)."""
    _create_view(con, table, parse_once=False, full_sniff=True, view=view)


def _source_sql(table: TableFile, full_sniff: bool) -> str:
    path = _sql_str(str(table.path))
    if table.format == "parquet":
        return f"read_parquet('{path}')"
    if table.format == "jsonl":
        return f"read_json('{path}', format='newline_delimited', compression='none')"
    compression = "gzip" if table.format == "csv.gz" else "none"
    delim = _sql_str(table.delimiter)
    base = f"read_csv('{path}', delim='{delim}', compression='{compression}'"
    if table.encoding != "utf-8":
        base += f", encoding='{table.encoding}'"
    if _header_only(table):
        return f"{base}, header=true, all_varchar=true)"
    return f"{base}{', sample_size=-1' if full_sniff else ''})"


def _check_field_counts(table: TableFile, found: int) -> None:
    """DuckDB may read a ragged file as a wider, headerless table; refuse that instead,
    naming the first line whose field count differs from the first line's."""
    if table.format not in ("csv", "tsv", "csv.gz"):
        return
    opener = gzip.open if table.format == "csv.gz" else open
    with opener(table.path, "rt", encoding=table.encoding, errors="replace", newline="") as f:
        first = next(csv.reader(f, delimiter=table.delimiter), [])
    if len(first) != found:
        ragged = _first_ragged_line(table)
        if ragged is not None:
            raise MalformedTable(f"{table.name}: {ragged}")


def _header_only(table: TableFile) -> bool:
    """One line and nothing else: DuckDB would take it for data, pandas for a header."""
    opener = gzip.open if table.format == "csv.gz" else open
    with opener(table.path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    lines = [ln for ln in _decode(head, table.encoding).splitlines() if ln.strip()]
    return len(lines) == 1 and len(head) < SNIFF_BYTES


def _malformed(table: TableFile, exc: duckdb.Error | None) -> MalformedTable:
    """The clearest message we can give: the first ragged line if there is one."""
    ragged = _first_ragged_line(table)
    if ragged is not None:
        return MalformedTable(f"{table.name}: {ragged}")
    detail = _detail(table, exc) if exc is not None else "cannot be parsed"
    return MalformedTable(f"{table.name} is not a readable {table.format} table: {detail}")


def _first_ragged_line(table: TableFile) -> str | None:
    opener = gzip.open if table.format == "csv.gz" else open
    try:
        with opener(table.path, "rt", encoding=table.encoding, newline="") as f:
            reader = csv.reader(f, delimiter=table.delimiter)
            expected = None
            for row in reader:
                if not row:
                    continue
                if expected is None:
                    expected = len(row)
                elif len(row) != expected:
                    return (
                        f"line {reader.line_num} has {len(row)} fields, the header has {expected}"
                    )
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        return f"cannot be read as {table.format}: {exc}"
    return None


def run(con: duckdb.DuckDBPyConnection, sql: str, table: TableFile) -> list[tuple[Any, ...]]:
    """Execute and fetch, turning DuckDB's errors into ds errors that name the file."""
    try:
        return con.execute(sql).fetchall()
    except duckdb.OutOfMemoryException as exc:
        raise out_of_memory(table, exc) from exc
    except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise _malformed(table, exc) from exc
    except duckdb.Error as exc:
        raise AnalyticsError(f"{table.name}: {_detail(table, exc)}") from exc


def out_of_memory(table: TableFile, exc: Exception) -> AnalyticsError:
    return AnalyticsError(
        f"{table.name}: out of memory within the analytics limit; raise "
        f"DS_ANALYTICS_MEMORY ({_detail(table, exc)})"
    )


def columns(con: duckdb.DuckDBPyConnection, view: str = TABLE) -> list[tuple[str, str]]:
    """(name, DuckDB type) of every column of a view."""
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]


# naming and quoting --------------------------------------------------------------------

_INT_DTYPES = {
    "TINYINT": "int8",
    "SMALLINT": "int16",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "HUGEINT": "int128",
    "UTINYINT": "uint8",
    "USMALLINT": "uint16",
    "UINTEGER": "uint32",
    "UBIGINT": "uint64",
    "UHUGEINT": "uint128",
}
_OTHER_DTYPES = {
    "DOUBLE": "float64",
    "FLOAT": "float32",
    "REAL": "float32",
    "BOOLEAN": "bool",
    "VARCHAR": "object",
    "TIMESTAMP": "datetime64[us]",
    "TIMESTAMP_NS": "datetime64[ns]",
    "TIMESTAMP_MS": "datetime64[ms]",
    "TIMESTAMP_S": "datetime64[s]",
    "TIMESTAMP WITH TIME ZONE": "datetime64[us, UTC]",
    "DATE": "date",
    "TIME": "time",
}


def dtype(sql_type: str) -> str:
    """A pandas-style dtype name for a DuckDB type (what users of pandas platforms read)."""
    if sql_type in _INT_DTYPES:
        return _INT_DTYPES[sql_type]
    if sql_type in _OTHER_DTYPES:
        return _OTHER_DTYPES[sql_type]
    if sql_type.startswith("DECIMAL"):
        return "float64"
    return "object"


def is_integer(sql_type: str) -> bool:
    return sql_type in _INT_DTYPES


def kind(sql_type: str) -> str:
    """``numeric``, ``datetime`` or ``categorical``: which statistics a column gets."""
    if sql_type in _INT_DTYPES or sql_type in ("DOUBLE", "FLOAT", "REAL"):
        return "numeric"
    if sql_type.startswith("DECIMAL"):
        return "numeric"
    if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
        return "datetime"
    return "categorical"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().splitlines()[0]) if text.strip() else text


_SERVER_PATH = re.compile(r"(?:/[^\s\"'/]+)+/(?:objects|tmp-analytics)/[^\s\"']+")


def _detail(table: TableFile, exc: BaseException) -> str:
    """The first line of an engine's message, with the store's own file paths (an
    object, a scratch copy) replaced by the dataset path: no error shows the server's
    disk layout to a client."""
    text = _first_line(str(exc)).replace(str(table.path), table.name)
    return _SERVER_PATH.sub(table.name, text)
