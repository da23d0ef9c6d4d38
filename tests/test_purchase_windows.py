"""Purchase windows: order counts with any line filter and window, and the window features.

Every feature is compared with an independent pandas computation (a plain group-by) on
every backend (the ``backend`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


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


# --- every window and brand feature against a group-by, on Complete Journey -------------

_WINDOWS = (30, 90, 365)


@pytest.fixture(scope="module")
def journey_lines(journey_raw: pd.DataFrame) -> pd.DataFrame:
    """The Complete Journey sample with each product's brand and category."""
    products = pd.read_csv(
        SHARED / "completejourney_sample" / "products.csv.gz", dtype={"product_id": str}
    )
    lines = journey_raw.merge(
        products[["product_id", "brand", "product_category"]], on="product_id", how="left"
    )
    keep = [
        "household_id", "basket_id", "product_id", "quantity", "sales_value",
        "transaction_timestamp", "brand", "product_category",
    ]  # fmt: skip
    return lines[keep]


_JOURNEY_MAP = {
    "customer_id": "household_id",
    "timestamp": "transaction_timestamp",
    "amount": "sales_value",
    "order_id": "basket_id",
    "product_id": "product_id",
    "category": "product_category",
    "brand": "brand",
    "quantity": "quantity",
}


def _texts(values: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in values]


def _reference(
    lines: pd.DataFrame, as_of: pd.Timestamp, windows: tuple[int, ...] = _WINDOWS
) -> pd.DataFrame:
    """The window and brand features by plain pandas group-bys."""
    frame = lines.rename(columns={v: k for k, v in _JOURNEY_MAP.items()})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame = frame[frame["timestamp"] <= as_of]
    customers = pd.Index(sorted(frame["customer_id"].unique()), name="customer_id")
    sales = frame[frame["amount"] >= 0]
    by = sales.groupby("customer_id")
    out = pd.DataFrame(index=customers)

    def fill(values: pd.Series, fill_value=0):
        return values.reindex(customers, fill_value=fill_value)

    out["n_brands"] = fill(by["brand"].nunique())
    spend = sales.groupby(["customer_id", "brand"])["amount"].sum().reset_index()
    spend = spend.sort_values(["customer_id", "amount", "brand"], ascending=[True, False, True])
    top = spend.groupby("customer_id").head(1).set_index("customer_id")
    out["top_brand"] = fill(top["brand"], None)
    out["top_brand_share"] = fill(
        top["amount"] / spend.groupby("customer_id")["amount"].sum(), np.nan
    )
    pairs = fill(
        sales.dropna(subset=["brand"])
        .groupby("customer_id")[["order_id", "brand"]]
        .value_counts()
        .groupby("customer_id")
        .size()
    )
    out["brand_repeat_rate"] = ((pairs - out["n_brands"]) / pairs).where(pairs > 0)
    for w in windows:
        start = as_of - w * _DAY
        recent = sales[sales["timestamp"] > start].groupby("customer_id")
        before = sales[(sales["timestamp"] > start - w * _DAY) & (sales["timestamp"] <= start)]
        old = sales[sales["timestamp"] <= start].groupby("customer_id")
        out[f"orders_{w}d"] = fill(recent["order_id"].nunique())
        out[f"spend_{w}d"] = fill(recent["amount"].sum(), 0.0)
        out[f"items_{w}d"] = fill(recent["quantity"].sum(), 0.0).astype(float)
        out[f"products_{w}d"] = fill(recent["product_id"].nunique())
        earlier = fill(before.groupby("customer_id")["amount"].sum(), 0.0)
        out[f"spend_trend_{w}d"] = (out[f"spend_{w}d"] / earlier).where(earlier > 0)
        out[f"new_categories_{w}d"] = fill(by["category"].nunique()) - fill(
            old["category"].nunique()
        )
    return out


@pytest.mark.parametrize("cut", ["2017-03-01", "2017-07-15 12:00", "2017-12-31 23:59"])
def test_window_and_brand_features_equal_a_group_by(backend, journey_lines, cut):
    as_of = pd.Timestamp(cut, tz="UTC")
    tx = sk.Transactions.from_frame(backend.frame(journey_lines), **_JOURNEY_MAP)
    got = sk.extract_features(tx, as_of=as_of, output="pandas").frame
    expected = _reference(journey_lines, as_of)
    assert list(got.index) == list(expected.index)
    for name in expected.columns:
        want, have = expected[name], got[name]
        if name == "top_brand":
            assert _texts(have) == _texts(want), name
        elif pd.api.types.is_float_dtype(have.dtype):
            np.testing.assert_allclose(
                have, want.astype(float), rtol=1e-9, atol=1e-9, err_msg=name
            )
        else:
            assert have.dtype == np.int64, name
            np.testing.assert_array_equal(have, want.astype(np.int64), err_msg=name)


