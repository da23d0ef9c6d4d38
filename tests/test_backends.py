"""The same data through pandas, polars (eager and lazy), pyarrow, DuckDB, Spark and Dask.

Every backend must give the pandas path's validation reports exactly, every feature the
pandas path returns (exact, floats to 1e-9) and the same assignments from every engine.
Tests take the ``backend`` fixture of conftest.py: a plain run tests the fast default
backends, ``SEGMENTKIT_TEST_BACKENDS=all`` every one (tests/README.md).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from _backends import NATIVE, NATIVE_FAST, Backend, optional_module, require
from segmentkit.errors import ContractError, InvalidParameterError

pytestmark = [
    pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support:FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

pl = optional_module("polars")
duckdb = optional_module("duckdb")

AS_OF = "2017-12-01"


def assert_features_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every column the pandas path returns, with its dtype: exact, floats to 1e-9.

    Integers, booleans, text, categories and times must be identical; floats equal to a
    relative 1e-9 (the engines sum in different orders), missing in the same places.
    """
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_index_equal(got.index, expected.index, exact=True)
    for column in expected.columns:
        left, right = got[column], expected[column]
        assert left.dtype == right.dtype, (column, left.dtype, right.dtype)
        if pd.api.types.is_float_dtype(right.dtype):
            np.testing.assert_allclose(
                left.to_numpy(float), right.to_numpy(float), rtol=1e-9, atol=0, err_msg=column
            )
        else:
            pd.testing.assert_series_equal(left, right, check_exact=True, obj=column)


def _assert_same(
    raw: pd.DataFrame, native: Any, *, as_of: str | None = AS_OF, **kwargs: Any
) -> sk.Transactions:
    """Validate both ways; reports equal exactly, features to float tolerance."""
    expected_tx = sk.Transactions.from_frame(raw, **kwargs)
    tx = sk.Transactions.from_frame(native, **kwargs)
    assert tx.report == expected_tx.report, (str(tx.report), str(expected_tx.report))
    assert tx.columns == [c for c in expected_tx.columns if c != "order_key"]
    expected = sk.extract_features(expected_tx, as_of=as_of)
    got = sk.extract_features(tx, as_of=as_of, output="pandas")
    assert_features_equal(got.frame, expected.frame)
    assert got.excluded == expected.excluded
    assert got.as_of == expected.as_of
    pd.testing.assert_frame_equal(got.catalog, expected.catalog)
    return tx


# --- the bundled sample: 800 households ------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, dict[str, str]]:
    return sk.datasets.load_sample()


# Spark runs the sample with profiles below (a superset: one Spark pass instead of two).
@pytest.mark.backends(*NATIVE_FAST)
def test_sample_features_and_report_match_pandas(sample, backend):
    raw, mapping = sample
    _assert_same(raw, backend.frame(raw), **mapping)


@pytest.mark.backends(*NATIVE_FAST)
def test_sample_with_default_as_of_matches_pandas(sample, backend):
    raw, mapping = sample
    _assert_same(raw, backend.frame(raw), as_of=None, **mapping)


