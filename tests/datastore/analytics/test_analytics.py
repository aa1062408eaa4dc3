"""Table analytics: figures against pandas/numpy, compare, hostile files, cache, CLI."""

from __future__ import annotations

import gzip
import io
import json
import math
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datastore.analytics import Analytics
from datastore.analytics import profile as profile_mod
from datastore.analytics.compare import psi, shift_level
from datastore.analytics.tabular import Limits, detect, memory_bytes, open_table
from datastore.errors import (
    AnalyticsError,
    FileNotFound,
    InvalidRequest,
    MalformedTable,
    NotTabular,
)
from datastore.store import Store
from tests.conftest import parse

REL = 1e-9


# a pandas reference ----------------------------------------------------------------------


def reference(df: pd.DataFrame) -> dict[str, Any]:
    """What SPEC's statistics are, computed the pandas/numpy way."""
    cols: dict[str, Any] = {}
    numeric = []
    for name in df.columns:
        s = df[name]
        doc: dict[str, Any] = {"unique": int(s.nunique()), "missing": int(s.isna().sum())}
        if pd.api.types.is_bool_dtype(s) or not (
            pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)
        ):
            vc = s.dropna().value_counts()
            items = sorted(
                ((str(k), int(v)) for k, v in vc.items()), key=lambda kv: (-kv[1], kv[0])
            )
            if pd.api.types.is_bool_dtype(s):
                items = sorted(
                    ((("true" if k else "false"), int(v)) for k, v in vc.items()),
                    key=lambda kv: (-kv[1], kv[0] == "true"),
                )
            doc["top_values"] = dict(items[:10])
        elif pd.api.types.is_datetime64_any_dtype(s):
            v = s.dropna()
            doc["min"], doc["max"] = (v.min(), v.max()) if len(v) else (None, None)
        else:
            numeric.append(name)
            v = s.dropna().astype(float)
            doc.update(_numeric_reference(v))
        cols[name] = doc
    corr = df[numeric].astype(float).corr() if numeric else pd.DataFrame()
    return {
        "row_count": len(df),
        "duplicate_rows": int(df.duplicated().sum()),
        "columns": cols,
        "correlations": corr,
    }


def _numeric_reference(v: pd.Series) -> dict[str, Any]:
    if not len(v):
        return {"mean": None}
    q1, q2, q3 = (float(v.quantile(q)) for q in (0.25, 0.5, 0.75))
    iqr = q3 - q1
    counts, edges = np.histogram(v.to_numpy(), bins=10)
    return {
        "min": v.min(),
        "max": v.max(),
        "mean": v.mean(),
        "std": v.std(),
        "p25": q1,
        "p50": q2,
        "p75": q3,
        "skewness": v.skew(),
        "kurtosis": v.kurt(),
        "iqr": iqr,
        "outlier_count": int(((v < q1 - 1.5 * iqr) | (v > q3 + 1.5 * iqr)).sum()),
        "counts": counts.tolist(),
        "edges": edges.tolist(),
    }


def close(got: Any, want: Any, rel: float = REL, abs_: float = 1e-9) -> bool:
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None
    if got is None:
        return False
    return math.isclose(float(got), float(want), rel_tol=rel, abs_tol=abs_)


def assert_matches(stats: dict[str, Any], df: pd.DataFrame) -> None:
    ref = reference(df)
    assert stats["row_count"] == ref["row_count"]
    assert stats["column_count"] == len(df.columns)
    assert stats["duplicate_rows"] == ref["duplicate_rows"]
    for name, want in ref["columns"].items():
        got = stats["columns"][name]
        assert got["unique"] == want["unique"], name
        assert got["missing"] == want["missing"], name
        assert close(got["missing_percent"], 100 * want["missing"] / max(len(df), 1), 1e-6)
        if "top_values" in want:
            assert got["top_values"] == want["top_values"], name
        elif "p25" in want:
            _assert_numeric(name, got, want)
    _assert_correlations(stats["correlations"], ref["correlations"])


