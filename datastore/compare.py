"""Two versions of one table: schema diff, drift per column, and keyed row changes.

Both tables are views in one DuckDB connection (``a`` is the ``from`` version, ``b`` the
``to`` version). Per column it reports what SPEC section 6 lists: means, standard
deviations and missing shares of both, the mean shift, and the population stability
index (PSI) on 10 bins cut at the ``from`` version's deciles, an empty bin's share taken
as 0.0001; categorical columns report categories added and removed and a PSI over the
categories. With a key column, one full outer join counts rows added, removed, changed
(any common column differs, NULL equal to NULL) and unchanged, and keeps a few changed
rows as samples. Keys are expected to be unique; NULL keys never match.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import duckdb

from .errors import InvalidRequest
from .profile import EXACT_QUANTILE_ROWS, json_value, label
from .tabular import TableFile, columns, dtype, kind, open_tables, quote, run

if TYPE_CHECKING:
    from .analytics import Analytics

DECILES = [round(0.1 * i, 1) for i in range(1, 10)]
EMPTY_SHARE = 0.0001
MAX_CATEGORIES = 1000  # past this a column's categories are not listed or compared
LISTED_CATEGORIES = 20
SAMPLE_ROWS = 5
A, B = "a", "b"


def shift_level(psi: float | None) -> str | None:
    """SPEC's levels: below 0.1 low, 0.1 to 0.25 moderate, above 0.25 high."""
    if psi is None:
        return None
    return "low" if psi < 0.1 else "moderate" if psi <= 0.25 else "high"


def psi(from_counts: list[int], to_counts: list[int]) -> float | None:
    """Population stability index of two binnings of the same bins."""
    nf, nt = sum(from_counts), sum(to_counts)
    if not nf or not nt:
        return None
    total = 0.0
    for f, t in zip(from_counts, to_counts, strict=True):
        fs = f / nf or EMPTY_SHARE
        ts = t / nt or EMPTY_SHARE
        total += (ts - fs) * math.log(ts / fs)
    return total


def compare_tables(an: Analytics, a: TableFile, b: TableFile, key: str | None) -> dict[str, Any]:
    """The compare document (without the ``from``/``to`` labels, which depend on refs)."""
    if a.empty or b.empty:
        return _empty_compare(an, a, b, key)
    with open_tables({A: a, B: b}, an.scratch, an.limits) as con:
        ta, tb = dict(columns(con, A)), dict(columns(con, B))
        if key is not None and (key not in ta or key not in tb):
            raise InvalidRequest(f"key column {key!r} is not in both versions")
        common = [n for n in ta if n in tb]
        fa = _facts(con, a, A, ta, deciles=True, large_rows=EXACT_QUANTILE_ROWS)
        large = fa["rows"] > EXACT_QUANTILE_ROWS
        fb = _facts(con, b, B, tb, deciles=False, large_rows=EXACT_QUANTILE_ROWS)
        diffs = _column_diffs(con, a, b, ta, tb, common, fa, fb)
        doc: dict[str, Any] = {
            "object_from": a.object,
            "object_to": b.object,
            "summary": _summary(ta, tb, fa["rows"], fb["rows"]),
            "column_diffs": diffs,
            "approximate_deciles": large,
        }
        if key is not None:
            doc["rows"] = _keyed(con, a, ta, tb, key, common)
        return doc


def _summary(ta: dict[str, str], tb: dict[str, str], ra: int, rb: int) -> dict[str, Any]:
    return {
        "from_rows": ra,
        "to_rows": rb,
        "rows_diff": rb - ra,
        "from_columns": len(ta),
        "to_columns": len(tb),
        "columns_added": [n for n in tb if n not in ta],
        "columns_removed": [n for n in ta if n not in tb],
        "columns_type_changed": [
            {"column": n, "from": dtype(ta[n]), "to": dtype(tb[n])}
            for n in ta
            if n in tb and dtype(ta[n]) != dtype(tb[n])
        ],
    }


def _empty_compare(an: Analytics, a: TableFile, b: TableFile, key: str | None) -> dict[str, Any]:
    """One side is a zero-byte file: no columns, no rows on that side."""
    sa = an.stats_of(a)
    sb = an.stats_of(b)
    ta = {n: c["type"] for n, c in sa["columns"].items()}
    tb = {n: c["type"] for n, c in sb["columns"].items()}
    summary = _summary(ta, tb, sa["row_count"], sb["row_count"])
    summary["columns_type_changed"] = []
    doc: dict[str, Any] = {
        "object_from": a.object,
        "object_to": b.object,
        "summary": summary,
        "column_diffs": {},
        "approximate_deciles": False,
    }
    if key is not None:
        doc["rows"] = {
            "added": sb["row_count"],
            "removed": sa["row_count"],
            "changed": 0,
            "unchanged": 0,
            "samples": [],
        }
    return doc


