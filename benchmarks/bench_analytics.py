"""Table analytics: ``ds stats`` and ``ds compare`` against pandas and polars.

A table of N rows (int id, float amount with 5% NULLs, string merchant of 120 values,
bool flag, timestamp) as Parquet and as CSV. Each tool computes the same figures
(SPEC's statistics: per column unique, missing, min, max, mean, std, quartiles,
skewness, kurtosis, IQR outliers, a 10-bin histogram, top-10 values; duplicate rows;
correlations) in its own process, so wall time and peak RSS are the tool's alone.
``compare`` keys two versions on ``id`` (1% of rows changed, 1% removed, 2% added).
The cached figure is a second ``stats`` request for the same bytes, in process.
N is 10,000,000 (``--quick``: 200,000).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .measure import DS, row

ROWS = 10_000_000
QUICK_ROWS = 200_000
WORKLOAD = "analytics-{n}"

GENERATE = """
CREATE TABLE t AS SELECT
  i::BIGINT AS id,
  CASE WHEN hash(i, 1) % 20 = 0 THEN NULL
       ELSE round((hash(i, 2) % 100000) / 100.0 + (hash(i, 5) % 7), 2) END::DOUBLE AS amount,
  'merchant_' || (hash(i, 3) % 120)::VARCHAR AS merchant,
  (hash(i, 4) % 2 = 0) AS flag,
  TIMESTAMP '2026-01-01' + to_seconds((hash(i, 6) % 31536000)::BIGINT) AS ts
FROM range({n}) r(i)
"""
# v2: 1% of rows change amount, 1% are removed, 2% are added
NEXT_VERSION = """
CREATE TABLE t2 AS
SELECT id, CASE WHEN id % 100 = 2 THEN coalesce(amount, 0) + 1 ELSE amount END AS amount,
       merchant, flag, ts
FROM t WHERE id % 100 <> 1
UNION ALL
SELECT id + {n} AS id, amount, merchant, flag, ts FROM t WHERE id % 50 = 3
"""

PANDAS = r"""
import sys, numpy as np, pandas as pd
path, fmt = sys.argv[1], sys.argv[2]
df = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, parse_dates=["ts"])
out = {"row_count": len(df), "duplicate_rows": int(df.duplicated().sum())}
num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
       and not pd.api.types.is_bool_dtype(df[c])]
for c in df.columns:
    s = df[c]
    d = {"unique": int(s.nunique()), "missing": int(s.isna().sum())}
    if c in num:
        v = s.dropna()
        q1, q2, q3 = v.quantile([0.25, 0.5, 0.75])
        iqr = q3 - q1
        d.update(min=v.min(), max=v.max(), mean=v.mean(), std=v.std(), skew=v.skew(),
                 kurt=v.kurt(), p=(q1, q2, q3),
                 outliers=int(((v < q1 - 1.5 * iqr) | (v > q3 + 1.5 * iqr)).sum()),
                 hist=np.histogram(v.to_numpy(dtype=float), bins=10)[0].tolist())
    elif pd.api.types.is_datetime64_any_dtype(s):
        d.update(min=s.min(), max=s.max())
    else:
        d["top"] = s.value_counts().head(10).to_dict()
    out[c] = d
out["corr"] = df[num].corr().to_dict()
print(len(out))
"""

POLARS = r"""
import sys, polars as pl
path, fmt = sys.argv[1], sys.argv[2]
df = pl.read_parquet(path) if fmt == "parquet" else pl.read_csv(path, try_parse_dates=True)
out = {"row_count": df.height, "duplicate_rows": df.height - df.unique().height}
num = [c for c, t in df.schema.items() if t.is_numeric()]
for c in df.columns:
    s = df[c]
    d = {"unique": s.drop_nulls().n_unique(), "missing": s.null_count()}
    if c in num:
        v = s.drop_nulls().cast(pl.Float64)
        q1, q2, q3 = (v.quantile(q, "linear") for q in (0.25, 0.5, 0.75))
        iqr = q3 - q1
        lo, hi = v.min(), v.max()
        w = (hi - lo) / 10 or 1
        d.update(min=lo, max=hi, mean=v.mean(), std=v.std(), skew=v.skew(bias=False),
                 kurt=v.kurtosis(bias=False), p=(q1, q2, q3),
                 outliers=((v < q1 - 1.5 * iqr) | (v > q3 + 1.5 * iqr)).sum(),
                 hist=((v - lo) / w).floor().clip(0, 9).value_counts())
    elif s.dtype.is_temporal():
        d.update(min=s.min(), max=s.max())
    else:
        d["top"] = s.drop_nulls().value_counts(sort=True).head(10)
    out[c] = d