def _assert_numeric(name: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    assert close(got["min"], want["min"]) and close(got["max"], want["max"]), name
    scale = abs(want["mean"]) + 1
    assert close(got["mean"], want["mean"], 1e-9, 1e-9 * scale), name
    assert close(got["std"], want["std"], 1e-6, 1e-9 * scale), name
    for p in ("p25", "p50", "p75"):
        assert close(got["percentiles"][p], want[p], 1e-9, 1e-9 * scale), (name, p)
    assert close(got["iqr"], want["iqr"], 1e-9, 1e-9 * scale), name
    assert got["outlier_count"] == want["outlier_count"], name
    assert got["histogram"]["counts"] == want["counts"], name
    assert np.allclose(got["histogram"]["bin_edges"], want["edges"], rtol=1e-12), name
    if want["std"] is not None and want["std"] > 1e-6 * scale:
        assert close(got["skewness"], want["skewness"], 1e-6, 1e-6), name
        assert close(got["kurtosis"], want["kurtosis"], 1e-6, 1e-6), name


def _assert_correlations(got: dict[str, Any], want: pd.DataFrame) -> None:
    assert set(got) == set(want.columns)
    for a in want.columns:
        for b in want.columns:
            w = want.loc[a, b]
            if math.isnan(w):
                assert got[a][b] is None, (a, b)
            else:
                assert got[a][b] is not None and math.isclose(got[a][b], w, abs_tol=1e-7), (a, b)


# helpers -------------------------------------------------------------------------------


def put_table(store: Store, tmp: Path, name: str, data: bytes, path: str = "t.csv") -> str:
    if name not in {d.name for d in store.list_datasets()}:
        store.create_dataset(name)
    src = tmp / f"src-{time.monotonic_ns()}"
    src.mkdir()
    f = src / Path(path).name
    f.write_bytes(data)
    store.put(name, [f], to=str(Path(path).parent) if "/" in path else "")
    return path


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def generated_frame(n: int, seed: int = 7) -> tuple[pa.Table, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    amount = rng.lognormal(3, 1, n)
    amount_mask = rng.random(n) < 0.05
    nan_mask = rng.random(n) < 0.02
    amount_vals = [
        None if m else (float("nan") if k else float(a))
        for a, m, k in zip(amount, amount_mask, nan_mask, strict=True)
    ]
    qty = rng.integers(-50, 50, n)
    qty_vals = [None if i % 17 == 0 else int(q) for i, q in enumerate(qty)]
    merchants = [f"m{int(x)}" for x in rng.zipf(1.5, n) % 40]
    flags = [bool(x) for x in rng.random(n) < 0.3]
    ts = [datetime(2026, 1, 1) + timedelta(minutes=int(x)) for x in rng.integers(0, 10**6, n)]
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array(amount_vals, pa.float64(), from_pandas=False),
            "qty": pa.array(qty_vals, pa.int64()),
            "merchant": pa.array(merchants),
            "flag": pa.array(flags),
            "ts": pa.array(ts, pa.timestamp("us")),
        }
    )
    df = pd.DataFrame(
        {
            "id": ids,
            "amount": pd.array([np.nan if v is None else v for v in amount_vals], "float64"),
            "qty": pd.array(qty_vals, "Int64"),
            "merchant": merchants,
            "flag": flags,
            "ts": pd.to_datetime(ts),
        }
    )
    return table, df


# figures against pandas -------------------------------------------------------------------


def test_stats_agree_with_pandas_on_parquet_and_csv(store: Store, tmp_path: Path) -> None:
    table, df = generated_frame(5000)
    put_table(store, tmp_path, "gen", parquet_bytes(table), "t.parquet")
    csv_df = df.copy()
    put_table(store, tmp_path, "gen", csv_df.to_csv(index=False).encode(), "t.csv")
    an = Analytics(store)
    stats = an.stats("gen", "t.parquet")
    assert stats["format"] == "parquet" and stats["path"] == "t.parquet"
    assert_matches(stats, df)
    assert stats["columns"]["amount"]["type"] == "float64"
    assert stats["columns"]["ts"]["min"] == df["ts"].min().isoformat()
    from_csv = an.stats("gen", "t.csv")
    assert from_csv["format"] == "csv"
    assert_matches(from_csv, pd.read_csv(io.StringIO(df.to_csv(index=False)), parse_dates=["ts"]))