# per-version facts ----------------------------------------------------------------------


def _facts(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    view: str,
    types: dict[str, str],
    deciles: bool,
    large_rows: int,
) -> dict[str, Any]:
    """Row count; per column count, mean, std (numeric) and distinct estimate; deciles."""
    rows = int(run(con, f"SELECT count(*) FROM {view}", table)[0][0])
    exprs: list[str] = []
    layout: list[tuple[str, str]] = []
    for n, t in types.items():
        c, x = quote(n), f"CAST({quote(n)} AS DOUBLE)"
        exprs.append(f"count({c})")
        layout.append((n, "count"))
        if kind(t) == "numeric":
            exprs += [f"avg({x})", f"stddev_samp({x})"]
            layout += [(n, "mean"), (n, "std")]
            if deciles:
                fn = "approx_quantile" if rows > large_rows else "quantile_cont"
                exprs.append(f"{fn}({x}, {DECILES})")
                layout.append((n, "deciles"))
        elif kind(t) == "datetime":
            exprs += [f"min({c})", f"max({c})"]
            layout += [(n, "min"), (n, "max")]
        else:
            exprs.append(f"approx_count_distinct({c})")
            layout.append((n, "distinct"))
    per: dict[str, dict[str, Any]] = {n: {} for n in types}
    if exprs:
        got = run(con, f"SELECT {', '.join(exprs)} FROM {view}", table)[0]
        for (n, what), v in zip(layout, got, strict=True):
            per[n][what] = v
    return {"rows": rows, "columns": per}


# column diffs ---------------------------------------------------------------------------


def _column_diffs(
    con: duckdb.DuckDBPyConnection,
    a: TableFile,
    b: TableFile,
    ta: dict[str, str],
    tb: dict[str, str],
    common: list[str],
    fa: dict[str, Any],
    fb: dict[str, Any],
) -> dict[str, Any]:
    numeric = [n for n in common if kind(ta[n]) == kind(tb[n]) == "numeric"]
    bins = _numeric_bins(con, a, b, numeric, fa)
    out: dict[str, Any] = {}
    for n in common:
        ca, cb = fa["columns"][n], fb["columns"][n]
        doc: dict[str, Any] = {
            "missing_from": _share(fa["rows"] - ca["count"], fa["rows"]),
            "missing_to": _share(fb["rows"] - cb["count"], fb["rows"]),
        }
        if n in numeric:
            doc = {"type": "numeric", **_numeric_diff(ca, cb), **doc}
            value = psi(*bins[n]) if n in bins else None
            doc.update(psi=_round(value), shift_level=shift_level(value))
        elif kind(ta[n]) == kind(tb[n]) == "datetime":
            doc = {"type": "datetime", **doc}
            doc.update(
                from_min=json_value(ca["min"]),
                from_max=json_value(ca["max"]),
                to_min=json_value(cb["min"]),
                to_max=json_value(cb["max"]),
            )
        else:
            doc = {"type": "categorical", **doc, **_categorical_diff(con, a, b, n, ca, cb)}
        out[n] = doc
    return out


def _numeric_diff(ca: dict[str, Any], cb: dict[str, Any]) -> dict[str, Any]:
    fm, tm = _num(ca.get("mean")), _num(cb.get("mean"))
    shift = None
    if fm is not None and tm is not None and fm != 0:
        shift = 100.0 * (tm - fm) / abs(fm)
    return {
        "from_mean": fm,
        "to_mean": tm,
        "from_std": _num(ca.get("std")),
        "to_std": _num(cb.get("std")),
        "mean_shift_pct": _round(shift),
    }


def _numeric_bins(
    con: duckdb.DuckDBPyConnection,
    a: TableFile,
    b: TableFile,
    numeric: list[str],
    fa: dict[str, Any],
) -> dict[str, tuple[list[int], list[int]]]:
    """Counts of both versions in the 10 bins cut at the ``from`` deciles."""
    cuts = {n: sorted(fa["columns"][n].get("deciles") or []) for n in numeric}
    cuts = {n: e for n, e in cuts.items() if e}
    if not cuts:
        return {}
    counts: dict[str, list[list[int]]] = {n: [] for n in cuts}
    for view, table in ((A, a), (B, b)):
        exprs = [
            f"histogram({_bin(n, e)}) FILTER (WHERE {quote(n)} IS NOT NULL)"
            for n, e in cuts.items()
        ]
        got = run(con, f"SELECT {', '.join(exprs)} FROM {view}", table)[0]
        for n, hist in zip(cuts, got, strict=True):
            h = dict(hist or {})
            counts[n].append([int(h.get(i, 0)) for i in range(len(cuts[n]) + 1)])
    return {n: (c[0], c[1]) for n, c in counts.items()}