@st.composite
def _window_tables(draw):
    n = draw(st.integers(1, 25))
    customers = draw(st.lists(st.sampled_from("ab"), min_size=n, max_size=n))
    # Whole days before as_of, often exactly on a window's edge (3, 6: w=3 and before).
    days = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]), min_size=n, max_size=n))
    seconds = draw(st.lists(st.sampled_from([0, 0, 0, -1, 1]), min_size=n, max_size=n))
    as_of = pd.Timestamp("2024-06-30 12:00", tz="UTC")
    lines = pd.DataFrame(
        {
            "customer_id": customers,
            "order_id": [f"{c}{i % 4}" for i, c in enumerate(customers)],
            "timestamp": [
                as_of - d * _DAY + pd.Timedelta(seconds=s)
                for d, s in zip(days, seconds, strict=True)
            ],
            "amount": draw(st.lists(st.sampled_from([-1.0, 2.0, 5.0]), min_size=n, max_size=n)),
            "quantity": draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
            "product_id": draw(st.lists(st.sampled_from("pq"), min_size=n, max_size=n)),
            "category": draw(st.lists(st.sampled_from(["x", "y", None]), min_size=n, max_size=n)),
            "brand": draw(st.lists(st.sampled_from(["A", "B", None]), min_size=n, max_size=n)),
        }
    )
    lines["order_id"] = lines["order_id"] + lines["timestamp"].astype(str)
    return lines, as_of


@pytest.mark.backends("pandas", "polars")
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tables=_window_tables())
def test_window_edges_match_a_group_by(backend, tables):
    """A line exactly ``w`` days before as_of is outside the window; one at as_of inside."""
    lines, as_of = tables
    mapping = {k: k for k in _JOURNEY_MAP}
    tx = sk.Transactions.from_frame(backend.frame(lines), **mapping)
    got = sk.extract_features(tx, as_of=as_of, purchase_windows=(3,), output="pandas").frame
    renamed = lines.rename(columns={k: v for k, v in _JOURNEY_MAP.items()})
    expected = _reference(renamed, as_of, windows=(3,))
    for name in expected.columns:
        want, have = expected[name], got[name]
        if name == "top_brand":
            assert _texts(have) == _texts(want), name
        else:
            np.testing.assert_allclose(
                have.astype(float), want.astype(float), rtol=1e-9, err_msg=name
            )


# --- parameters and names -----------------------------------------------------------------


def test_any_purchase_window_is_a_known_feature():
    definition = definition_of("new_categories_14d")
    assert definition is not None
    assert definition.label == "New categories, 14 days"
    assert definition_of("spend_trend_7d").unit == "ratio"
    assert definition_of("orders_0d") is None
    catalog = sk.feature_catalog(purchase_windows=(7,)).set_index("name")
    assert "items_7d" in catalog.index
    assert "items_90d" not in catalog.index


@pytest.mark.parametrize("bad", [(0,), (-30,), (30.5,), ("30",), (True,), 30])
def test_purchase_windows_are_checked(bad):
    tx = sk.Transactions.from_frame(_ORDER_LINES)
    with pytest.raises(ValueError, match="'purchase_windows' parameter must hold positive"):
        sk.extract_features(tx, purchase_windows=bad)


def test_only_the_windows_asked_for_are_computed():
    tx = sk.Transactions.from_frame(_ORDER_LINES)
    columns = sk.extract_features(tx, purchase_windows=(7,)).columns
    assert "orders_7d" in columns
    assert not any(c.endswith(("_30d", "_90d", "_365d")) for c in columns)
    assert not any(
        c.startswith("orders_") for c in sk.extract_features(tx, purchase_windows=()).columns
    )


def test_nothing_after_as_of_enters_a_window():
    later = pd.DataFrame(
        {
            "customer_id": ["a", "a"],
            "timestamp": ["2024-06-30", "2024-07-01"],
            "amount": [10.0, 99.0],
        }
    )
    features = sk.extract_features(sk.Transactions.from_frame(later), as_of="2024-06-30")
    assert features.frame.loc["a", "spend_30d"] == 10.0
    assert features.frame.loc["a", "orders_365d"] == 1