def test_windowed_quartiles_are_exact(store: Store, tmp_path: Path) -> None:
    """Past the memory budget, quartiles come from windows: still exactly pandas'."""
    table, df = generated_frame(20000, seed=3)
    put_table(store, tmp_path, "w", parquet_bytes(table), "w.parquet")
    an = Analytics(store)
    _, tf = an.locate("w", "w.parquet")
    with open_table(tf, tmp_path / "scratch", Limits()) as con:
        doc = profile_mod.profile(con, tf, exact_values=1000)
    assert_matches(doc, df)


def test_window_falls_back_when_it_misses() -> None:
    # ranks 10 and 11 hold 1.0, rank 12 holds 2.0; nothing else is known
    w = profile_mod._Window(1.0, 2.0, 10, 12, 12, 13, [])
    assert w.quantile(0.5, 23) == 1.0  # rank 11
    assert w.quantile(0.5, 24) == 1.5  # between ranks 11 and 12
    assert w.quantile(0.5, 41) is None  # rank 20: outside, so the caller falls back


# values a table holds, not underflow experiments: pandas itself answers NaN for the
# correlation of a column whose squares underflow (values near 1e-137)
_floats = st.one_of(
    st.integers(-(10**9), 10**9).map(lambda n: n / 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False).filter(
        lambda x: x == 0 or abs(x) >= 1e-3
    ),
    st.just(float("nan")),
    st.none(),
)


@st.composite
def small_tables(draw: Any) -> tuple[pa.Table, pd.DataFrame]:
    n = draw(st.integers(0, 25))
    ints = draw(st.lists(st.one_of(st.integers(-1000, 1000), st.none()), min_size=n, max_size=n))
    floats = draw(st.lists(_floats, min_size=n, max_size=n))
    texts = draw(
        st.lists(
            st.one_of(st.sampled_from(["a", "b", "c", "ü", "a b"]), st.none()),
            min_size=n,
            max_size=n,
        )
    )
    bools = draw(st.lists(st.one_of(st.booleans(), st.none()), min_size=n, max_size=n))
    stamps = draw(
        st.lists(
            st.one_of(st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1)), st.none()),
            min_size=n,
            max_size=n,
        )
    )
    table = pa.table(
        {
            "i": pa.array(ints, pa.int64()),
            "f": pa.array(floats, pa.float64(), from_pandas=False),
            "s": pa.array(texts, pa.string()),
            "b": pa.array(bools, pa.bool_()),
            "ts": pa.array(stamps, pa.timestamp("us")),
        }
    )
    df = pd.DataFrame(
        {
            "i": pd.array(ints, "Int64"),
            "f": pd.array([np.nan if v is None else v for v in floats], "float64"),
            "s": pd.array(texts, "object"),
            "b": pd.array(bools, "boolean"),
            "ts": pd.to_datetime(pd.Series(stamps, dtype="object")),
        }
    )
    return table, df


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(small_tables())
def test_random_small_tables_match_pandas(tmp_path: Path, tables: Any) -> None:
    table, df = tables
    f = tmp_path / f"h{time.monotonic_ns()}"
    f.write_bytes(parquet_bytes(table))
    tf = detect(f, "h.parquet", "x")
    with open_table(tf, tmp_path / "scratch", Limits(memory="256MB")) as con:
        doc = profile_mod.profile(con, tf)
    assert_matches(doc, df)


# compare ---------------------------------------------------------------------------------