def _bin(name: str, edges: list[float]) -> str:
    """Bin j holds edges[j-1] < x <= edges[j] (the first and last bins are open)."""
    x = f"CAST({quote(name)} AS DOUBLE)"
    return " + ".join(f"({x} > '{float(e)!r}'::DOUBLE)::INTEGER" for e in edges)


def _categorical_diff(
    con: duckdb.DuckDBPyConnection,
    a: TableFile,
    b: TableFile,
    name: str,
    ca: dict[str, Any],
    cb: dict[str, Any],
) -> dict[str, Any]:
    """Categories added and removed, and a PSI over category shares, when few enough."""
    if max(ca.get("distinct") or 0, cb.get("distinct") or 0) > 2 * MAX_CATEGORIES:
        return {"categories": None, "psi": None, "shift_level": None}
    fc = _category_counts(con, a, A, name)
    tc = _category_counts(con, b, B, name)
    if fc is None or tc is None:
        return {"categories": None, "psi": None, "shift_level": None}
    added = sorted(k for k in tc if k not in fc)
    removed = sorted(k for k in fc if k not in tc)
    keys = sorted(set(fc) | set(tc))
    value = psi([fc.get(k, 0) for k in keys], [tc.get(k, 0) for k in keys])
    return {
        "from_unique": len(fc),
        "to_unique": len(tc),
        "categories_added": added[:LISTED_CATEGORIES],
        "categories_removed": removed[:LISTED_CATEGORIES],
        "categories_added_count": len(added),
        "categories_removed_count": len(removed),
        "psi": _round(value),
        "shift_level": shift_level(value),
    }


def _category_counts(
    con: duckdb.DuckDBPyConnection, table: TableFile, view: str, name: str
) -> dict[str, int] | None:
    c = quote(name)
    sql = (
        f"SELECT {c}, count(*) FROM {view} WHERE {c} IS NOT NULL GROUP BY {c}"
        f" LIMIT {MAX_CATEGORIES + 1}"
    )
    got = run(con, sql, table)
    if len(got) > MAX_CATEGORIES:
        return None
    return {label(v): int(n) for v, n in got}


# keyed row diff ---------------------------------------------------------------------------


def _keyed(
    con: duckdb.DuckDBPyConnection,
    a: TableFile,
    ta: dict[str, str],
    tb: dict[str, str],
    key: str,
    common: list[str],
) -> dict[str, Any]:
    """Rows added, removed, changed and unchanged by key, and a few changed rows."""
    k = quote(key)
    others = [n for n in common if n != key]
    diff = " OR ".join(_differs(n, ta[n], tb[n]) for n in others) or "false"
    sample = (
        "{"
        + ", ".join(
            [f"'key': a.{k}"]
            + [f"'f{i}': a.{quote(n)}, 't{i}': b.{quote(n)}" for i, n in enumerate(others)]
        )
        + "}"
    )
    sql = f"""
        SELECT
            count(*) FILTER (WHERE b.__in IS NULL) AS removed,
            count(*) FILTER (WHERE a.__in IS NULL) AS added,
            count(*) FILTER (WHERE a.__in AND b.__in AND ({diff})) AS changed,
            count(*) FILTER (WHERE a.__in AND b.__in AND NOT ({diff})) AS unchanged,
            min_by({sample}, a.{k}, {SAMPLE_ROWS}) FILTER (WHERE a.__in AND b.__in AND ({diff}))
        FROM (SELECT *, true AS __in FROM {A}) a
        FULL OUTER JOIN (SELECT *, true AS __in FROM {B}) b ON a.{k} = b.{k}
    """
    removed, added, changed, unchanged, samples = run(con, sql, a)[0]
    return {
        "added": int(added),
        "removed": int(removed),
        "changed": int(changed),
        "unchanged": int(unchanged),
        "samples": [_sample(s, others) for s in samples or []],
    }


def _differs(name: str, type_a: str, type_b: str) -> str:
    c = quote(name)
    if type_a == type_b:
        return f"a.{c} IS DISTINCT FROM b.{c}"
    return f"CAST(a.{c} AS VARCHAR) IS DISTINCT FROM CAST(b.{c} AS VARCHAR)"


def _sample(row: dict[str, Any], others: list[str]) -> dict[str, Any]:
    changes = {}
    for i, n in enumerate(others):
        before, after = row[f"f{i}"], row[f"t{i}"]
        if before != after and not (before is None and after is None):
            changes[n] = {"from": json_value(before), "to": json_value(after)}
    return {"key": json_value(row["key"]), "changes": changes}


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
