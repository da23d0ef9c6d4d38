"""Purchase windows: order counts with any line filter and window, and the window features.

Every feature is compared with an independent pandas computation (a plain group-by) on
every backend (the ``backend`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
import segmentkit.features._native as native_path
import segmentkit.features._numpy as numpy_path
from segmentkit.features._definitions import Agg, FeatureDef, definition_of, definitions

_DAY = pd.Timedelta(days=1)


@contextmanager
def _with_definitions(extra: list[FeatureDef]) -> Iterator[None]:
    """Both compilers compute ``extra`` definitions after the usual ones."""
    named = {d.name: d for d in extra}

    def chosen(*args, **kwargs):
        return definitions(*args, **kwargs) + extra

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(numpy_path, "definitions", chosen)
        patch.setattr(native_path, "definitions", chosen)
        patch.setattr(native_path, "definition_of", lambda n: named.get(n) or definition_of(n))
        yield


def _features(backend, lines: pd.DataFrame, as_of, **kwargs) -> pd.DataFrame:
    tx = sk.Transactions.from_frame(backend.frame(lines))
    if backend.is_pandas:
        return sk.extract_features(tx, as_of=as_of, **kwargs).frame
    return sk.extract_features(tx, as_of=as_of, output="pandas", **kwargs).frame


# --- order counts: any line filter, any window ------------------------------------------

_ORDER_LINES = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "a", "a", "b", "b", "c"],
        "order_id": ["a1", "a1", "a2", "a3", "a4", "b1", "b1", "c1"],
        "timestamp": pd.to_datetime(
            [
                "2024-06-30",  # on as_of
                "2024-06-30",
                "2024-06-20",
                "2024-06-01",  # exactly as_of - 29 days
                "2024-05-31",  # exactly as_of - 30 days: outside a 30-day window
                "2024-06-25",
                "2024-06-25",
                "2024-03-01",
            ]
        ),
        "amount": [10.0, -3.0, -5.0, 4.0, 6.0, 1.0, 2.0, 9.0],
    }
)
_ORDER_AGGS = {
    "orders_all": Agg("count", over="order"),
    "orders_returns": Agg("count", over="order", rows="returns"),
    "orders_all_30": Agg("count", over="order", within_days=30),
    "orders_purchases_30": Agg("count", over="order", rows="purchases", within_days=30),
    "orders_returns_30": Agg("count", over="order", rows="returns", within_days=30),
}


def _order_definitions() -> list[FeatureDef]:
    return [
        FeatureDef(name, "Orders.", "orders", "transactions", agg, dtype="int64", label=name)
        for name, agg in _ORDER_AGGS.items()
    ]


def _expected_orders(lines: pd.DataFrame, as_of: pd.Timestamp, agg: Agg) -> pd.Series:
    """Distinct orders per customer holding a selected line: a plain group-by."""
    stamp = pd.to_datetime(lines["timestamp"], utc=True)
    known = lines[stamp <= as_of]
    stamp = stamp[stamp <= as_of]
    keep = pd.Series(True, index=known.index)
    if agg.rows == "purchases":
        keep &= known["amount"] >= 0
    elif agg.rows == "returns":
        keep &= known["amount"] < 0
    if agg.within_days is not None:
        keep &= stamp > as_of - agg.within_days * _DAY
    counted = known[keep].groupby("customer_id")["order_id"].nunique()
    customers = pd.Index(sorted(known["customer_id"].unique()), name="customer_id")
    return counted.reindex(customers, fill_value=0).astype(np.int64)


def test_orders_holding_a_selected_line_in_a_window(backend):
    as_of = pd.Timestamp("2024-06-30", tz="UTC")
    with _with_definitions(_order_definitions()):
        frame = _features(backend, _ORDER_LINES, as_of)
    for name, agg in _ORDER_AGGS.items():
        expected = _expected_orders(_ORDER_LINES, as_of, agg).rename(name)
        pd.testing.assert_series_equal(frame[name], expected, check_index_type=False)
    # a: a1 (sale and return), a2 (return only), a3; a4 is exactly 30 days old.
    assert frame.loc["a", "orders_all_30"] == 3
    assert frame.loc["a", "orders_purchases_30"] == 2
    assert frame.loc["a", "orders_returns_30"] == 2


def test_orders_are_only_counted():
    with pytest.raises(ValueError, match="orders are only counted"):
        Agg("sum", "amount", over="order")


@st.composite
def _order_tables(draw):
    n = draw(st.integers(1, 30))
    customers = draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    orders = draw(st.lists(st.sampled_from(["1", "2", "3", "4"]), min_size=n, max_size=n))
    days = draw(st.lists(st.integers(0, 60), min_size=n, max_size=n))
    amounts = draw(st.lists(st.sampled_from([-2.0, 0.0, 3.5]), min_size=n, max_size=n))
    lines = pd.DataFrame(
        {
            "customer_id": customers,
            "order_id": [c + o for c, o in zip(customers, orders, strict=True)],
            "timestamp": [pd.Timestamp("2024-06-30") - d * _DAY for d in days],
            "amount": amounts,
        }
    )
    # Lines of one order need not be adjacent, nor share a time.
    if draw(st.booleans()):
        lines = lines.sort_values("order_id", kind="stable").reset_index(drop=True)
    as_of = pd.Timestamp("2024-06-30", tz="UTC") - draw(st.integers(0, 20)) * _DAY
    return lines, as_of


@pytest.mark.backends("pandas", "polars")
@settings(
    max_examples=40,
    deadline=None,
    # The backend fixture only names a library: nothing in it changes between examples.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tables=_order_tables())
def test_order_counts_match_a_group_by(backend, tables):
    lines, as_of = tables
    if (pd.to_datetime(lines["timestamp"], utc=True) > as_of).all():
        return
    with _with_definitions(_order_definitions()):
        frame = _features(backend, lines, as_of)
    for name, agg in _ORDER_AGGS.items():
        expected = _expected_orders(lines, as_of, agg).rename(name)
        pd.testing.assert_series_equal(frame[name], expected, check_index_type=False)