def _versions(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 2000
    v1 = pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.normal(100, 10, n).round(3),
            "stable": rng.normal(0, 1, n).round(4),
            "city": rng.choice(["a", "b", "c"], n),
            "gone": 1,
        }
    )
    v2 = v1.copy()
    v2 = v2[~v2["id"].isin(range(0, 40))]  # 40 removed
    changed = v2["id"].isin(range(100, 130))  # 30 changed
    v2.loc[changed, "city"] = "z"
    v2["amount"] = v2["amount"] + 25  # every amount shifts: every kept row changes
    v2 = v2.drop(columns=["gone"])
    v2["new"] = 2
    added = pd.DataFrame(
        {
            "id": np.arange(n, n + 60),
            "amount": 125.0,
            "stable": rng.normal(0, 1, 60).round(4),
            "city": "a",
            "new": 2,
        }
    )
    v2 = pd.concat([v2, added], ignore_index=True)
    put_table(store, tmp_path, "cmp", v1.to_csv(index=False).encode(), "t.csv")
    store.snapshot("cmp", tag="v1")
    put_table(store, tmp_path, "cmp", v2.to_csv(index=False).encode(), "t.csv")
    store.snapshot("cmp", tag="v2")
    v3 = v1.copy()
    v3.loc[v3["id"].isin(range(5, 12)), "city"] = "q"  # 7 rows change one column
    v3 = v3[v3["id"] != 1999]
    put_table(store, tmp_path, "cmp", v3.to_parquet(index=False), "t.csv")  # parquet bytes
    store.snapshot("cmp", tag="v3")


def test_compare_counts_rows_columns_and_drift(store: Store, tmp_path: Path) -> None:
    _versions(store, tmp_path)
    an = Analytics(store)
    doc = an.compare("cmp", "t.csv", "v1", "v2", key="id")
    s = doc["summary"]
    assert (s["from"], s["to"]) == ("cmp@v1", "cmp@v2")
    assert (s["from_rows"], s["to_rows"], s["rows_diff"]) == (2000, 2020, 20)
    assert s["columns_added"] == ["new"] and s["columns_removed"] == ["gone"]
    assert doc["rows"] == {**doc["rows"], "added": 60, "removed": 40, "changed": 1960}
    assert doc["rows"]["unchanged"] == 0
    amount = doc["column_diffs"]["amount"]
    assert amount["shift_level"] == "high" and amount["psi"] > 1
    assert math.isclose(amount["mean_shift_pct"], 25.0, rel_tol=0.05)
    stable = doc["column_diffs"]["stable"]
    assert stable["shift_level"] == "low" and stable["psi"] < 0.1
    city = doc["column_diffs"]["city"]
    assert city["type"] == "categorical" and city["categories_added"] == ["z"]
    assert len(doc["rows"]["samples"]) == 5
    assert doc["rows"]["samples"][0]["key"] == 40
    assert set(doc["rows"]["samples"][0]["changes"]) == {"amount"}


def test_compare_exact_changes_across_formats(store: Store, tmp_path: Path) -> None:
    _versions(store, tmp_path)
    doc = Analytics(store).compare("cmp", "t.csv", "v1", "v3", key="id")
    assert doc["rows"] == {**doc["rows"], "added": 0, "removed": 1, "changed": 7}
    assert doc["rows"]["unchanged"] == 1992
    assert [x["key"] for x in doc["rows"]["samples"]] == [5, 6, 7, 8, 9]
    assert doc["rows"]["samples"][0]["changes"]["city"]["to"] == "q"
    same = Analytics(store).compare("cmp", "t.csv", "v1", "v1", key="id")
    assert same["rows"]["changed"] == 0 and same["rows"]["unchanged"] == 2000
    assert all(d.get("psi") in (None, 0.0) for d in same["column_diffs"].values())
    with pytest.raises(InvalidRequest):
        Analytics(store).compare("cmp", "t.csv", "v1", "v2", key="gone")


def test_psi_levels() -> None:
    assert psi([10] * 10, [10] * 10) == 0.0
    assert shift_level(0.05) == "low" and shift_level(0.1) == "moderate"
    assert shift_level(0.25) == "moderate" and shift_level(0.26) == "high"
    assert psi([10, 0], [5, 5]) is not None and psi([], []) is None


