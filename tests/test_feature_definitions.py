"""Features are declared once: the definitions, their two compilers, the docs and engines."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.engines._naming import describe_clusters
from segmentkit.engines._preprocess import is_skewed
from segmentkit.errors import InvalidParameterError
from segmentkit.features._definitions import Agg, definition_of, definitions

DOCS = Path(__file__).resolve().parents[1] / "docs" / "features.md"


# --- the definitions -------------------------------------------------------------------


def test_every_definition_is_complete_and_names_are_unique():
    every = definitions()
    assert len({d.name for d in every}) == len(every)
    for d in every:
        assert d.label
        assert d.description.endswith(".")
        assert d.direction in ("higher_is_better", "lower_is_better", "neutral")
        assert definition_of(d.name) == d
    assert definition_of("views_14d") is not None
    assert definition_of("churn_score") is None
    assert definition_of("views_0d") is None


def test_directions_follow_the_business_meaning():
    assert definition_of("recency_days").direction == "lower_is_better"
    assert definition_of("monetary").direction == "higher_is_better"
    assert definition_of("return_rate").direction == "lower_is_better"
    assert definition_of("abandoned_carts_30d").direction == "lower_is_better"


def test_rows_filters_are_checked_where_declared():
    with pytest.raises(ValueError, match="not a filter of line rows"):
        Agg("count", rows="views")


def test_catalog_keeps_its_columns_and_adds_label_dtype_direction():
    catalog = sk.feature_catalog()
    assert list(catalog.columns[:5]) == ["name", "description", "unit", "source", "kind"]
    assert {"label", "dtype", "direction", "skewed", "needs"} <= set(catalog.columns)
    row = catalog.set_index("name").loc["discount_share"]
    assert (row["needs"], row["dtype"], row["kind"]) == ("discount", "float64", "numeric")


def test_engines_read_skew_and_words_from_the_definitions():
    assert is_skewed("monetary")
    assert is_skewed("views_14d")
    assert not is_skewed("return_rate")
    assert not is_skewed("churn_score")
    frame = pd.DataFrame({"recency_days": [1.0, 2.0, 3.0, 300.0, 310.0, 320.0]})
    names = [n for n, _ in describe_clusters(frame, np.array([0, 0, 0, 1, 1, 1]), [0, 1])]
    assert names == ["Recent", "Lapsed"]


# --- the docs table --------------------------------------------------------------------


def _documented() -> dict[str, tuple[str, str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    tables = text.split("<!-- catalog:start -->")[1].split("<!-- catalog:end -->")[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \| ([^|]*) \| (.*) \|$", tables, flags=re.M)
    return {name: (unit, needs, description) for name, unit, needs, description in rows}


def test_docs_table_matches_the_definitions():
    documented = _documented()
    every = definitions()
    assert sorted(documented) == sorted(d.name for d in every)
    for d in every:
        unit, needs, description = documented[d.name]
        assert ("" if unit == "—" else unit) == d.unit, d.name
        assert description == d.description, d.name
        joiner = " or " if d.needs_any else " and "
        assert needs == (joiner.join(f"`{c}`" for c in d.needs) or "—"), d.name


# --- one parameter check for both paths ------------------------------------------------


def test_output_is_checked_on_pandas_input_as_on_polars():
    pl = pytest.importorskip("polars")
    raw = pd.DataFrame(
        {"customer_id": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0]},
    )
    for frame in (raw, pl.from_pandas(raw)):
        tx = sk.Transactions.from_frame(frame)
        with pytest.raises(InvalidParameterError, match="'output' parameter must be one of"):
            sk.extract_features(tx, output="bogus")


# --- numpy kernels against narwhals expressions ----------------------------------------

_CUSTOMERS = st.sampled_from(["a", "b", "c", "d"])
_AS_OF = pd.Timestamp("2024-06-30", tz="UTC")
_MINUTE = pd.Timedelta(minutes=1)


@st.composite
def _tables(draw):
    n_lines = draw(st.integers(1, 25))
    minutes = st.integers(0, 200 * 24 * 60)
    lines = pd.DataFrame(
        {
            "customer_id": draw(st.lists(_CUSTOMERS, min_size=n_lines, max_size=n_lines)),
            "timestamp": [
                _AS_OF - m * _MINUTE
                for m in draw(st.lists(minutes, min_size=n_lines, max_size=n_lines))
            ],
            "amount": draw(
                st.lists(
                    st.sampled_from([-30.0, -5.5, 0.0, 2.25, 10.0, 99.99]),
                    min_size=n_lines,
                    max_size=n_lines,
                )
            ),
            "order_id": draw(
                st.lists(
                    st.sampled_from(["o1", "o2", "o3", "o4", "o5"]),
                    min_size=n_lines,
                    max_size=n_lines,
                )
            ),
            "product_id": draw(
                st.lists(st.sampled_from(["p1", "p2", None]), min_size=n_lines, max_size=n_lines)
            ),
            "category": draw(
                st.lists(st.sampled_from(["x", "y", None]), min_size=n_lines, max_size=n_lines)
            ),
            "quantity": draw(st.lists(st.integers(1, 4), min_size=n_lines, max_size=n_lines)),
            "discount": draw(
                st.lists(st.sampled_from([0.0, 1.5, np.nan]), min_size=n_lines, max_size=n_lines)
            ),
            "promo_code": draw(
                st.lists(st.sampled_from(["A", "B", None]), min_size=n_lines, max_size=n_lines)
            ),
        }
    )
    # Typed as an export would be, also when every value is missing.
    for name in ("product_id", "category", "promo_code"):
        lines[name] = lines[name].astype("string")
    lines["discount"] = lines["discount"].astype(float)
    # An order id belongs to one customer: prefix it with the customer.
    lines["order_id"] = lines["customer_id"] + "-" + lines["order_id"]
    n_events = draw(st.integers(0, 25))
    events = pd.DataFrame(
        {
            "customer_id": draw(
                st.lists(st.sampled_from(["a", "b", "e"]), min_size=n_events, max_size=n_events)
            ),
            "timestamp": [
                _AS_OF - m * _MINUTE
                for m in draw(
                    st.lists(st.integers(0, 100 * 24 * 60), min_size=n_events, max_size=n_events)
                )
            ],
            "event_type": draw(
                st.lists(
                    st.sampled_from(["view", "add_to_cart", "purchase"]),
                    min_size=n_events,
                    max_size=n_events,
                )
            ),
        }
    )
    as_of = _AS_OF - draw(st.integers(0, 60)) * pd.Timedelta(days=1)
    return lines, events, as_of


def _both(lines, events, as_of, **columns):
    pl = pytest.importorskip("polars")
    expected_tx = sk.Transactions.from_frame(lines, **columns)
    got_tx = sk.Transactions.from_frame(pl.from_pandas(lines), **columns)
    expected_ev = got_ev = None
    if len(events):
        expected_ev = sk.Events.from_frame(events)
        got_ev = sk.Events.from_frame(pl.from_pandas(events))
    try:
        expected = sk.extract_features(expected_tx, expected_ev, as_of=as_of)
    except ValueError as error:  # nothing on or before as_of: refused alike
        with pytest.raises(ValueError, match=re.escape(str(error)[:40])):
            sk.extract_features(got_tx, got_ev, as_of=as_of, output="pandas")
        return None
    got = sk.extract_features(got_tx, got_ev, as_of=as_of, output="pandas")
    return expected, got


def _assert_identical(expected: sk.CustomerFeatures, got: sk.CustomerFeatures) -> None:
    assert list(got.frame.columns) == list(expected.frame.columns)
    assert list(got.frame.index) == list(expected.frame.index)
    for name in expected.frame.columns:
        want, have = expected.frame[name], got.frame[name]
        assert have.dtype == want.dtype, name
        if pd.api.types.is_float_dtype(want.dtype):
            np.testing.assert_allclose(have, want, rtol=1e-9, atol=0, err_msg=name)
        else:  # integers, times, text: exact
            pd.testing.assert_series_equal(have, want, check_exact=True)
    assert got.excluded == expected.excluded


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=_tables(), with_order_id=st.booleans())
def test_numpy_kernels_and_narwhals_expressions_agree(tables, with_order_id):
    lines, events, as_of = tables
    if not with_order_id:
        lines = lines.drop(columns="order_id")
    both = _both(lines, events, as_of)
    if both is not None:
        _assert_identical(*both)


# --- spend_90d: a windowed feature that is one definition ------------------------------

_SPEND_LINES = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "a", "b", "c"],
        "timestamp": [
            "2024-06-30 00:00:00",  # on as_of: inside
            "2024-04-01 00:00:01",  # just after as_of - 90 days: inside
            "2024-04-01 00:00:00",  # exactly as_of - 90 days: outside
            "2024-06-10 00:00:00",  # a return: not spend
            "2024-01-15 00:00:00",  # only old purchases: 0
            "2024-07-02 00:00:00",  # after as_of: not a customer
        ],
        "amount": [10.0, 5.5, 100.0, -4.0, 30.0, 7.0],
    }
)


def _expected_spend() -> pd.Series:
    return pd.Series([15.5, 0.0], index=pd.Index(["a", "b"], name="customer_id"), name="spend_90d")


def test_spend_90d_counts_purchases_after_as_of_minus_90_days():
    features = sk.extract_features(sk.Transactions.from_frame(_SPEND_LINES), as_of="2024-06-30")
    pd.testing.assert_series_equal(features.frame["spend_90d"], _expected_spend())
    assert features.catalog.set_index("name").loc["spend_90d", "unit"] == "currency"


def test_spend_90d_is_zero_for_customers_known_only_by_events():
    clicks = pd.DataFrame(
        {"customer_id": ["z"], "timestamp": ["2024-06-29"], "event_type": ["view"]}
    )
    features = sk.extract_features(
        sk.Transactions.from_frame(_SPEND_LINES), sk.Events.from_frame(clicks), as_of="2024-06-30"
    )
    assert features.frame.loc["z", "spend_90d"] == 0.0


@pytest.mark.parametrize("backend", ["polars", "pyarrow", "duckdb", "dask"])
def test_spend_90d_on_every_backend(backend):
    pytest.importorskip(backend)
    if backend == "polars":
        import polars as pl

        frame = pl.from_pandas(_SPEND_LINES)
    elif backend == "pyarrow":
        import pyarrow as pa

        frame = pa.Table.from_pandas(_SPEND_LINES)
    elif backend == "duckdb":
        import duckdb

        connection = duckdb.connect()
        frame = connection.from_df(_SPEND_LINES)
    else:
        import dask.dataframe as dd

        frame = dd.from_pandas(_SPEND_LINES, npartitions=2)
    features = sk.extract_features(
        sk.Transactions.from_frame(frame), as_of="2024-06-30", output="pandas"
    )
    pd.testing.assert_series_equal(features.frame["spend_90d"], _expected_spend())


def test_spend_90d_on_spark(spark):
    frame = spark.createDataFrame(_SPEND_LINES)
    features = sk.extract_features(
        sk.Transactions.from_frame(frame), as_of="2024-06-30", output="pandas"
    )
    pd.testing.assert_series_equal(features.frame["spend_90d"], _expected_spend())
