"""The feature ``purchase_days``: distinct UTC days with a purchase line, up to as_of."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from _backends import NATIVE

_HOUR = pd.Timedelta(hours=1)


def _reference(lines: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """purchase_days computed the plain way: UTC dates of the kept purchase lines."""
    utc = pd.to_datetime(lines["timestamp"], utc=True)
    kept = lines[(utc <= as_of) & (lines["amount"] > 0)]
    dates = pd.to_datetime(kept["timestamp"], utc=True).dt.normalize()
    return dates.groupby(kept["customer_id"]).nunique()


@st.composite
def _lines(draw):
    n = draw(st.integers(1, 40))
    customers = draw(st.lists(st.sampled_from("abcdef"), min_size=n, max_size=n))
    orders = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    # Hours around the 1970 epoch and in 2024: floor division must put a time before
    # 1970 on the day before, like pandas' normalize.
    base = draw(st.sampled_from([pd.Timestamp("1969-12-29"), pd.Timestamp("2024-02-27")]))
    hours = draw(st.lists(st.integers(0, 24 * 8), min_size=n, max_size=n))
    minutes = draw(st.lists(st.integers(0, 59), min_size=n, max_size=n))
    amounts = draw(st.lists(st.sampled_from([-5.0, 3.0, 10.0, 12.5]), min_size=n, max_size=n))
    frame = pd.DataFrame(
        {
            "customer_id": customers,
            # An order belongs to one customer.
            "order_id": [f"{c}-{o}" for c, o in zip(customers, orders, strict=True)],
            "timestamp": [
                base + h * _HOUR + pd.Timedelta(minutes=m)
                for h, m in zip(hours, minutes, strict=True)
            ],
            "amount": amounts,
        }
    )
    if draw(st.booleans()):
        # One time per order (the usual export, adjacent lines): the run kernel.
        frame["timestamp"] = frame.groupby("order_id")["timestamp"].transform("min")
        frame = frame.sort_values(["order_id"], kind="stable").reset_index(drop=True)
    zone = draw(st.sampled_from([None, "UTC", "America/New_York", "Asia/Tokyo"]))
    if zone is not None:
        frame["timestamp"] = frame["timestamp"].dt.tz_localize(zone)
    as_of = base + draw(st.integers(0, 24 * 9)) * _HOUR
    return frame, as_of.tz_localize("UTC")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_lines())
def test_purchase_days_equals_a_plain_pandas_count(drawn):
    lines, as_of = drawn
    tx = sk.Transactions.from_frame(lines, order_id="order_id")
    utc = pd.to_datetime(lines["timestamp"], utc=True)
    if not (utc <= as_of).any():
        return  # refused: nothing on or before as_of
    got = sk.extract_features(tx, as_of=as_of).frame["purchase_days"]
    expected = _reference(lines, as_of).reindex(got.index, fill_value=0)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert got.dtype == np.int64


# Point in time, same-day orders and time zones, on a small store.
_STORE = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "b", "b", "c", "c", "d", "e", "e"],
        "order_id": ["a1", "a2", "a3", "b1", "b2", "c1", "c2", "d1", "e1", "e2"],
        "timestamp": pd.to_datetime(
            [
                "2024-03-01 09:00+00:00",  # a: two orders on 1 March (UTC) are one day
                "2024-03-01 21:00+00:00",
                "2024-03-10 12:00+00:00",  # a: after as_of, never counts
                # b: 23:30 in New York on 1 March is 2 March in UTC, as is the next one
                "2024-03-01 23:30-05:00",
                "2024-03-02 01:00+00:00",
                # c: the same local day in Tokyo, two UTC days
                "2024-03-02 08:00+09:00",
                "2024-03-02 10:00+09:00",
                "2024-03-03 00:00+00:00",  # d: only a return
                "1969-12-31 23:00+00:00",  # e: the day before 1970, and 1 January 1970
                "1970-01-01 01:00+00:00",
            ],
            utc=True,
            format="ISO8601",
        ),
        "amount": [10.0, 5.0, 7.0, 3.0, 4.0, 6.0, 8.0, -9.0, 2.0, 2.0],
    }
)
_AS_OF = "2024-03-05"
_EXPECTED = {"a": 1, "b": 1, "c": 2, "d": 0, "e": 2}


def test_point_in_time_same_day_and_utc_days():
    tx = sk.Transactions.from_frame(_STORE, order_id="order_id")
    got = sk.extract_features(tx, as_of=_AS_OF).frame["purchase_days"]
    assert got.to_dict() == _EXPECTED
    assert sk.extract_features(tx, as_of=_AS_OF).frame.loc["a", "frequency"] == 2
    # a's 10 March order counts once as_of has passed it.
    later = sk.extract_features(tx, as_of="2024-03-31").frame["purchase_days"]
    assert later.loc["a"] == 2


@pytest.mark.backends(*NATIVE)
def test_purchase_days_on_every_backend(backend):
    tx = sk.Transactions.from_frame(backend.frame(_STORE), order_id="order_id")
    native = sk.extract_features(tx, as_of=_AS_OF)
    got = backend.to_pandas(native).set_index("customer_id")["purchase_days"]
    assert {str(k): int(v) for k, v in got.items()} == _EXPECTED


def test_purchase_days_is_in_the_catalog_and_the_default_features():
    row = sk.feature_catalog().set_index("name").loc["purchase_days"]
    assert (row["unit"], row["dtype"], row["direction"]) == ("days", "int64", "higher_is_better")
    tx = sk.Transactions.from_frame(_STORE, order_id="order_id")
    columns = sk.extract_features(tx, as_of=_AS_OF).columns
    # Wherever the purchase times are, so the purchase models take the features as given.
    assert {"first_purchase", "last_purchase", "purchase_days", "tenure_days"} <= set(columns)