# hostile and odd files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "fmt"),
    [
        ("a.tsv", b"x\ty\n1\t2\n3\t4\n", "tsv"),
        ("a.csv.gz", gzip.compress(b"x;y\n1;2\n3;4\n"), "csv.gz"),
        ("a.jsonl", b'{"x": 1, "y": "a"}\n{"x": 3, "y": "b"}\n', "jsonl"),
        ("noext", b"x,y\n1,2\n3,4\n", "csv"),
        ("data.bin", parquet_bytes(pa.table({"x": [1, 3], "y": [2, 4]})), "parquet"),
        ("rows.log", b'{"x": 1}\n{"x": 3}\n', "jsonl"),
        ("latin1.csv", "x,name\n1,José\n3,Köln\n".encode("latin-1"), "csv"),
        ("utf16.csv", "x,name\n1,José\n3,Köln\n".encode("utf-16"), "csv"),
    ],
)
def test_formats_are_detected(
    store: Store, tmp_path: Path, path: str, data: bytes, fmt: str
) -> None:
    put_table(store, tmp_path, "f", data, path)
    doc = Analytics(store).schema("f", path)
    assert doc["format"] == fmt and doc["row_count"] == 2
    assert doc["columns"][0]["name"] == "x"
    stats = Analytics(store).stats("f", path)
    assert stats["columns"]["x"]["mean"] == 2.0


def test_empty_header_only_and_binary_files(store: Store, tmp_path: Path) -> None:
    an = Analytics(store)
    put_table(store, tmp_path, "e", b"", "empty.csv")
    assert an.schema("e", "empty.csv")["columns"] == []
    assert an.stats("e", "empty.csv")["row_count"] == 0
    quality = an.quality("e", "empty.csv")
    assert quality["overall_score"] == 0.0
    assert quality["checks"][0] == {**quality["checks"][0], "name": "empty_file", "passed": False}
    assert an.preview("e", "empty.csv")["rows"] == []
    put_table(store, tmp_path, "e", b"a,b,c\n", "header.csv")
    schema = an.schema("e", "header.csv")
    assert [c["name"] for c in schema["columns"]] == ["a", "b", "c"] and schema["row_count"] == 0
    stats = an.stats("e", "header.csv")
    assert stats["row_count"] == 0 and stats["columns"]["a"]["missing"] == 0
    assert an.quality("e", "header.csv")["overall_score"] == 0.0
    put_table(store, tmp_path, "e", bytes(range(256)) * 40, "binary.csv")
    with pytest.raises(NotTabular, match="binary"):
        an.stats("e", "binary.csv")
    put_table(store, tmp_path, "e", b"Just some prose.\nNot a table at all.\n", "notes.txt")
    with pytest.raises(NotTabular):
        an.schema("e", "notes.txt")
    put_table(store, tmp_path, "e", b"\x89PNG\r\n\x1a\n" + bytes(100), "img.png")
    with pytest.raises(NotTabular):
        an.stats("e", "img.png")
    with pytest.raises(FileNotFound):
        an.stats("e", "missing.csv")


def test_ragged_rows_name_the_line(store: Store, tmp_path: Path) -> None:
    an = Analytics(store)
    put_table(store, tmp_path, "r", b"a,b\n1,2\n3,4,5\n6,7\n", "r.csv")
    with pytest.raises(MalformedTable, match="line 3"):
        an.stats("r", "r.csv")
    put_table(store, tmp_path, "r", b'{"a": 1}\n{"a": \n', "r.jsonl")
    with pytest.raises(NotTabular, match="r.jsonl"):
        an.stats("r", "r.jsonl")
    put_table(store, tmp_path, "r", b"PAR1 not really parquet", "r.parquet")
    with pytest.raises(NotTabular, match="r.parquet"):
        an.schema("r", "r.parquet")


def test_crlf_lines_appended_with_lf_read_as_pandas_reads_them(
    store: Store, tmp_path: Path
) -> None:
    data = b"a,b\r\n1,2\r\n3,4\n"
    put_table(store, tmp_path, "mixed", data, "m.csv")
    an = Analytics(store)
    stats = an.stats("mixed", "m.csv")
    want = pd.read_csv(io.BytesIO(data))
    assert stats["row_count"] == len(want) == 2
    assert stats["columns"]["b"]["mean"] == want["b"].mean() == 3.0
    assert an.schema("mixed", "m.csv")["columns"] == [
        {"name": "a", "dtype": "int64"},
        {"name": "b", "dtype": "int64"},
    ]
    big = b"a,b\r\n" + b"".join(b"%d,%d\r\n" % (i, i) for i in range(50_000)) + b"7,7\n8,8\n"
    put_table(store, tmp_path, "mixed", big, "big.csv")
    assert an.stats("mixed", "big.csv")["row_count"] == 50_002


