"""The quality report of a table, computed from its (cached) statistics.

The checks and the weighted ``overall_score`` are documented in :mod:`datastore.analytics`;
everything here is arithmetic over the stats document, so a report costs one cheap query
(mixed types) once the statistics exist.
"""

from __future__ import annotations

from typing import Any

QUALITY_WEIGHTS = {
    "missing_values": 0.30,
    "duplicate_rows": 0.20,
    "constant_columns": 0.15,
    "mixed_types": 0.15,
    "outliers": 0.20,
}
MAX_MISSING_PERCENT = 5.0
MAX_DUPLICATE_PERCENT = 1.0
MAX_OUTLIER_PERCENT = 5.0


def report(stats: dict[str, Any], mixed: list[str]) -> dict[str, Any]:
    """``{"overall_score", "checks": [...]}`` from a stats document and the mixed columns."""
    rows = stats["row_count"]
    cols = stats["columns"]
    empty = _empty_check(rows, len(cols))
    if rows == 0:
        checks = [empty] + [
            {"name": n, "passed": True, "details": "no rows to check", "score": 0.0}
            for n in QUALITY_WEIGHTS
        ]
        return {"overall_score": 0.0, "checks": checks}
    checks = [
        empty,
        _missing(cols, rows),
        _duplicates(stats["duplicate_rows"], rows),
        _constant(cols, rows),
        _mixed(mixed, len(cols)),
        _outliers(cols),
    ]
    total = sum(QUALITY_WEIGHTS[c["name"]] * c["score"] for c in checks[1:])
    return {
        "overall_score": round(100.0 * total / sum(QUALITY_WEIGHTS.values()), 1),
        "checks": checks,
    }


def _check(name: str, passed: bool, details: str, score: float) -> dict[str, Any]:
    return {"name": name, "passed": passed, "details": details, "score": round(score, 4)}


def _empty_check(rows: int, ncols: int) -> dict[str, Any]:
    if rows:
        return _check("empty_file", True, f"{rows} rows, {ncols} columns", 1.0)
    what = "no columns and no rows" if not ncols else f"{ncols} columns but no rows"
    return _check("empty_file", False, f"the file has {what}", 0.0)


def _missing(cols: dict[str, Any], rows: int) -> dict[str, Any]:
    worst = max(cols, key=lambda n: cols[n]["missing"])
    worst_pct = cols[worst]["missing_percent"]
    cells = rows * len(cols)
    missing = sum(c["missing"] for c in cols.values())
    details = (
        f"max {worst_pct:.2f}% missing (column {worst!r}); {missing} of {cells} cells"
        if missing
        else "no missing values"
    )
    return _check("missing_values", worst_pct <= MAX_MISSING_PERCENT, details, 1 - missing / cells)


def _duplicates(dups: int, rows: int) -> dict[str, Any]:
    pct = 100.0 * dups / rows
    return _check(
        "duplicate_rows",
        pct < MAX_DUPLICATE_PERCENT,
        f"{dups} duplicate rows ({pct:.2f}%)",
        1 - dups / rows,
    )


def _constant(cols: dict[str, Any], rows: int) -> dict[str, Any]:
    constant = [n for n, c in cols.items() if c["unique"] <= 1 and rows > 1]
    details = f"constant: {', '.join(constant)}" if constant else "no constant columns"
    return _check("constant_columns", not constant, details, 1 - len(constant) / len(cols))


def _mixed(mixed: list[str], ncols: int) -> dict[str, Any]:
    details = (
        f"numbers mixed with text in: {', '.join(mixed)}" if mixed else "no mixed-type columns"
    )
    return _check("mixed_types", not mixed, details, 1 - len(mixed) / ncols)


def _outliers(cols: dict[str, Any]) -> dict[str, Any]:
    numeric = {n: c for n, c in cols.items() if "outlier_count" in c}
    values = sum(_present(c) for c in numeric.values())
    outliers = sum(c["outlier_count"] for c in numeric.values())
    if not values:
        return _check("outliers", True, "no numeric values", 1.0)
    pct = 100.0 * outliers / values
    by_col = ", ".join(
        f"{n}: {c['outlier_count']}" for n, c in numeric.items() if c["outlier_count"]
    )
    details = f"{outliers} outliers beyond 1.5 IQR ({pct:.2f}%)" + (f"; {by_col}" if by_col else "")
    return _check("outliers", pct < MAX_OUTLIER_PERCENT, details, 1 - outliers / values)


def _present(col: dict[str, Any]) -> int:
    return sum(col["histogram"]["counts"])