out["corr"] = df.select(num).drop_nulls().corr()
print(len(out))
"""


def run(quick: bool) -> list[dict[str, Any]]:
    n = QUICK_ROWS if quick else ROWS
    work = Path(tempfile.mkdtemp(prefix="ds-bench-analytics-"))
    try:
        return _measure(work, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work: Path, n: int) -> list[dict[str, Any]]:
    files = _generate(work, n)
    env = {"DS_STORE": str(work / "store")}
    _ds(env, "create", "bench")
    _ds(env, "put", "bench", str(files["parquet"]), str(files["csv"]))
    _ds(env, "snapshot", "bench", "--tag", "v1")
    workload = WORKLOAD.format(n=f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M")
    rows: list[dict[str, Any]] = []
    for fmt in ("parquet", "csv"):
        path = files[fmt]
        ds = run_cmd([DS, "stats", f"bench@v1/{path.name}", "--json"], env)
        rows += _pair(workload, f"stats_{fmt}", "ds", ds)
        rows += _pair(workload, f"stats_{fmt}", "pandas", _python(PANDAS, path, fmt))
        if importlib.util.find_spec("polars") is not None:
            rows += _pair(workload, f"stats_{fmt}", "polars", _python(POLARS, path, fmt))
    rows.append(row(workload, "ds", "stats_cached_s", _cached_stats(work, files), "s"))
    shutil.copy(files["v2"], files["parquet"])
    _ds(env, "put", "bench", str(files["parquet"]))
    _ds(env, "snapshot", "bench", "--tag", "v2")
    cmp = run_cmd(
        [DS, "compare", f"bench/{files['parquet'].name}", "--from", "v1", "--to", "v2"]
        + ["--key", "id", "--json"],
        env,
    )
    rows += _pair(workload, "compare_keyed_parquet", "ds", cmp)
    return rows


@dataclass
class Timed:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def run_cmd(cmd: list[str], env: dict[str, str]) -> Timed:
    """Wall time, CPU time (user + system) and peak RSS of one child process.

    CPU time is reported beside wall time because this machine is shared: on a busy
    box a tool that runs on both cores loses its parallel speed-up in wall time first.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} {cmd[1]} failed: {err.decode()[-2000:]}")
    return Timed(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def _ds(env: dict[str, str], *args: str) -> None:
    run_cmd([DS, *args], env)


def _python(script: str, path: Path, fmt: str) -> Timed:
    return run_cmd([sys.executable, "-c", script, str(path), fmt], {})


def _pair(workload: str, metric: str, tool: str, result: Timed) -> list[dict[str, Any]]:
    return [
        row(workload, tool, f"{metric}_s", result.seconds, "s"),
        row(workload, tool, f"{metric}_cpu_s", result.cpu_seconds, "s"),
        row(workload, tool, f"{metric}_peak_rss_mb", result.peak_rss_mb, "MB"),
    ]


def _cached_stats(work: Path, files: dict[str, Path]) -> float:
    """A second request for bytes already profiled: the library call, in process."""
    from datastore.analytics import Analytics
    from datastore.store import Store

    store = Store.open(work / "store")
    try:
        an = Analytics(store)
        start = time.perf_counter()
        an.stats("bench@v1", files["parquet"].name)
        return time.perf_counter() - start
    finally:
        store.close()


def _generate(work: Path, n: int) -> dict[str, Path]:
    """Write the tables in a child process: a parent that grew while generating would
    pass its peak RSS on to every child it starts (Linux keeps it across exec)."""
    data = work / "data"
    data.mkdir()
    files = {
        "parquet": data / "transactions.parquet",
        "csv": data / "transactions.csv",
        "v2": work / "transactions-v2.parquet",
    }
    script = f"""
import duckdb
con = duckdb.connect()
con.execute({GENERATE.format(n=n)!r})
con.execute("COPY t TO '{files["parquet"]}' (FORMAT parquet, ROW_GROUP_SIZE 1048576)")
con.execute("COPY t TO '{files["csv"]}' (FORMAT csv, HEADER)")
con.execute({NEXT_VERSION.format(n=n)!r})
con.execute("COPY t2 TO '{files["v2"]}' (FORMAT parquet, ROW_GROUP_SIZE 1048576)")
"""
    run_cmd([sys.executable, "-c", script], {})
    return files
