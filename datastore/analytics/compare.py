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

from datastore.analytics.profile import json_value, label
from datastore.analytics.tabular import TableFile, columns, dtype, kind, open_tables, quote, run
from datastore.errors import InvalidRequest

if TYPE_CHECKING:
    from datastore.analytics import Analytics

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
    """The compare document (without the ``from``/``to`` labels, which depend on refs).

    Scans: the ``from`` facts, its deciles (exact while they fit the memory budget),
    its bin counts, then the ``to`` facts and bin counts together, the category counts
    of low-cardinality columns, and with a key one join of per-row hashes.
    """
    if a.empty or b.empty:
        return _empty_compare(an, a, b, key)
    with open_tables({A: a, B: b}, an.scratch, an.limits) as con:
        ta, tb = dict(columns(con, A)), dict(columns(con, B))
        if key is not None and (key not in ta or key not in tb):
            raise InvalidRequest(f"key column {key!r} is not in both versions")
        common = [n for n in ta if n in tb]
        numeric = [n for n in common if kind(ta[n]) == kind(tb[n]) == "numeric"]
        fa = _facts(con, a, A, ta)
        exact = fa["rows"] <= an.limits.exact_values()
        cuts = _deciles(con, a, numeric, fa, exact)
        bins_a = _bin_counts(con, a, A, cuts, [])
        fb: dict[str, Any] = {}
        bins_b = _bin_counts(con, b, B, cuts, _facts_exprs(tb), fb)
        bins = {n: (bins_a[n], bins_b[n]) for n in cuts}
        diffs = _column_diffs(con, a, b, ta, tb, common, fa, fb, bins)
        doc: dict[str, Any] = {
            "object_from": a.object,
            "object_to": b.object,
            "summary": _summary(ta, tb, fa["rows"], fb["rows"]),
            "column_diffs": diffs,
            "approximate_deciles": not exact,
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


def _facts_exprs(types: dict[str, str]) -> list[tuple[str, str, str]]:
    """(column, what, SQL) of the per-column facts: count, mean, std, min/max, distinct."""
    out: list[tuple[str, str, str]] = [("", "rows", "count(*)")]
    for n, t in types.items():
        c, x = quote(n), f"CAST({quote(n)} AS DOUBLE)"
        out.append((n, "count", f"count({c})"))
        if kind(t) == "numeric":
            out += [(n, "mean", f"avg({x})"), (n, "std", f"stddev_samp({x})")]
        elif kind(t) == "datetime":
            out += [(n, "min", f"min({c})"), (n, "max", f"max({c})")]
        else:
            out.append((n, "distinct", f"approx_count_distinct({c})"))
    return out


def _facts(
    con: duckdb.DuckDBPyConnection, table: TableFile, view: str, types: dict[str, str]
) -> dict[str, Any]:
    exprs = _facts_exprs(types)
    got = run(con, f"SELECT {', '.join(e for _, _, e in exprs)} FROM {view}", table)[0]
    return _read_facts(exprs, list(got), types)


def _read_facts(
    exprs: list[tuple[str, str, str]], got: list[Any], types: dict[str, str]
) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {n: {} for n in types}
    rows = 0
    for (n, what, _), v in zip(exprs, got, strict=True):
        if what == "rows":
            rows = int(v)
        else:
            per[n][what] = v
    return {"rows": rows, "columns": per}


def _deciles(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    numeric: list[str],
    fa: dict[str, Any],
    exact: bool,
) -> dict[str, list[float]]:
    """The ``from`` deciles: exact (one column per query, bounded memory) when they fit
    the memory budget, else DuckDB's approximate quantiles."""
    live = [n for n in numeric if fa["columns"][n]["count"]]
    out: dict[str, list[float]] = {}
    if exact:
        for n in live:
            sql = f"SELECT quantile_cont(CAST({quote(n)} AS DOUBLE), {DECILES}) FROM {A}"
            out[n] = [float(v) for v in run(con, sql, table)[0][0]]
    elif live:
        exprs = [f"approx_quantile(CAST({quote(n)} AS DOUBLE), {DECILES})" for n in live]
        got = run(con, f"SELECT {', '.join(exprs)} FROM {A}", table)[0]
        out = {n: sorted(float(v) for v in d) for n, d in zip(live, got, strict=True)}
    return out


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
    bins: dict[str, tuple[list[int], list[int]]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in common:
        ca, cb = fa["columns"][n], fb["columns"][n]
        doc: dict[str, Any] = {
            "missing_from": _share(fa["rows"] - ca["count"], fa["rows"]),
            "missing_to": _share(fb["rows"] - cb["count"], fb["rows"]),
        }
        if kind(ta[n]) == kind(tb[n]) == "numeric":
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


def _bin_counts(
    con: duckdb.DuckDBPyConnection,
    table: TableFile,
    view: str,
    cuts: dict[str, list[float]],
    facts: list[tuple[str, str, str]],
    into: dict[str, Any] | None = None,
) -> dict[str, list[int]]:
    """Counts in the 10 bins cut at the ``from`` deciles; ``facts`` ride along in the same
    scan (their values go to ``into``)."""
    hists = [
        f"histogram({_bin(n, e)}) FILTER (WHERE {quote(n)} IS NOT NULL)" for n, e in cuts.items()
    ]
    exprs = [e for _, _, e in facts] + hists
    if not exprs:
        return {}
    got = list(run(con, f"SELECT {', '.join(exprs)} FROM {view}", table)[0])
    if into is not None:
        types = {n: "" for n, _, _ in facts if n}
        into.update(_read_facts(facts, got[: len(facts)], types))
    counts = {}
    for n, hist in zip(cuts, got[len(facts) :], strict=True):
        h = dict(hist or {})
        counts[n] = [int(h.get(i, 0)) for i in range(len(cuts[n]) + 1)]
    return counts


def _bin(name: str, edges: list[float]) -> str:
    """Bin j holds edges[j-1] < x <= edges[j] (the first and last bins are open)."""
    x = f"CAST({quote(name)} AS DOUBLE)"
    whens = " ".join(f"WHEN {x} <= '{float(e)!r}'::DOUBLE THEN {j}" for j, e in enumerate(edges))
    return f"CASE {whens} ELSE {len(edges)} END"


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
    """Rows added, removed, changed and unchanged by key, and the first changed rows.

    Each side is reduced to (key, 64-bit hash of the other common columns) before the
    join, so the join moves two numbers per row instead of whole rows; NULL hashes
    equal NULL, as ``IS DISTINCT FROM`` has it. (Two different rows hashing alike, the
    only way a change could go uncounted, has odds of 1 in 2^64 per row.)
    """
    k = quote(key)
    if ta[key] != tb[key]:  # an id column that became text still matches by its spelling
        k = f"CAST({k} AS VARCHAR)"
    others = [n for n in common if n != key]
    sql = f"""
        SELECT
            count(*) FILTER (WHERE b.k IS NULL) AS removed,
            count(*) FILTER (WHERE a.k IS NULL) AS added,
            count(*) FILTER (WHERE a.h <> b.h) AS changed,
            count(*) FILTER (WHERE a.h = b.h) AS unchanged,
            min_by(a.k, a.k, {SAMPLE_ROWS}) FILTER (WHERE a.h <> b.h) AS samples
        FROM (SELECT {k} AS k, {_row_hash(others, ta, tb)} AS h FROM {A}) a
        FULL OUTER JOIN (SELECT {k} AS k, {_row_hash(others, tb, ta)} AS h FROM {B}) b
        ON a.k = b.k
    """
    removed, added, changed, unchanged, keys = run(con, sql, a)[0]
    return {
        "added": int(added),
        "removed": int(removed),
        "changed": int(changed),
        "unchanged": int(unchanged),
        "samples": _samples(con, a, key, others, keys or []),
    }


def _row_hash(others: list[str], mine: dict[str, str], theirs: dict[str, str]) -> str:
    """The hash of the compared columns; a column whose type differs between the
    versions is compared as text."""
    if not others:
        return "0::UBIGINT"
    parts = [quote(n) if mine[n] == theirs[n] else f"CAST({quote(n)} AS VARCHAR)" for n in others]
    return f"hash({', '.join(parts)})"


def _samples(
    con: duckdb.DuckDBPyConnection, a: TableFile, key: str, others: list[str], keys: list[Any]
) -> list[dict[str, Any]]:
    """The changed rows of the sample keys, column by column: what was, what is."""
    if not keys:
        return []
    cols = ", ".join(quote(n) for n in [key, *others])
    marks = ", ".join("?" for _ in keys)
    found: dict[str, dict[Any, tuple[Any, ...]]] = {}
    for view in (A, B):
        sql = f"SELECT {cols} FROM {view} WHERE {quote(key)} IN ({marks})"
        try:
            rows = con.execute(sql, keys).fetchall()
        except duckdb.Error:
            return []  # samples are a courtesy; the counts stand without them
        found[view] = {r[0]: r[1:] for r in rows}
    out = []
    for k in keys:
        before, after = found[A].get(k), found[B].get(k)
        if before is None or after is None:
            continue
        changes = {
            n: {"from": json_value(x), "to": json_value(y)}
            for n, x, y in zip(others, before, after, strict=True)
            if x != y and not (x is None and y is None)
        }
        out.append({"key": json_value(k), "changes": changes})
    return out


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