def test_errors_never_show_a_server_path(store: Store, tmp_path: Path) -> None:
    """An engine's message names the object file it read; the user sees the dataset path."""
    from datastore.analytics import tabular

    put_table(store, tmp_path, "bad", b"a,b\n1,2\n", "g.csv")
    entry = store.stat("bad", "g.csv")
    assert entry.object is not None
    obj = store.object_path(entry.object)
    table = tabular.TableFile(obj, "g.csv", "csv", object=entry.object)
    scratch = store.root / "tmp-analytics" / "analysis-x" / "t.lf.csv"
    for engine_says in (
        f'Invalid Input Error: Error when sniffing file "{obj}".',
        f"IO Error: Could not read {scratch}: short read",
    ):
        message = tabular._malformed(table, duckdb.Error(engine_says)).message
        assert "g.csv" in message and "/objects/" not in message, message
        assert "tmp-analytics" not in message and str(store.root) not in message, message


def test_a_late_row_that_breaks_the_sniffed_type(store: Store, tmp_path: Path) -> None:
    body = "a,b\n" + "".join(f"{i},{i}\n" for i in range(30000)) + "x,1\n"
    put_table(store, tmp_path, "late", body.encode(), "late.csv")
    stats = Analytics(store).stats("late", "late.csv")
    assert stats["row_count"] == 30001 and stats["columns"]["a"]["type"] == "object"
    assert stats["columns"]["b"]["type"] == "int64"
    quality = Analytics(store).quality("late", "late.csv")
    mixed = next(c for c in quality["checks"] if c["name"] == "mixed_types")
    assert not mixed["passed"] and "a" in mixed["details"]


def test_a_thousand_columns(store: Store, tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(1000))
    rows = "\n".join(",".join(str((r * 7 + i) % 13) for i in range(1000)) for r in range(50))
    put_table(store, tmp_path, "wide", (header + "\n" + rows + "\n").encode(), "wide.csv")
    stats = Analytics(store).stats("wide", "wide.csv")
    assert stats["column_count"] == 1000 and stats["row_count"] == 50
    assert stats["columns"]["c999"]["max"] == 12
    assert len(stats["correlations"]) == profile_mod.CORRELATION_COLUMNS


def test_quality_checks_and_score(store: Store, tmp_path: Path) -> None:
    body = (
        "k,const,v\n" + "1,x,1\n" * 10 + "".join(f"{i},x,{i}\n" for i in range(2, 40)) + "99,x,\n"
    )
    put_table(store, tmp_path, "q", body.encode(), "q.csv")
    doc = Analytics(store).quality("q", "q.csv")
    checks = {c["name"]: c for c in doc["checks"]}
    assert (
        not checks["duplicate_rows"]["passed"]
        and "9 duplicate rows" in checks["duplicate_rows"]["details"]
    )
    assert (
        not checks["constant_columns"]["passed"]
        and "const" in checks["constant_columns"]["details"]
    )
    assert checks["missing_values"]["passed"]
    assert "k: 1" in checks["outliers"]["details"]  # k=99 sits far above the rest
    assert checks["outliers"]["passed"]  # one value in a hundred is under the 5% bar
    assert 0 < doc["overall_score"] < 100