@pytest.mark.backends(*NATIVE_FAST)
def test_time_range_from_validation_answers_as_of_without_a_query(sample, backend, monkeypatch):
    # On lazy engines every query reruns the validation: the kept lines' first and last
    # time are counted with the report, so the default as_of and any as_of outside that
    # range need no query of their own.
    from segmentkit.features import _native as native_features

    raw, mapping = sample
    expected = sk.Transactions.from_frame(raw, **mapping)
    tx = sk.Transactions.from_frame(backend.frame(raw), **mapping)
    first, last = expected.data["timestamp"].min(), expected.data["timestamp"].max()
    assert tx.time_range == (first.value // 1000, last.value // 1000)

    def no_query(frame):
        raise AssertionError("a query ran")

    monkeypatch.setattr(native_features, "collect", no_query)
    for as_of, n_in in ((None, len(tx)), ("2030-01-01", len(tx)), ("2000-01-01", 0)):
        _, counted, earliest = native_features._lines_inside(tx, as_of)
        assert counted == n_in
        assert earliest == first.value // 1000
    assert native_features._lines_inside(tx, None)[0] == last
    monkeypatch.undo()
    # A cut inside the range counts its lines, and the messages match pandas'.
    inside = native_features._lines_inside(tx, AS_OF)[1]
    assert inside == int((expected.data["timestamp"] <= pd.Timestamp(AS_OF, tz="UTC")).sum())
    with pytest.raises(ValueError, match="the earliest is") as from_pandas:
        sk.extract_features(expected, as_of="2000-01-01")
    with pytest.raises(ValueError, match="the earliest is") as from_native:
        sk.extract_features(tx, as_of="2000-01-01")
    assert str(from_native.value) == str(from_pandas.value)


@pytest.mark.backends(*NATIVE_FAST)
def test_no_kept_line_is_refused_like_pandas(backend):
    raw = pd.DataFrame({"c": ["a", "b"], "t": ["2024-01-01", "2024-01-02"], "v": [-1.0, -2.0]})
    mapping = {"customer_id": "c", "timestamp": "t", "amount": "v", "returns": "exclude"}
    for frame in (raw, backend.frame(raw)):
        tx = sk.Transactions.from_frame(frame, **mapping)
        assert len(tx) == 0
        with pytest.raises(ValueError, match="Validation kept no transaction line"):
            sk.extract_features(tx)


# --- hand-made edge cases ---------------------------------------------------------------


def _messy() -> pd.DataFrame:
    """Returns, cancellations, missing ids and values, duplicates, zeros, padded ids.

    ``store`` is never mapped: two lines that differ only there are duplicates, as
    duplicates are judged on the mapped columns.
    """
    nan = np.nan
    rows = [
        ("00042", "2024-01-05 10:00", 20.0, "o1", "p1", "food", 1, 0.0, "s1"),
        ("00042", "2024-01-05 10:00", 20.0, "o1", "p1", "food", 1, 0.0, "s1"),
        (" 00042 ", "2024-02-01 23:30", 35.5, "o2", "p2", "home", 2, 1.5, "s1"),
        ("7", "2024-02-01 23:30", 12.0, "o3", "p1", "food", 1, 0.0, "s2"),
        ("7", "2024-02-02 00:10", -12.0, "C3", "p1", "food", -1, 0.0, "s2"),
        (None, "2024-03-01 09:00", 9.9, "o4", "p3", "toys", 1, 0.0, "s1"),
        ("", "2024-03-02 09:00", 5.0, "o5", "p3", "toys", 1, 0.5, "s1"),
        ("nan", "2024-03-03 09:00", 4.0, "o6", "p3", None, 1, 0.0, "s1"),
        ("17850.0", "2024-03-04 12:00", 10.0, "o7", "p4", "home", 3, 2.0, "s3"),
        ("17850", None, 11.0, "o8", "p5", "home", 1, nan, "s3"),
        ("b", "2024-04-01 08:00", 0.0, "o9", "p6", "toys", 1, 0.0, "s1"),
        ("b", "2024-04-02 08:00", 15.0, "o10", None, "food", 2, 1.0, "s1"),
        ("b", "2024-04-03 08:00", 8.0, "o11", "p7", "home", 1, 0.0, "s2"),
        ("b", "2024-04-03 08:00", 8.0, "o11", "p7", "home", 1, 0.0, "s2"),
        ("b", "2024-04-03 08:00", 8.0, "o11", "p7", "home", 1, 0.0, "s3"),
        ("c", "2024-05-01 18:45", nan, "o12", "p8", "food", 1, 0.0, "s1"),
        ("c", "2024-05-01 19:45", 30.0, "o13", "p9", "food", 2, 3.0, "s1"),
        ("c", "2024-05-02 02:00", 25.0, "C13", "p9", "food", 1, 0.0, "s1"),
        ("d", "2024-06-01 00:00", 7.0, None, "p1", None, 1, 0.0, "s1"),
    ]
    columns = ["cust", "ts", "amount", "order", "product", "cat", "qty", "disc", "store"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(ts=pd.to_datetime(frame["ts"]))


_MAPPING = {"customer_id": "cust", "timestamp": "ts", "amount": "amount"}
_FULL = {
    **_MAPPING,
    "order_id": "order",
    "product_id": "product",
    "category": "cat",
    "quantity": "qty",
    "discount": "disc",
}
POLICIES = {
    "defaults": dict(_FULL),
    "strict": dict(
        _FULL,
        returns="exclude",
        zero_amount="exclude",
        duplicates="drop",
        cancellation_prefix="C",
        timezone="America/New_York",
    ),
    "separate_by_day": dict(
        _MAPPING,
        returns="separate",
        duplicates="drop",
        orders_from="day",
        product_id="product",
        timezone="Europe/Paris",
    ),
    "rows_as_orders": dict(_MAPPING, orders_from="row", category="cat", quantity="qty"),
    "by_timestamp": dict(
        _MAPPING, orders_from="timestamp", discount="disc", zero_amount="exclude"
    ),
}
SPARK_POLICIES = ["strict", "separate_by_day"]


@pytest.mark.backends(*NATIVE_FAST)
@pytest.mark.parametrize("policy", POLICIES)
def test_messy_lines_match_pandas(backend, policy):
    _assert_messy_lines_match(backend, policy)


# Spark takes seconds per query: two policies that cover what the others do.
@pytest.mark.backends("spark")
@pytest.mark.parametrize("policy", SPARK_POLICIES)
def test_messy_lines_match_pandas_on_spark(backend, policy):
    _assert_messy_lines_match(backend, policy)


def _assert_messy_lines_match(backend: Backend, policy: str) -> None:
    raw = _messy()
    tx = _assert_same(raw, backend.frame(raw), as_of="2024-06-01", **POLICIES[policy])
    if POLICIES[policy].get("returns") == "separate":
        returns = sk.Transactions.from_frame(raw, **POLICIES[policy]).returns
        assert _n_rows(tx.returns) == len(returns) > 0


def _n_rows(native: Any) -> int:
    import narwhals as nw

    frame = nw.from_native(native)
    counted = frame.lazy().select(nw.len()).collect()
    return int(counted.item(0, 0))


def test_messy_report_counts_every_policy():
    # The expected counts, written out once, so a shared mistake cannot pass unnoticed.
    tx = sk.Transactions.from_frame(pl.from_pandas(_messy()), **POLICIES["strict"])
    assert tx.report.rows_read == 19
    assert dict(tx.report.excluded) == {
        "missing_customer_id": 3,
        "missing_timestamp": 1,
        "missing_amount": 1,
        "zero_amount": 1,
        "return_or_cancellation": 2,
        "duplicate_line": 3,
    }


@pytest.mark.backends(*NATIVE_FAST)
def test_float_ids_and_text_timestamps_match_pandas(backend):
    raw = pd.DataFrame(
        {
            "cust": [17850.0, 17850.0, np.nan, 12.0, 12.5, 123456789012.0],
            "when": ["2024-01-01", "2024-01-03", "2024-01-04", "2024-02-01", None, "2024-02-03"],
            "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    mapping = {"customer_id": "cust", "timestamp": "when", "amount": "value"}
    _assert_same(raw, backend.frame(raw), as_of="2024-03-01", **mapping)
    features = sk.extract_features(
        sk.Transactions.from_frame(backend.frame(raw), **mapping),
        as_of="2024-03-01",
        output="pandas",
    )
    # 12.5 has no timestamp, so it is excluded; 123456789012.0 is not printed as 1.2e11.
    assert list(features.customer_ids) == ["12", "123456789012", "17850"]


@pytest.mark.backends(*NATIVE)
def test_time_zone_aware_and_yyyymmdd_timestamps_match_pandas(backend):
    aware = pd.to_datetime(["2024-03-30 23:30", "2024-03-31 12:00", "2024-04-02 01:00"])
    raw = pd.DataFrame(
        {
            "cust": ["a", "a", "b"],
            "at": aware.tz_localize("Europe/Paris"),
            "day": [20240330, 20240331, 20240402],
            "paid": [10.0, 5.0, 2.5],
        }
    )
    for column in ("at", "day"):
        mapping = {"customer_id": "cust", "timestamp": column, "amount": "paid"}
        native = backend.frame(raw[["cust", column, "paid"]])
        _assert_same(raw, native, as_of="2024-04-03", orders_from="day", **mapping)


# 2024-03-10 02:30 does not exist in New York; 2024-11-03 01:30 happens twice.
_DST = pd.DataFrame(
    {
        "cust": ["a", "a", "b", "b"],
        "ts": pd.to_datetime(
            ["2024-03-10 01:59", "2024-11-03 01:30", "2024-11-03 00:59", "2024-11-03 03:00"]
        ),
        "paid": [1.0, 2.0, 3.0, 4.0],
    }
)
_SKIPPED = pd.DataFrame({"cust": ["a"], "ts": pd.to_datetime(["2024-03-10 02:30"]), "paid": [1.0]})


@pytest.mark.backends(*NATIVE_FAST)
def test_repeated_wall_clock_times_are_read_as_standard_time(backend):
    mapping = {"customer_id": "cust", "timestamp": "ts", "amount": "paid"}
    native = backend.frame(_DST)
    _assert_same(_DST, native, as_of="2024-12-01", timezone="America/New_York", **mapping)


@pytest.mark.backends("pyarrow", "dask")
def test_skipped_wall_clock_times_move_to_the_end_of_the_gap(backend):
    mapping = {"customer_id": "cust", "timestamp": "ts", "amount": "paid"}
    native = backend.frame(_SKIPPED)
    _assert_same(_SKIPPED, native, as_of="2024-12-01", timezone="America/New_York", **mapping)


@pytest.mark.backends("duckdb", "spark")
def test_dst_differences_of_duckdb_and_spark_are_the_documented_ones(backend):
    # docs/scaling.md: both move a skipped time by the gap's length (02:30 -> 03:30, not
    # 03:00 as pandas), and Spark reads a repeated time as daylight time.
    mapping = {"customer_id": "cust", "timestamp": "ts", "amount": "paid"}
    options = {"timezone": "America/New_York", **mapping}
    skipped = sk.Transactions.from_frame(backend.frame(_SKIPPED), **options)
    assert skipped.report == sk.Transactions.from_frame(_SKIPPED, **options).report
    got = sk.extract_features(skipped, as_of="2024-12-01", output="pandas")
    assert got.frame["first_purchase"].iloc[0] == pd.Timestamp("2024-03-10 07:30", tz="UTC")
    repeated = sk.Transactions.from_frame(backend.frame(_DST), **options)
    got = sk.extract_features(repeated, as_of="2024-12-01", output="pandas")
    hour = 5 if backend.name == "spark" else 6
    assert got.frame.loc["a", "last_purchase"] == pd.Timestamp(f"2024-11-03 0{hour}:30", tz="UTC")


def test_skipped_wall_clock_times_on_polars_say_what_to_do():
    with pytest.raises(InvalidParameterError, match="do not exist in time zone"):
        sk.Transactions.from_frame(
            pl.from_pandas(_SKIPPED),
            customer_id="cust",
            timestamp="ts",
            amount="paid",
            timezone="America/New_York",
        )


@pytest.mark.backends(*NATIVE_FAST)
def test_currencies_are_converted_or_refused_like_pandas(backend):
    raw = pd.DataFrame(
        {
            "cust": ["a", "a", "b", "c"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
            "amount": [10.0, 20.0, 30.0, 40.0],
            "cur": ["EUR", "USD", "USD", "USD"],
        }
    )
    mapping = {"customer_id": "cust", "timestamp": "ts", "amount": "amount", "currency": "cur"}
    native = backend.frame(raw)
    with pytest.raises(ContractError, match=r"mixes 2 currencies: USD \(3 rows\), EUR \(1 rows\)"):
        sk.Transactions.from_frame(native, **mapping)
    rates = {"rates": {"EUR": 1.1}, "base_currency": "USD"}
    tx = _assert_same(raw, native, as_of="2024-02-01", **mapping, **rates)
    assert tx.report.notes == ("amounts converted to USD with the given rates",)
    with pytest.raises(ContractError, match="no exchange rate"):
        sk.Transactions.from_frame(native, **mapping, rates={"GBP": 1.2}, base_currency="USD")


@pytest.mark.backends(*NATIVE_FAST)
def test_contract_failures_are_raised_like_pandas(backend):
    raw = _messy()
    native = backend.frame(raw)
    with pytest.raises(ContractError, match="3 rows have no 'customer_id'"):
        sk.Transactions.from_frame(native, missing_customer="raise", **_MAPPING)
    with pytest.raises(ContractError, match=r"Column 'CustomerID' \(mapped to 'customer_id'\)"):
        sk.Transactions.from_frame(native, customer_id="CustomerID", timestamp="ts")
    infinite = raw.assign(amount=raw["amount"].replace(12.0, np.inf))
    with pytest.raises(ContractError, match="'amount' of transactions has 1 non-numeric") as info:
        sk.Transactions.from_frame(backend.frame(infinite), **_MAPPING)
    assert info.value.failures["failure_case"].tolist() == [np.inf]
    text = raw.assign(ts=raw["ts"].astype(str).where(raw["ts"].notna(), None))
    text.loc[3, "ts"] = "yesterday"
    with pytest.raises(ContractError, match="'timestamp' of transactions has 1 values") as info:
        sk.Transactions.from_frame(backend.frame(text), **_MAPPING)
    assert info.value.failures["failure_case"].tolist() == ["yesterday"]
    with pytest.raises(ContractError, match="empty"):
        sk.Transactions.from_frame(backend.frame(raw.iloc[0:0]), **_MAPPING)


@pytest.mark.backends(*NATIVE_FAST)
def test_text_amounts_are_refused_with_the_fix(backend):
    raw = _messy().assign(amount=lambda f: f["amount"].astype(str))
    with pytest.raises(ContractError, match=r"must already be numeric\. Cast it"):
        sk.Transactions.from_frame(backend.frame(raw), **_MAPPING)


# --- what native transactions look like ------------------------------------------------

_NATIVE_TYPES = {
    "polars": "polars.dataframe.frame.DataFrame",
    "polars_lazy": "polars.lazyframe.frame.LazyFrame",
    "pyarrow": "pyarrow.lib.Table",
    "duckdb": "duckdb.DuckDBPyRelation",
    "dask": "dask.dataframe.dask_expr._collection.DataFrame",
}


@pytest.mark.backends(*NATIVE_FAST)
def test_features_come_back_in_the_callers_engine(backend):
    raw = _messy()
    tx = sk.Transactions.from_frame(backend.frame(raw), **_FULL)
    features = sk.extract_features(tx, as_of="2024-06-01")
    kind = type(features)
    assert f"{kind.__module__}.{kind.__qualname__}".endswith(
        _NATIVE_TYPES[backend.name].split(".")[-1]
    )
    expected = sk.extract_features(sk.Transactions.from_frame(raw, **_FULL), as_of="2024-06-01")
    import narwhals as nw

    got = nw.from_native(features).lazy().collect().sort("customer_id")
    assert got.columns == ["customer_id", *expected.columns]
    assert got["customer_id"].to_list() == list(expected.customer_ids)
    assert tx.backend == backend.name.replace("_lazy", "")
    assert type(tx.native) is type(backend.frame(raw))
    assert tx.n_customers == sk.Transactions.from_frame(raw, **_FULL).n_customers
    assert len(tx) == tx.report.rows_kept


def test_duckdb_features_are_computed_once_then_read_from_the_connection(sample):
    # Fitting and predicting each query the features: they must read a table computed
    # once, not rerun the group-bys over the lines. Emptying the lines afterwards shows
    # any recomputation (it would find no customers).
    raw, mapping = sample
    con = duckdb.connect()
    lines = pl.from_pandas(raw).to_arrow()  # noqa: F841 (read by name below)
    con.execute("CREATE TABLE lines AS SELECT * FROM lines")
    tx = sk.Transactions.from_frame(con.table("lines"), **mapping)
    features = sk.extract_features(tx, as_of=AS_OF)
    assert isinstance(features, duckdb.DuckDBPyRelation)
    # Two temporary tables: the validated lines, and the features computed from them.
    temporary = con.sql(
        "SELECT table_name FROM duckdb_tables() WHERE temporary ORDER BY table_name"
    ).fetchall()
    assert [name.split("_")[3] for (name,) in temporary] == ["features", "lines"]
    expected = sk.extract_features(sk.Transactions.from_frame(raw, **mapping), as_of=AS_OF)
    con.execute("DELETE FROM lines")
    segmented = sk.RFMSegmenter().fit_predict(features).to_arrow_table()
    assert segmented.num_rows == len(expected)
    rules = sk.RuleSegmenter(rules=[("Big", "monetary > 100")]).fit_predict(features)
    assert rules.to_arrow_table().num_rows == len(expected)


def test_pandas_data_is_not_collected_behind_the_users_back():
    raw = _messy()
    tx = sk.Transactions.from_frame(pl.from_pandas(raw).lazy(), **_FULL)
    with pytest.raises(TypeError, match=r"live in polars \(lazy\).*\.to_pandas\(\)"):
        _ = tx.data
    assert "rows" in repr(tx)
    collected = tx.to_pandas()
    expected = sk.Transactions.from_frame(raw, **_FULL)
    assert collected.report == expected.report
    # Category order is an implementation detail of each path; values must be equal.
    pd.testing.assert_frame_equal(collected.data, expected.data, check_categorical=False)
    pd.testing.assert_frame_equal(
        sk.extract_features(collected, as_of="2024-06-01").frame,
        sk.extract_features(expected, as_of="2024-06-01").frame,
    )


def test_tables_of_mixed_engines_say_what_to_do():
    events = pl.DataFrame(
        {"customer_id": ["a"], "timestamp": ["2024-01-01"], "event_type": ["view"]}
    )
    tx = sk.Transactions.from_frame(pl.from_pandas(_messy()), **_MAPPING)
    pandas_events = sk.Events.from_frame(events.to_pandas())
    with pytest.raises(InvalidParameterError, match=r"events= must be validated on the same"):
        sk.extract_features(tx, pandas_events)
    pandas_profiles = sk.Customers.from_frame(pd.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(InvalidParameterError, match=r"same engine as the transactions"):
        sk.extract_features(tx, customers=pandas_profiles)
    with pytest.raises(InvalidParameterError, match="'output'"):
        sk.extract_features(tx, output="spark")
    native_events = sk.Events.from_frame(events)
    assert native_events.backend == "polars"
    with pytest.raises(TypeError, match=r"live in polars \(eager\)"):
        sk.extract_features(sk.Transactions.from_frame(_messy(), **_MAPPING), native_events)


# --- customer profiles -------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiles(sample) -> pd.DataFrame:
    """Profiles of part of the sample's households, one without orders, messy values."""
    raw, _ = sample
    ids = [*sorted(raw["household_id"].unique())[:150], "no-orders", None]
    n = len(ids)
    rng = np.random.default_rng(7)
    born = pd.to_datetime(rng.integers(-20_000, 15_000, n), unit="D")
    # Up to mid-2018, so some sign up after as_of; "no-orders" signs up before it.
    days = rng.integers(0, 900, n)
    days[-2] = 10
    signup = pd.Timestamp("2016-01-01") + pd.to_timedelta(days, unit="D")
    return pd.DataFrame(
        {
            "id": ids,
            "mail": [f"{i}@example.org" for i in ids],
            "born": born.where(rng.random(n) > 0.2),
            "age": rng.integers(-5, 130, n).astype(float),
            "gender": rng.choice(["f", "m", None], n),
            "country": rng.choice(["FR", "DE", "US"], n),
            "signup": signup,
            "opt_in": rng.choice(["yes", "no", None, "Granted", " N "], n),
            "tier": rng.choice(["gold", "silver"], n),
        }
    )


_PROFILE_MAPPING = {
    "customer_id": "id",
    "email": "mail",
    "birth_date": "born",
    "age": "age",
    "gender": "gender",
    "country": "country",
    "signup_date": "signup",
    "consent_email": "opt_in",
    "extra_columns": ["tier"],
}


@pytest.mark.backends(*NATIVE_FAST)
def test_profile_contract_failures_say_what_to_do(profiles, backend):
    native = backend.frame(profiles)
    with pytest.raises(InvalidParameterError, match="no row order"):
        sk.Customers.from_frame(native, duplicates="keep_last", **_PROFILE_MAPPING)
    repeated = backend.frame(pd.concat([profiles, profiles.iloc[:2]]))
    with pytest.raises(ContractError, match="2 customer ids appear on more than one row"):
        sk.Customers.from_frame(repeated, **_PROFILE_MAPPING)
    flags = profiles.assign(opt_in=profiles["opt_in"].where(profiles.index != 3, "maybe"))
    with pytest.raises(ContractError, match="'consent_email' of customers has 1") as info:
        sk.Customers.from_frame(backend.frame(flags), **_PROFILE_MAPPING)
    assert info.value.failures["failure_case"].tolist() == ["maybe"]
    with pytest.raises(ContractError, match="1 row has no 'customer_id'"):
        sk.Customers.from_frame(native, missing_customer="raise", **_PROFILE_MAPPING)


def test_validation_collects_only_small_results(sample):
    # The lines never reach Python: every collect of validation and features is a few
    # rows (counts, examples) or one row per customer.
    raw, mapping = sample
    lazy = pl.from_pandas(raw).lazy()
    collected: list[int] = []
    original = pl.LazyFrame.collect

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        collected.append(result.height)
        return result

    pl.LazyFrame.collect = counting  # type: ignore[method-assign]
    try:
        tx = sk.Transactions.from_frame(lazy, **mapping)
        features = sk.extract_features(tx, as_of=AS_OF)
    finally:
        pl.LazyFrame.collect = original  # type: ignore[method-assign]
    assert isinstance(features, pl.LazyFrame)
    assert collected
    assert max(collected) <= 1
    expected = sk.extract_features(sk.Transactions.from_frame(raw, **mapping), as_of=AS_OF)
    assert features.collect().height == len(expected)


# --- files larger than memory ---------------------------------------------------------


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_parquet_and_csv_globs_are_read_lazily_and_match_pandas(sample, tmp_path, engine):
    raw, mapping = sample
    parts = np.array_split(np.arange(len(raw)), 3)
    for i, rows in enumerate(parts):
        part = raw.iloc[rows]
        part.to_parquet(tmp_path / f"orders-{i}.parquet", index=False)
        part.to_csv(tmp_path / f"orders-{i}.csv", index=False)
    expected_tx = sk.Transactions.from_frame(raw, **mapping)
    expected = sk.extract_features(expected_tx, as_of=AS_OF)
    readers = {"parquet": sk.Transactions.from_parquet, "csv": sk.Transactions.from_csv}
    for kind, reader in readers.items():
        tx = reader(str(tmp_path / f"orders-*.{kind}"), engine=engine, **mapping)
        assert tx.backend == engine
        assert tx.report == expected_tx.report
        got = sk.extract_features(tx, as_of=AS_OF, output="pandas")
        assert_features_equal(got.frame, expected.frame)
    with pytest.raises(InvalidParameterError, match="'engine' parameter must be one of"):
        sk.Transactions.from_parquet(tmp_path, engine="spark", **mapping)


# --- the Spark example of docs/scaling.md ------------------------------------------------


@pytest.mark.backends("spark")
def test_scaling_page_spark_example_runs(backend):
    # The page marks the example +SKIP (it starts a JVM); it runs here instead, on the
    # run's session, which getOrCreate() hands back.
    page = pathlib.Path(sk.__file__).resolve().parents[2] / "docs" / "scaling.md"
    text = page.read_text(encoding="utf-8")
    section = text.split("## Running on Spark")[1]
    block = section.split("```python")[1].split("```")[0]
    code = "\n".join(line[4:] for line in block.splitlines() if line.startswith((">>> ", "... ")))
    code = code.replace("# doctest: +SKIP", "")
    namespace: dict[str, Any] = {"sk": sk}
    exec(compile(code, str(page), "exec"), namespace)  # our own docs page
    features = namespace["features"]
    assert features.columns[:3] == ["customer_id", "first_purchase", "last_purchase"]
    assert namespace["pdf"].shape[0] == 800


# --- browsing events ----------------------------------------------------------------------

_EVENT_MAPPING = {
    "customer_id": "customer_id",
    "timestamp": "timestamp",
    "event_type": "event_type",
    "product_id": "product_id",
    "category": "category",
    "session_id": "session_id",
    "duration_s": "duration_s",
}
# Without session_id and duration_s, visits come from the 30-minute gap and their span.
_GAP_MAPPING = {k: v for k, v in _EVENT_MAPPING.items() if k not in {"session_id", "duration_s"}}


@pytest.fixture(scope="module")
def sample_events(sample) -> pd.DataFrame:
    """The quickstart's generated events: UTC instants in nanoseconds, as pandas has them."""
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    return sk.datasets.generate_events(tx.data, random_state=0)


def _assert_same_browsing(
    raw: pd.DataFrame,
    native_raw: Any,
    events: pd.DataFrame,
    native_events: Any,
    *,
    as_of: str,
    tx_mapping: dict[str, Any],
    event_mapping: dict[str, Any],
) -> Any:
    """Events validated and featurised both ways: same reports, features and exclusions."""
    expected_events = sk.Events.from_frame(events, **event_mapping)
    got_events = sk.Events.from_frame(native_events, **event_mapping)
    assert got_events.report == expected_events.report, (
        str(got_events.report),
        str(expected_events.report),
    )
    expected_tx = sk.Transactions.from_frame(raw, **tx_mapping)
    tx = sk.Transactions.from_frame(native_raw, **tx_mapping)
    expected = sk.extract_features(expected_tx, expected_events, as_of=as_of)
    got = sk.extract_features(tx, got_events, as_of=as_of, output="pandas")
    assert_features_equal(got.frame, expected.frame)
    assert got.excluded == expected.excluded
    pd.testing.assert_frame_equal(got.catalog, expected.catalog)
    return expected


@pytest.mark.backends(*NATIVE_FAST)
def test_sample_events_match_pandas(sample, sample_events, backend):
    raw, mapping = sample
    native_raw = backend.frame(raw)
    native_events = backend.frame(sample_events)
    for event_mapping in (_EVENT_MAPPING, _GAP_MAPPING):
        expected = _assert_same_browsing(
            raw,
            native_raw,
            sample_events,
            native_events,
            as_of=AS_OF,
            tx_mapping=mapping,
            event_mapping=event_mapping,
        )
        assert expected.frame["abandoned_carts_90d"].sum() > 0


def _edge_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hand-made events and orders around each rule; as_of is 2024-03-10 00:00.

    a: visits split exactly at the 30-minute gap, a tie, a cart bought within the
    hour, an event after as_of. b: a cart never bought (abandoned). c: a cart younger
    than 24 h at as_of (not counted yet). d: a cart bought exactly 24 h later (bought).
    e: a cart bought through an order line, not an event. f: only after as_of.
    Then rows excluded for each reason, aliases, an event_map name and an unknown type.
    """
    nan = np.nan
    rows = [
        ("a", "2024-03-01 10:00:00", "view", "p1", "food", "s1", 10.0),
        ("a", "2024-03-01 10:30:00", "Page_View", "p2", "food", "s1", nan),
        ("a", "2024-03-01 10:30:00", "view", "p2", "food", "s1", 5.0),
        ("a", "2024-03-01 11:00:01", "view", "p3", "home", None, 7.0),
        ("a", "2024-03-02 09:00:00", "AddToCart", "p3", "home", None, 3.0),
        ("a", "2024-03-02 10:00:00", " Purchase ", "p3", "home", None, 1.0),
        ("a", "2024-03-12 09:00:00", "view", "p3", "home", "s9", 1.0),
        ("b", "2024-03-03 12:00:00", "basket", "p4", "toys", "s2", 20.0),
        ("b", "2024-02-01 12:00:00", "view", "p4", "toys", "s3", 0.0),
        ("c", "2024-03-09 12:00:00", "add_to_cart", "p5", "toys", "s4", 2.0),
        ("d", "2024-03-04 08:00:00", "add_to_cart", "p6", "food", "s5", 2.0),
        ("d", "2024-03-05 08:00:00", "purchase", "p6", "food", "s6", 2.0),
        ("e", "2024-03-05 10:00:00", "add_to_cart", "p7", "home", "s7", 2.0),
        ("e", "2024-03-05 10:05:00", "wishlist", "p7", "home", "s7", 2.0),
        ("f", "2024-03-11 10:00:00", "view", "p7", "home", "s8", 2.0),
        (None, "2024-03-05 10:00:00", "view", "p7", "home", "s7", 2.0),
        ("", "2024-03-05 10:00:00", "view", "p7", "home", "s7", 2.0),
        ("e", None, "view", "p7", "home", "s7", 2.0),
        ("e", "2024-03-05 11:00:00", None, "p7", "home", "s7", 2.0),
        ("e", "2024-03-05 11:00:00", "  ", "p7", "home", "s7", 2.0),
        ("e", "2024-03-05 12:00:00", "view", "p7", "home", "s7", -1.0),
    ]
    columns = list(_EVENT_MAPPING.values())
    events = pd.DataFrame(rows, columns=columns)
    events = events.assign(timestamp=pd.to_datetime(events["timestamp"]))
    orders = pd.DataFrame(
        {
            "cust": ["a", "e", "g", "e"],
            "ts": pd.to_datetime(
                ["2024-02-01 10:00", "2024-03-05 20:00", "2024-03-01 00:00", "2024-03-20 00:00"]
            ),
            "amount": [10.0, 25.0, 5.0, 9.0],
        }
    )
    return events, orders


_EDGE_AS_OF = "2024-03-10"


@pytest.mark.backends(*NATIVE)
@pytest.mark.parametrize("mapping", ["session_id", "gap"])
def test_edge_case_events_match_pandas(backend, mapping):
    events, orders = _edge_events()
    event_mapping = dict(
        _EVENT_MAPPING if mapping == "session_id" else _GAP_MAPPING,
        event_map={"Basket": "add_to_cart"},
    )
    expected = _assert_same_browsing(
        orders,
        backend.frame(orders),
        events,
        backend.frame(events),
        as_of=_EDGE_AS_OF,
        tx_mapping=_MAPPING,
        event_mapping=event_mapping,
    )
    frame = expected.frame
    # The rules themselves, written out once so a shared mistake cannot pass unnoticed.
    assert list(frame.index) == ["a", "b", "c", "d", "e", "g"]
    assert frame["abandoned_carts_30d"].to_dict() == {
        "a": 0, "b": 1, "c": 0, "d": 0, "e": 0, "g": 0
    }  # fmt: skip
    assert frame["views_30d"]["a"] == 4
    assert expected.excluded["events_after_as_of"] == 2
    if mapping == "gap":
        # 10:00 and 10:30 (exactly the gap) are one visit, 11:00:01 starts another.
        assert frame.loc["a", "sessions_30d"] == 3


def test_edge_case_event_report_counts_every_reason():
    events, _ = _edge_events()
    got = sk.Events.from_frame(
        pl.from_pandas(events), event_map={"basket": "add_to_cart"}, **_EVENT_MAPPING
    )
    assert got.report.rows_read == 21
    assert dict(got.report.excluded) == {
        "missing_customer_id": 2,
        "missing_timestamp": 1,
        "missing_event_type": 2,
        "negative_duration": 1,
    }
    assert got.report.notes == ("event types kept but not used by the features: 'wishlist': 1",)


@pytest.mark.backends(*NATIVE_FAST)
def test_event_contract_failures_are_raised_like_pandas(backend):
    events, _ = _edge_events()
    native = backend.frame(events)
    with pytest.raises(ContractError, match="2 rows have no 'customer_id'"):
        sk.Events.from_frame(native, missing_customer="raise", **_EVENT_MAPPING)
    text = backend.frame(events.assign(duration_s=events["duration_s"].astype(str)))
    with pytest.raises(ContractError, match=r"must already be numeric\. Cast it"):
        sk.Events.from_frame(text, **_EVENT_MAPPING)
    with pytest.raises(ContractError, match="session"):
        sk.Events.from_frame(native, **dict(_EVENT_MAPPING, session_id="visit"))


# --- every feature and every engine, end to end, on every backend -----------------------


@pytest.fixture(scope="module")
def store(sample, sample_events, profiles) -> dict[str, Any]:
    """The sample's orders, the events of 40 households and the profiles of 150.

    The two groups overlap by half, so customers have orders only, orders and events,
    orders and a profile, all three, or (``no-orders``) a profile only. Spark's collect
    of the features hangs (a failed job, no error) with 150 households' events in local
    mode's default 1 GB heap; 40 keep it to seconds.
    """
    raw, mapping = sample
    ids = sorted(raw[mapping["customer_id"]].unique())[130:170]
    events = sample_events[sample_events["customer_id"].isin(ids)].reset_index(drop=True)
    # The sample has no returns: 60 lines come back two days later, as their own orders.
    returned = raw.sample(60, random_state=3)
    returns = returned.assign(
        basket_id="R" + returned["basket_id"],
        sales_value=-returned["sales_value"],
        transaction_timestamp=returned["transaction_timestamp"] + pd.Timedelta(days=2),
    )
    orders = pd.concat([raw, returns], ignore_index=True)
    return {"orders": orders, "mapping": mapping, "events": events, "profiles": profiles}


def _validate(store: dict[str, Any], convert: Any) -> tuple[Any, Any, Any]:
    return (
        sk.Transactions.from_frame(convert(store["orders"]), **store["mapping"]),
        sk.Events.from_frame(convert(store["events"]), **_EVENT_MAPPING),
        sk.Customers.from_frame(convert(store["profiles"]), **_PROFILE_MAPPING),
    )


@pytest.fixture(scope="module")
def store_features(store) -> sk.CustomerFeatures:
    """The pandas path's features: the reference of every backend."""
    tx, events, customers = _validate(store, lambda frame: frame)
    return sk.extract_features(tx, events, customers=customers, as_of=AS_OF)


@pytest.fixture(scope="module")
def _native_features_cache() -> dict[str, Any]:
    return {}


@pytest.fixture
def native_store_features(backend, store, _native_features_cache) -> Any:
    """The store's features as ``backend`` returns them (its own frame), made once."""
    if backend.name not in _native_features_cache:
        tx, events, customers = _validate(store, backend.frame)
        features = sk.extract_features(tx, events, customers=customers, as_of=AS_OF)
        if backend.name == "spark":
            # As a Spark user would: each fit and predict otherwise reruns the whole
            # feature plan, and its collects hang in local mode's 1 GB heap.
            features = features.localCheckpoint()
        _native_features_cache[backend.name] = features
    return _native_features_cache[backend.name]


# One feature of each group, so the data exercises them all (the comparison itself is
# over every column the pandas path returns, new features included).
_GROUPS = {
    "purchase": ["recency_days", "frequency", "monetary", "tenure_days", "return_rate"],
    "category": ["n_categories", "top_category", "top_category_share"],
    "discount": ["discount_share"],
    "browsing": ["views_30d", "sessions_90d", "abandoned_carts_90d", "time_on_site_7d"],
    "profile": ["age", "gender", "country", "days_since_signup", "consent_email"],
}


def test_the_store_exercises_every_feature_group(store_features):
    frame = store_features.frame
    for group, columns in _GROUPS.items():
        for column in columns:
            assert column in frame.columns, (group, column)
            values = frame[column]
            assert values.nunique() > 1, (group, column)
    assert frame["frequency"].eq(0).any()  # the profile without orders
    assert frame["views_30d"].eq(0).any()
    assert frame["views_30d"].gt(0).any()


@pytest.mark.backends(*NATIVE)
def test_every_feature_matches_pandas(backend, store, store_features):
    expected_tx, expected_events, expected_customers = _validate(store, lambda frame: frame)
    tx, events, customers = _validate(store, backend.frame)
    assert tx.report == expected_tx.report, (str(tx.report), str(expected_tx.report))
    assert events.report == expected_events.report
    assert customers.report == expected_customers.report
    got = sk.extract_features(tx, events, customers=customers, as_of=AS_OF, output="pandas")
    assert_features_equal(got.frame, store_features.frame)
    assert got.excluded == store_features.excluded
    assert got.as_of == store_features.as_of
    pd.testing.assert_frame_equal(got.catalog, store_features.catalog)
    assert "email" not in got.columns
    assert "no-orders" in got.customer_ids


_RFM = ["recency_days", "frequency", "monetary"]
ENGINES: dict[str, Any] = {
    "rfm": lambda: sk.RFMSegmenter(),
    "rules": lambda: sk.RuleSegmenter(rules=sk.lifecycle_rules(), default="Occasional"),
    "kmeans": lambda: sk.KMeansSegmenter(n_clusters=4, random_state=0, missing="median"),
    "hdbscan": lambda: sk.HDBSCANSegmenter(features=_RFM, min_cluster_size=20, min_samples=5),
}


# Mismatches found on main (the tests are strict xfails until the owners fix them).
_DASK_KMEANS = (
    "k-means predict on Dask features from extract_features fails to compute: "
    "'ValueError: cannot reindex on an axis with duplicate labels' (assign on a frame "
    "whose partitions repeat index labels)"
)
_SPARK_HDBSCAN = (
    "HDBSCAN predict on Spark features from extract_features (batches through mapInPandas) "
    "fails: 'java.lang.IllegalStateException: Value at index is null' in "
    "ArrowColumnVector.getDouble (a missing value in a column the output schema declares "
    "non-null)"
)
_SCORING_MISMATCHES = {
    ("dask", "kmeans"): _DASK_KMEANS,
    ("spark", "hdbscan"): _SPARK_HDBSCAN,
}
_FITTING_MISMATCHES: dict[tuple[str, str], str] = {}
#: Mismatches that show on some runs only: the Dask k-means predict failed on one
#: fresh-clone CI run and passed on the next, same code (2026-12-07); which partitions
#: repeat index labels varies between runs. A strict xfail would fail CI by luck.
_INTERMITTENT = {("dask", "kmeans")}


def _known_mismatch(request: Any, table: dict[tuple[str, str], str], backend: Backend) -> None:
    key = (backend.name, request.node.callspec.params["engine"])
    reason = table.get(key)
    if reason:
        strict = key not in _INTERMITTENT
        request.applymarker(pytest.mark.xfail(strict=strict, reason=reason))


def _engine(name: str) -> Any:
    if name == "hdbscan":
        require("hdbscan", why="HDBSCANSegmenter")
    return ENGINES[name]()


def _assert_same_assignments(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same customers in the same segments; distances and memberships to 1e-9."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    got = got.assign(customer_id=got["customer_id"].astype(str)).sort_values("customer_id")
    expected = expected.assign(customer_id=expected["customer_id"].astype(str))
    expected = expected.sort_values("customer_id")
    for column in expected.columns:
        left, right = got[column].to_numpy(), expected[column].to_numpy()
        if column in ("distance", "membership"):
            np.testing.assert_allclose(
                left.astype(float), right.astype(float), rtol=1e-9, err_msg=column
            )
        else:
            assert left.astype(str).tolist() == right.astype(str).tolist(), column


def _assignments(backend: Backend, result: Any) -> pd.DataFrame:
    if isinstance(result, sk.Segmentation):
        return result.assignments
    return backend.to_pandas(result)


@pytest.mark.backends(*NATIVE)
@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_scores_like_pandas(
    request, backend, engine, store_features, native_store_features
):
    _known_mismatch(request, _SCORING_MISMATCHES, backend)
    # Fitted on the pandas features, scored on the backend's own features frame.
    model = _engine(engine).fit(store_features)
    expected = model.predict(store_features).assignments
    got = _assignments(backend, model.predict(native_store_features))
    _assert_same_assignments(got, expected)


@pytest.mark.backends(*NATIVE)
@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_fits_on_a_backend_like_on_pandas(
    request, backend, engine, store_features, native_store_features
):
    _known_mismatch(request, _FITTING_MISMATCHES, backend)
    # Fitted on the backend's features (everyone: the store is below every fit sample
    # size), the model assigns the pandas features as the pandas-fitted model does.
    reference = _engine(engine).fit(store_features)
    model = _engine(engine).fit(native_store_features)
    assert list(model.feature_names_in_) == list(reference.feature_names_in_)
    _assert_same_assignments(
        model.predict(store_features).assignments, reference.predict(store_features).assignments
    )
