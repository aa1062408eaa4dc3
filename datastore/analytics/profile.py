"""Column statistics of one table, in the shape SPEC section 6 gives (pandas' conventions).

A profile is a handful of scans over the view ``t`` (see :mod:`datastore.analytics.tabular`), each
computing many aggregates at once, a batch of columns per query:

1. counts, distinct estimates, min, max, mean, correlations;
2. exact quartiles (pandas' linear interpolation), the histograms (edges from pass 1's
   min and max) and the central moment sums around pass 1's mean, from which std,
   skewness and kurtosis follow with pandas' formulas (numerically stable, and cheaper
   than DuckDB's own skewness and kurtosis);
3. outlier counts (from pass 2's quartiles) and exact distinct counts of the columns
   pass 1 estimated to have few distinct values;
4. one grouped scan per categorical column for its top values and distinct count, and
   one per other high-cardinality column for its exact distinct count (DuckDB spills
   these to disk, so ten million distinct values never need one in-memory table);
   integers (and whole-second timestamps) over a small enough range are counted as
   the set bits of a bitmap in pass 3 instead;
5. duplicate rows (none when any column has as many distinct values as rows).

Exact quartiles need a column's values in memory at once (``quantile_cont``). When that
does not fit the memory budget (``exact_values``), pass 1 also computes approximate
quartiles at q +- 0.5%, which bound a window; pass 2 then counts the values below each
window and collects only the values inside it, and the exact order statistics are read
from the window (checked, with a whole-column fallback). Memory stays bounded by the
DuckDB limit whatever the row count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb

from datastore.analytics.tabular import (
    TABLE,
    TableFile,
    columns,
    dtype,
    is_integer,
    kind,
    quote,
    run,
)
from datastore.errors import AnalyticsError

QUANTILES = (0.25, 0.5, 0.75)
WINDOW = 0.005  # approximate quartile +- this bounds the exact one
EXACT_QUANTILE_ROWS = 8_000_000  # values quantile_cont may hold at once (see Limits)
EXACT_DUPLICATE_ROWS = 1_000_000  # above this duplicate rows are counted by row hash
CORRELATION_COLUMNS = 30  # correlations among the first N numeric columns
BATCH_COLUMNS = 40  # columns per query, so 1,000-column tables stay plannable
TOP_VALUES = 10
BINS = 10
BITMAP_BITS = 1 << 27  # 16 MiB per thread: integer ranges up to this use a bitmap
SMALL_DISTINCT = 1_000_000  # columns estimated at or below this are counted together


Progress = Callable[[int, int], None]
PASSES = 5


def _quiet(done: int, total: int) -> None:
    return None


@dataclass
class Column:
    """One column and what the passes have learned about it so far."""

    name: str
    sql_type: str
    kind: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return quote(self.name)

    @property
    def x(self) -> str:
        """The column as DOUBLE, for moments and quantiles."""
        return f"CAST({self.ref} AS DOUBLE)"


def profile(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    exact_values: int = EXACT_QUANTILE_ROWS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every SPEC statistic of ``t``: per column, row_count, duplicate_rows, correlations.

    ``exact_values`` is how many values an exact quantile may hold in memory at once;
    past it quartiles come from windows around approximate ones. ``progress(done,
    total)`` hears of each finished pass (the CLI draws a bar from it).
    """
    step = progress or _quiet
    cols = [Column(n, t, kind(t)) for n, t in columns(con)]
    rows = int(run(con, f"SELECT count(*) FROM {TABLE}", table)[0][0])
    numeric = [c for c in cols if c.kind == "numeric"]
    windowed = rows > exact_values
    step(0, PASSES)
    correlations = _pass1(con, table, cols, numeric[:CORRELATION_COLUMNS], windowed)
    step(1, PASSES)
    if rows:
        live = [c for c in numeric if c.facts["count"] > 0]
        per_query = BATCH_COLUMNS if windowed else max(1, exact_values // rows)
        try:
            _pass2(con, table, live, windowed, per_query)
        except AnalyticsError:
            if windowed:
                raise
            _approx_quartiles(con, table, live)  # exact ones did not fit after all
            _pass2(con, table, live, True, BATCH_COLUMNS)
        step(2, PASSES)
        for c in cols:
            if c.kind == "categorical":
                c.facts["top_values"] = _top_values(con, table, c)
        step(3, PASSES)
        _pass3(con, table, cols)
        step(4, PASSES)
        _high_cardinality_distinct(con, table, cols)
    step(PASSES, PASSES)
    docs = {c.name: _column_doc(c, rows) for c in cols}
    for name, row in correlations.items():
        # exactly 1.0, as pandas reports it, for a column that varies; None for a constant
        row[name] = 1.0 if (docs[name].get("std") or 0) > 0 else None
    return {
        "row_count": rows,
        "column_count": len(cols),
        "duplicate_rows": _duplicate_rows(con, table, cols, rows),
        "columns": docs,
        "correlations": correlations,
        # not part of the stats document: the caller keeps it for the quality report
        "mixed_types": [
            c.name for c in cols if 0 < (c.facts.get("numeric_like") or 0) < c.facts["count"]
        ],
    }


def empty_profile() -> dict[str, Any]:
    """The profile of a zero-byte file: no columns, no rows."""
    return {
        "row_count": 0,
        "column_count": 0,
        "duplicate_rows": 0,
        "columns": {},
        "correlations": {},
    }


# pass 1 ------------------------------------------------------------------------------


def _pass1(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    cols: list[Column],
    corr_cols: list[Column],
    windowed: bool,
) -> dict[str, dict[str, float | None]]:
    """Per-column facts, and the correlations (returned) computed in the first batch."""
    pairs = [(a, b) for i, a in enumerate(corr_cols) for b in corr_cols[i:]]
    extra = [f"corr({a.x}, {b.x})" for a, b in pairs]
    values: list[Any] = []
    for n, batch in enumerate(_batches(cols)):
        exprs: list[str] = []
        for c in batch:
            exprs.extend(_pass1_exprs(c, windowed))
        got = _one_row(con, table, exprs + (extra if n == 0 else []))
        for c in batch:
            c.facts.update(_pass1_facts(c, got, windowed))
        if n == 0:
            values = got  # what the columns left: the correlations
    corr: dict[str, dict[str, float | None]] = {c.name: {} for c in corr_cols}
    for (a, b), r in zip(pairs, values, strict=True):
        corr[a.name][b.name] = corr[b.name][a.name] = _num(r)
    return {a.name: {b.name: corr[a.name][b.name] for b in corr_cols} for a in corr_cols}


def _pass1_exprs(c: Column, windowed: bool) -> list[str]:
    """count, a distinct estimate (where the exact count's method depends on it), and
    for numbers and times min, max (and mean; approximate quartiles when windowed)."""
    exprs = [f"count({c.ref})"]
    if not (is_integer(c.sql_type) or c.sql_type == "BOOLEAN"):
        exprs.append(f"approx_count_distinct({c.ref})")
    if c.kind in ("numeric", "datetime"):
        exprs += [f"min({c.ref})", f"max({c.ref})"]
    if c.sql_type == "TIMESTAMP":  # whole seconds? then a bitmap counts distinct values
        exprs.append(f"count(*) FILTER (WHERE epoch_us({c.ref}) % 1000000 <> 0)")
    if c.sql_type == "VARCHAR":  # numbers among text: the quality report's mixed types
        exprs.append(f"count(*) FILTER (WHERE TRY_CAST({c.ref} AS DOUBLE) IS NOT NULL)")
    if c.kind == "numeric":
        exprs.append(f"avg({c.x})")
        if windowed:
            bounds = [q + d for q in QUANTILES for d in (-WINDOW, WINDOW)]
            exprs.append(f"approx_quantile({c.x}, {bounds})")
    return exprs


def _pass1_facts(c: Column, got: list[Any], windowed: bool) -> dict[str, Any]:
    width = len(_pass1_exprs(c, windowed))
    values, got[:] = got[:width], got[width:]
    facts: dict[str, Any] = {"count": int(values.pop(0))}
    if not (is_integer(c.sql_type) or c.sql_type == "BOOLEAN"):
        facts["approx_distinct"] = values.pop(0)
    if c.kind in ("numeric", "datetime"):
        facts["min"], facts["max"] = values.pop(0), values.pop(0)
    if c.sql_type == "TIMESTAMP":
        facts["subsecond"] = values.pop(0)
    if c.sql_type == "VARCHAR":
        facts["numeric_like"] = values.pop(0)
    if c.kind == "numeric":
        facts["mean"] = values.pop(0)
        if windowed:
            facts["approx"] = values.pop(0)
    return facts


def _approx_quartiles(con: duckdb.DuckDBPyConnection, table: TableFile, live: list[Column]) -> None:
    """Pass 1's approximate quartile bounds, for a windowed pass 2 decided late."""
    bounds = [q + d for q in QUANTILES for d in (-WINDOW, WINDOW)]
    for batch in _batches(live):
        got = _one_row(con, table, [f"approx_quantile({c.x}, {bounds})" for c in batch])
        for c, value in zip(batch, got, strict=True):
            c.facts["approx"] = value


# pass 2 ------------------------------------------------------------------------------


def _pass2(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    live: list[Column],
    windowed: bool,
    per_query: int,
) -> None:
    """Quartiles, histograms and central moment sums; ``per_query`` columns per query
    (as many exact quantiles as the memory budget holds at once)."""
    step = min(per_query, BATCH_COLUMNS)
    for i in range(0, len(live), step):
        batch = live[i : i + step]
        exprs: list[str] = []
        for c in batch:
            exprs.extend(_pass2_exprs(c, windowed))
        got = _one_row(con, table, exprs)
        for c in batch:
            hist, m2, m3, m4 = got[:4]
            del got[:4]
            c.facts["counts"] = [int(_as_dict(hist).get(i, 0)) for i in range(BINS)]
            c.facts["central"] = (m2, m3, m4)
            if windowed:
                windows = got[: 5 * len(QUANTILES)]
                del got[: 5 * len(QUANTILES)]
                c.facts["quartiles"] = _from_windows(con, table, c, windows)
            else:
                c.facts["quartiles"] = [float(v) for v in got.pop(0)]


def _pass2_exprs(c: Column, windowed: bool) -> list[str]:
    c.facts["edges"] = _bin_edges(c.facts["min"], c.facts["max"])
    d = f"({c.x} - {_lit(c.facts['mean'])})"
    exprs = [
        f"histogram({_bucket(c)}) FILTER (WHERE {c.ref} IS NOT NULL)",
        f"sum({d} * {d})",
        f"sum({d} * {d} * {d})",
        f"sum(({d} * {d}) * ({d} * {d}))",
    ]
    if windowed:
        return exprs + _window_exprs(c)
    return [*exprs, f"quantile_cont({c.x}, {list(QUANTILES)})"]


def _bin_edges(lo: Any, hi: Any) -> list[float]:
    """numpy.histogram's edges: 10 equal bins from min to max (+-0.5 when they are equal)."""
    first, last = float(lo), float(hi)
    if first == last:
        first, last = first - 0.5, last + 0.5
    step = (last - first) / BINS
    return [i * step + first for i in range(BINS)] + [last]


def _bucket(c: Column) -> str:
    """The bin of a value, as numpy counts it: edges[i] <= x < edges[i+1], last bin closed."""
    inner = c.facts["edges"][1:BINS]
    whens = " ".join(f"WHEN {c.x} < {_lit(e)} THEN {i}" for i, e in enumerate(inner))
    return f"CASE {whens} ELSE {BINS - 1} END"


def _window_exprs(c: Column) -> list[str]:
    exprs = []
    bounds = c.facts["approx"]
    for j in range(len(QUANTILES)):
        lo, hi = _lit(bounds[2 * j]), _lit(bounds[2 * j + 1])
        exprs += [
            f"count(*) FILTER (WHERE {c.x} < {lo})",
            f"count(*) FILTER (WHERE {c.x} <= {lo})",
            f"count(*) FILTER (WHERE {c.x} < {hi})",
            f"count(*) FILTER (WHERE {c.x} <= {hi})",
            f"list({c.x}) FILTER (WHERE {c.x} > {lo} AND {c.x} < {hi})",
        ]
    return exprs


def _from_windows(
    con: duckdb.DuckDBPyConnection, table: TableFile, c: Column, windows: list[Any]
) -> list[float]:
    """Exact quartiles from the windows; a window that missed its rank falls back to
    quantile_cont over the whole column."""
    n = c.facts["count"]
    bounds = c.facts["approx"]
    out: list[float] = []
    for j, q in enumerate(QUANTILES):
        lt_lo, le_lo, lt_hi, le_hi, inner = windows[5 * j : 5 * j + 5]
        window = _Window(bounds[2 * j], bounds[2 * j + 1], lt_lo, le_lo, lt_hi, le_hi, inner)
        value = window.quantile(q, n)
        if value is None:
            exact = _one_row(con, table, [f"quantile_cont({c.x}, {list(QUANTILES)})"])[0]
            return [float(v) for v in exact]
        out.append(value)
    return out


@dataclass
class _Window:
    """The sorted values between two bounds, and how many sort before them."""

    lo: float
    hi: float
    lt_lo: int
    le_lo: int
    lt_hi: int
    le_hi: int
    inner: list[float] | None

    def __post_init__(self) -> None:
        self.inner = sorted(self.inner or [])

    def at(self, rank: int) -> float | None:
        assert self.inner is not None
        if self.lt_lo <= rank < self.le_lo:
            return self.lo
        if (
            self.le_lo <= rank < self.le_lo + len(self.inner)
            and self.le_lo + len(self.inner) == self.lt_hi
        ):
            return self.inner[rank - self.le_lo]
        if self.lt_hi <= rank < self.le_hi:
            return self.hi
        return None

    def quantile(self, q: float, n: int) -> float | None:
        """pandas' linear interpolation between the order statistics around q * (n - 1)."""
        h = q * (n - 1)
        k = math.floor(h)
        low = self.at(k)
        if low is None:
            return None
        if h == k:
            return low
        high = self.at(k + 1)
        return None if high is None else low + (h - k) * (high - low)


# pass 3 ------------------------------------------------------------------------------


def _pass3(con: duckdb.DuckDBPyConnection, table: TableFile, cols: list[Column]) -> None:
    """Outlier counts, and exact distinct counts of the columns that need no hash table
    of their own: few distinct values, or integers (and whole-second times) over a
    range small enough for a bitmap."""
    for batch in _batches(cols):
        exprs: list[str] = []
        for c in batch:
            exprs.extend(_pass3_exprs(c))
        got = _one_row(con, table, exprs)
        for c in batch:
            if "unique" not in c.facts and (_bitmap(c) is not None or _few_distinct(c)):
                c.facts["unique"] = int(got.pop(0) or 0)
            if "quartiles" in c.facts:
                c.facts["outliers"] = int(got.pop(0))


def _pass3_exprs(c: Column) -> list[str]:
    exprs: list[str] = []
    bitmap = _bitmap(c)
    if "unique" in c.facts:
        pass  # counted with the top values
    elif bitmap is not None:
        exprs.append(bitmap)
    elif _few_distinct(c):
        exprs.append(f"count(DISTINCT {c.ref})")
    if "quartiles" in c.facts:
        q1, _, q3 = c.facts["quartiles"]
        low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        exprs.append(f"count(*) FILTER (WHERE {c.x} < {_lit(low)} OR {c.x} > {_lit(high)})")
    return exprs


def _bitmap(c: Column) -> str | None:
    """Exact distinct count as the set bits of a bitmap over [min, max]: one bit per
    possible value, so no hash table and a fraction of the time."""
    f = c.facts
    if not f.get("count"):
        return None
    if is_integer(c.sql_type) and c.sql_type not in ("HUGEINT", "UHUGEINT", "UBIGINT"):
        lo, hi, value = int(f["min"]), int(f["max"]), f"CAST({c.ref} AS BIGINT)"
    elif c.sql_type == "TIMESTAMP" and f.get("subsecond") == 0:
        lo, hi = _epoch_seconds(f["min"]), _epoch_seconds(f["max"])
        value = f"epoch_us({c.ref}) // 1000000"
    else:
        return None
    if hi - lo > BITMAP_BITS:
        return None
    return f"bit_count(bitstring_agg({value}, {lo}::BIGINT, {hi}::BIGINT))"


def _epoch_seconds(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1)
    return delta.days * 86400 + delta.seconds


def _few_distinct(c: Column) -> bool:
    if c.sql_type == "BOOLEAN":
        return True
    if "approx_distinct" not in c.facts:
        return False  # an integer beyond the bitmap's range: its own grouped scan
    return (c.facts["approx_distinct"] or 0) <= SMALL_DISTINCT


def _high_cardinality_distinct(
    con: duckdb.DuckDBPyConnection, table: TableFile, cols: list[Column]
) -> None:
    """One grouped scan per high-cardinality column: DuckDB can spill it to disk."""
    for c in cols:
        if "unique" in c.facts:
            continue
        sql = (
            f"SELECT count(*) FROM (SELECT {c.ref} FROM {TABLE}"
            f" WHERE {c.ref} IS NOT NULL GROUP BY {c.ref})"
        )
        c.facts["unique"] = int(run(con, sql, table)[0][0])


# pass 4 ------------------------------------------------------------------------------


def _top_values(con: duckdb.DuckDBPyConnection, table: TableFile, c: Column) -> dict[str, int]:
    """The 10 most frequent values, ties broken by value ascending; the same grouped
    scan counts the distinct values."""
    sql = (
        f"SELECT v, n, count(*) OVER () FROM (SELECT {c.ref} AS v, count(*) AS n"
        f" FROM {TABLE} WHERE {c.ref} IS NOT NULL GROUP BY {c.ref})"
        f" ORDER BY n DESC, v ASC LIMIT {TOP_VALUES}"
    )
    got = run(con, sql, table)
    c.facts["unique"] = int(got[0][2]) if got else 0
    return {label(v): int(n) for v, n, _ in got}


def _duplicate_rows(
    con: duckdb.DuckDBPyConnection, table: TableFile, cols: list[Column], rows: int
) -> int:
    """Rows equal to an earlier row (pandas ``duplicated().sum()``; NULL equals NULL).

    A column with as many distinct values as rows proves there are none. Past
    EXACT_DUPLICATE_ROWS rows are told apart by a 64-bit hash of the whole row (a collision
    among 10 million rows has odds of about 1 in 370,000), which keeps memory bounded.
    """
    if rows == 0 or not cols or any(c.facts.get("unique") == rows for c in cols):
        return 0
    if rows <= EXACT_DUPLICATE_ROWS:
        sql = f"SELECT count(*) FROM (SELECT DISTINCT * FROM {TABLE})"
    else:
        sql = f"SELECT count(DISTINCT hash({', '.join(c.ref for c in cols)})) FROM {TABLE}"
    return rows - int(run(con, sql, table)[0][0])


# documents ---------------------------------------------------------------------------


def _column_doc(c: Column, rows: int) -> dict[str, Any]:
    f = c.facts
    missing = rows - f["count"]
    doc: dict[str, Any] = {
        "type": dtype(c.sql_type),
        "unique": f.get("unique", 0),
        "missing": missing,
        "missing_percent": round(100.0 * missing / rows, 6) if rows else 0.0,
    }
    if c.kind == "numeric":
        doc.update(_numeric_doc(f))
    elif c.kind == "datetime":
        doc.update(min=json_value(f["min"]), max=json_value(f["max"]))
    else:
        doc["top_values"] = f.get("top_values", {})
    return doc


def _numeric_doc(f: dict[str, Any]) -> dict[str, Any]:
    count = f["count"]
    central = f.get("central") or (None, None, None)
    std, skewness, kurtosis = _shape(count, f["mean"], *central)
    quartiles = f.get("quartiles") or [None, None, None]
    q1, q2, q3 = (_num(v) for v in quartiles)
    edges = f.get("edges") or _bin_edges(0.0, 1.0)
    return {
        "min": json_value(f["min"]),
        "max": json_value(f["max"]),
        "mean": _num(f["mean"]),
        "std": std,
        "percentiles": {"p25": q1, "p50": q2, "p75": q3},
        "skewness": skewness,
        "kurtosis": kurtosis,
        "iqr": None if q1 is None or q3 is None else q3 - q1,
        "outlier_count": f.get("outliers", 0),
        "histogram": {"counts": f.get("counts", [0] * BINS), "bin_edges": edges},
    }


def _shape(
    n: int, mean: float | None, m2: float | None, m3: float | None, m4: float | None
) -> tuple[float | None, float | None, float | None]:
    """Sample std, skewness and excess kurtosis from central moment sums, with pandas'
    formulas (``Series.std``, ``skew``, ``kurt``): None below 2/3/4 values, and None
    for the skewness and kurtosis of a constant column (zero variance, up to the
    rounding noise of subtracting the mean)."""
    if mean is None or m2 is None or m3 is None or m4 is None:
        return None, None, None
    m2, m3, m4 = float(m2), float(m3), float(m4)
    if not all(math.isfinite(v) for v in (m2, m3, m4)):
        return None, None, None
    std = math.sqrt(m2 / (n - 1)) if n >= 2 else None
    if m2 <= n * (1e-14 * float(mean)) ** 2:
        return (0.0 if std is not None else None), None, None
    skew = kurt = None
    if n >= 3 and m2**1.5 > 0:  # a variance so small its powers underflow: no shape
        skew = n * math.sqrt(n - 1) / (n - 2) * m3 / m2**1.5
    if n >= 4 and m2**2 > 0:
        adj = 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
        kurt = n * (n + 1) * (n - 1) * m4 / ((n - 2) * (n - 3) * m2**2) - adj
    return std, skew, kurt


def label(value: Any) -> str:
    """A value as a JSON object key: booleans as JSON spells them, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON can hold it: NaN and infinities become null."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {label(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _lit(value: float) -> str:
    return f"'{float(value)!r}'::DOUBLE"


def _as_dict(value: Any) -> dict[Any, Any]:
    """A DuckDB MAP as a dict (older clients give {'key': [...], 'value': [...]})."""
    if not value:
        return {}
    if set(value) == {"key", "value"} and isinstance(value["key"], list):
        return dict(zip(value["key"], value["value"], strict=True))
    return dict(value)


def _one_row(con: duckdb.DuckDBPyConnection, table: TableFile, exprs: Sequence[str]) -> list[Any]:
    if not exprs:
        return []
    return list(run(con, f"SELECT {', '.join(exprs)} FROM {TABLE}", table)[0])


def _batches(cols: list[Column]) -> list[list[Column]]:
    return [cols[i : i + BATCH_COLUMNS] for i in range(0, len(cols), BATCH_COLUMNS)]
