"""How many times the native backends read the caller's lines, asserted on their plans.

Validated lines are computed once (a DuckDB temporary table, a collected polars frame)
and every later query reads that result: the report's counts and each group-by of the
features would otherwise convert every id and time again from the input.
"""

from __future__ import annotations

import re

import narwhals as nw
import pandas as pd
import pytest

import segmentkit as sk

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")


def _lines(n: int = 2_000) -> pd.DataFrame:
    customers = [f"C{i % 97:04d}" for i in range(n)]
    return pd.DataFrame(
        {
            "customer_id": customers,
            "order_id": [f"O{i // 3:05d}" for i in range(n)],
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="37min"),
            "amount": [float(5 + i % 13) for i in range(n)],
        }
    )


_MAPPING = {c: c for c in ("customer_id", "order_id", "timestamp", "amount")}


def _scans_of(relation, table: str) -> int:
    """Scans of ``table`` in the plan DuckDB would run for ``relation``."""
    plan = relation.query("x", "EXPLAIN SELECT * FROM x").fetchall()[0][1]
    return len(re.findall(rf"\b{table}\b", plan))


def test_duckdb_features_read_the_validated_lines_not_the_input():
    con = duckdb.connect()
    lines = _lines()
    con.register("raw_lines", lines)
    con.execute("CREATE TABLE shop_lines AS SELECT * FROM raw_lines")
    relation = con.table("shop_lines")
    assert _scans_of(relation, "shop_lines") == 1  # what a scan of the input looks like
    transactions = sk.Transactions.from_frame(relation, **_MAPPING)
    kept = transactions.native
    # The validated lines are a table of their own: reading them scans no input.
    assert _scans_of(kept, "shop_lines") == 0
    assert re.search(r"__segmentkit_lines_[0-9a-f]+", kept.sql_query())
    features = sk.extract_features(transactions)
    assert _scans_of(features, "shop_lines") == 0
    segments = sk.RFMSegmenter().fit_predict(features)
    assert _scans_of(segments, "shop_lines") == 0
    # Same figures as the pandas path.
    expected = sk.extract_features(sk.Transactions.from_frame(lines, **_MAPPING))
    got = features.df().set_index("customer_id").sort_index()
    pd.testing.assert_series_equal(
        got["monetary"], expected.frame["monetary"], check_names=False, check_index_type=False
    )
    assert transactions.report.rows_read == len(lines)


def test_polars_validation_and_features_collect_three_times_in_all(monkeypatch):
    collected: list[str] = []
    original = nw.LazyFrame.collect

    def counting(self, *args, **kwargs):
        collected.append("collect")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nw.LazyFrame, "collect", counting)
    frame = pl.from_pandas(_lines())
    transactions = sk.Transactions.from_frame(frame, **_MAPPING)
    # The validated lines once, then the report's counts from them.
    assert len(collected) == 2
    features = sk.extract_features(transactions)
    assert len(collected) == 3  # one plan for every feature
    assert isinstance(features, pl.DataFrame)
    sk.RFMSegmenter().fit_predict(features)


def test_duplicates_are_judged_on_the_lines_as_read_on_every_path():
    # " C1" and "C1" are the same customer once read; the two lines repeat each other,
    # as on the pandas path.
    raw = pd.DataFrame(
        {
            "customer_id": [" C1", "C1", "C2"],
            "order_id": ["O1", "O1", "O2"],
            "timestamp": pd.to_datetime(["2024-01-01"] * 3),
            "amount": [5.0, 5.0, 7.0],
        }
    )
    on_pandas = sk.Transactions.from_frame(raw, **_MAPPING).report
    con = duckdb.connect()
    con.register("raw", raw)
    for frame in (pl.from_pandas(raw), con.sql("SELECT * FROM raw")):
        report = sk.Transactions.from_frame(frame, **_MAPPING).report
        assert report.flagged == on_pandas.flagged == {"duplicate_line": 1}
        dropped = sk.Transactions.from_frame(frame, duplicates="drop", **_MAPPING)
        assert dropped.report.rows_kept == 2
        assert len(dropped) == 2


def test_lazy_polars_features_stay_a_plan_read_once_by_fit_and_once_by_predict(
    tmp_path, monkeypatch
):
    # Collecting every feature once, for the fit and the predictions to share, was
    # measured slower and heavier on 100M lines (211 s and 11.8 GiB against 177 s and
    # 8.9 GiB): a lazy plan lets polars compute only the features a segmenter reads.
    path = tmp_path / "lines.parquet"
    _lines().to_parquet(path)
    scans: list[str] = []
    original = pl.LazyFrame.collect

    def counting(self, *args, **kwargs):
        if "Parquet SCAN" in self.explain():
            scans.append("scan")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pl.LazyFrame, "collect", counting)
    transactions = sk.Transactions.from_parquet(str(path), engine="polars", **_MAPPING)
    validation = len(scans)
    assert validation == 1  # the report's counts, one query (no line repeats here)
    features = sk.extract_features(transactions)
    assert isinstance(features, pl.LazyFrame)
    assert "Parquet SCAN" in features.explain()
    assert len(scans) == validation
    model = sk.RFMSegmenter().fit(features)
    assert len(scans) == validation + 1
    segments = model.predict(features).collect()
    assert len(scans) == validation + 2
    expected = sk.extract_features(sk.Transactions.from_frame(_lines(), **_MAPPING))
    assert len(segments) == len(expected)