def test_preview_and_export(store: Store, tmp_path: Path) -> None:
    table, df = generated_frame(100)
    put_table(store, tmp_path, "x", parquet_bytes(table), "t.parquet")
    an = Analytics(store)
    prev = an.preview("x", "t.parquet", 3)
    assert [r["id"] for r in prev["rows"]] == [0, 1, 2]
    assert prev["columns"][1] == {"name": "amount", "dtype": "float64"}
    for fmt in ("csv", "parquet", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        an.export("x", "t.parquet", fmt, out)
        back = {
            "csv": lambda p: pd.read_csv(p),
            "parquet": lambda p: pd.read_parquet(p),
            "jsonl": lambda p: pd.read_json(p, lines=True),
        }[fmt](out)
        assert list(back["id"]) == list(range(100)) and list(back.columns) == list(df.columns)
    with pytest.raises(InvalidRequest):
        an.export("x", "t.parquet", "xlsx", tmp_path / "o")


# the cache -------------------------------------------------------------------------------


def test_same_bytes_are_profiled_once(store: Store, tmp_path: Path, monkeypatch: Any) -> None:
    table, _ = generated_frame(3000)
    data = parquet_bytes(table)
    put_table(store, tmp_path, "c1", data, "a.parquet")
    store.snapshot("c1", tag="v1")
    an = Analytics(store)
    first = an.stats("c1@v1", "a.parquet")
    calls: list[int] = []
    real = profile_mod.profile

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(profile_mod, "profile", counting)
    put_table(store, tmp_path, "c2", data, "elsewhere/b.parquet")  # same bytes, other place
    start = time.perf_counter()
    again = Analytics(store).stats("c2", "elsewhere/b.parquet")
    elapsed = time.perf_counter() - start
    assert calls == [] and elapsed < 0.05
    assert again["path"] == "elsewhere/b.parquet" and again["columns"] == first["columns"]
    store.snapshot("c1", tag="v2")  # an unchanged file in a new snapshot: nothing to do
    an.stats("c1@v2", "a.parquet")
    an.quality("c1@v2", "a.parquet")
    assert calls == []


def test_memory_limit_spellings() -> None:
    assert memory_bytes("512MB") == 512_000_000 and memory_bytes("1GiB") == 1 << 30
    assert Limits(memory="64MB").exact_values() >= 1_000_000
    with pytest.raises(ValueError):
        memory_bytes("lots")


# the CLI --------------------------------------------------------------------------------


def test_cli_table_commands(cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text("id,amount,city\n1,2.5,a\n2,3.5,b\n3,,a\n4,100,c\n")
    cli("create", "sales")
    cli("put", "sales", str(src))
    cli("snapshot", "sales", "--tag", "v1")
    src.write_text("id,amount,city\n1,2.5,a\n2,4.5,b\n5,1,a\n")
    cli("put", "sales", str(src))
    schema = parse(cli("schema", "sales@v1/t.csv", "--json"))
    assert schema["row_count"] == 4 and schema["columns"][0] == {"name": "id", "dtype": "int64"}
    human = cli("stats", "sales@v1/t.csv")
    assert human.exit_code == 0 and "amount" in human.output and "█" in human.output
    stats = parse(cli("stats", "sales@v1/t.csv", "--json"))
    assert stats["columns"]["amount"]["missing"] == 1
    assert parse(cli("preview", "sales/t.csv", "-n", "2", "--json"))["rows"][1]["amount"] == 4.5
    assert "quality score" in cli("quality", "sales@v1/t.csv").output
    comp = parse(cli("compare", "sales/t.csv", "--from", "v1", "--key", "id", "--json"))
    assert comp["rows"] == {**comp["rows"], "added": 1, "removed": 2, "changed": 1, "unchanged": 1}
    assert (
        "1 added, 2 removed, 1 changed"
        in cli("compare", "sales/t.csv", "--from", "v1", "--key", "id").output
    )
    out = tmp_path / "o.jsonl"
    assert cli("export", "sales@v1/t.csv", "--format", "jsonl", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text().splitlines()[2]) == {"id": 3, "amount": None, "city": "a"}
    bad = cli("stats", "sales")
    assert bad.exit_code == 2 and "[invalid_request]" in bad.output
    (tmp_path / "n.txt").write_text("hello there\n")
    cli("put", "sales", str(tmp_path / "n.txt"))
    notab = cli("stats", "sales/n.txt")
    assert notab.exit_code == 6 and "[not_tabular]" in notab.output


def test_exact_quartiles_out_of_memory_fall_back_to_windows(
    store: Store, tmp_path: Path, monkeypatch: Any
) -> None:
    table, df = generated_frame(4000, seed=5)
    put_table(store, tmp_path, "oom", parquet_bytes(table), "o.parquet")
    real = profile_mod._pass2

    def exact_fails(con: Any, tf: Any, live: Any, windowed: bool, per_query: int) -> None:
        if not windowed:
            raise AnalyticsError("out of memory")
        real(con, tf, live, windowed, per_query)

    monkeypatch.setattr(profile_mod, "_pass2", exact_fails)
    assert_matches(Analytics(store).stats("oom", "o.parquet"), df)


def test_cli_constants_mirror_the_library() -> None:
    from cli import analytics as cli_analytics
    from datastore import analytics

    assert tuple(analytics.EXPORT_FORMATS) == cli_analytics.EXPORT_FORMATS
    assert cli_analytics.PREVIEW_DEFAULT == analytics.PREVIEW_DEFAULT


def test_compare_when_the_key_changes_type(store: Store, tmp_path: Path) -> None:
    v1 = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": [1.0, 2.0, 3.0]})
    v2 = pa.table({"id": pa.array(["1", "2", "4"]), "v": [1.0, 2.5, 4.0]})
    put_table(store, tmp_path, "kt", parquet_bytes(v1), "k.parquet")
    store.snapshot("kt", tag="v1")
    put_table(store, tmp_path, "kt", parquet_bytes(v2), "k.parquet")
    doc = Analytics(store).compare("kt", "k.parquet", "v1", None, key="id")
    assert doc["summary"]["columns_type_changed"] == [
        {"column": "id", "from": "int64", "to": "object"}
    ]
    assert doc["rows"] == {**doc["rows"], "added": 1, "removed": 1, "changed": 1, "unchanged": 1}


def test_latin1_and_utf16_text_is_decoded(store: Store, tmp_path: Path) -> None:
    body = "x,name\n1,José\n3,Köln\n"
    put_table(store, tmp_path, "enc", body.encode("latin-1"), "l.csv")
    put_table(store, tmp_path, "enc", body.encode("utf-16"), "u.csv")
    for path in ("l.csv", "u.csv"):
        rows = Analytics(store).preview("enc", path)["rows"]
        assert [r["name"] for r in rows] == ["José", "Köln"], path


def test_scratch_of_a_killed_analysis_is_swept(store: Store, tmp_path: Path) -> None:
    import os

    put_table(store, tmp_path, "sw", b"a,b\n1,2\n", "s.csv")
    an = Analytics(store)
    stale = an.scratch / "analysis-killed"
    stale.mkdir(parents=True)
    (stale / "t.duckdb").write_bytes(b"x")
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    an.stats("sw", "s.csv")
    assert list(an.scratch.iterdir()) == []


def test_quality_after_stats_reads_no_table(store: Store, tmp_path: Path, monkeypatch: Any) -> None:
    put_table(store, tmp_path, "qm", b"a,b\n1,x\n2,3\nz,4\n", "m.csv")
    an = Analytics(store)
    an.stats("qm", "m.csv")

    def no_connection(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("quality opened the table again")

    monkeypatch.setattr(an, "connection", no_connection)
    checks = {c["name"]: c for c in an.quality("qm", "m.csv")["checks"]}
    assert not checks["mixed_types"]["passed"]
    assert "a" in checks["mixed_types"]["details"] and "b" in checks["mixed_types"]["details"]


def test_a_document_computed_from_another_never_waits_on_itself(store: Store) -> None:
    """quality is computed from stats inside stats' cache lock; 200 nested pairs of
    documents never deadlock (with 64 lock stripes, some pair would share one)."""
    import threading

    an = Analytics(store)
    done: list[int] = []

    def nested() -> None:
        for i in range(200):
            oid = f"{i:032x}"
            inner = {"inner": i}
            outer = an.cached(
                oid,
                "outer",
                "",
                lambda oid=oid, inner=inner: an.cached(oid, "inner", "", lambda: inner),
            )
            assert outer == inner
            done.append(i)

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(30)
    assert len(done) == 200
