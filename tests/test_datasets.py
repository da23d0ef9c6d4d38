"""Tests of segmentkit.datasets: the bundled sample and the browsing-event generator."""

from __future__ import annotations

import re
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentkit.datasets import generate_events, load_sample, load_sample_customers
from segmentkit.datasets._events import DEFAULT_CATEGORIES

EVENT_TYPES = {"view", "add_to_cart", "checkout", "purchase"}
EVENT_COLUMNS = [
    "customer_id",
    "timestamp",
    "event_type",
    "product_id",
    "category",
    "session_id",
    "duration_s",
]
DATA = files("segmentkit.datasets") / "data"


def _readme_figure(label: str) -> int:
    """The integer in the README's measured-figures row that starts with ``label``."""
    text = (DATA / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^\| {re.escape(label)} \| ([\d,]+) \|$", text, flags=re.MULTILINE)
    assert match, f"README has no row {label!r}"
    return int(match.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, dict[str, str]]:
    return load_sample()


@pytest.fixture(scope="module")
def orders(sample: tuple[pd.DataFrame, dict[str, str]]) -> pd.DataFrame:
    """The sample's lines of 60 households, with canonical column names."""
    raw, mapping = sample
    tx = raw.rename(columns={v: k for k, v in mapping.items()})
    keep = tx["customer_id"].isin(sorted(tx["customer_id"].unique())[:60])
    return tx.loc[keep, ["customer_id", "timestamp", "order_id", "product_id", "category"]]


# ---- bundled sample ------------------------------------------------------------------------


def test_sample_columns_and_dtypes(sample: tuple[pd.DataFrame, dict[str, str]]) -> None:
    raw, _ = sample
    assert list(raw.columns) == [
        "household_id",
        "basket_id",
        "product_id",
        "department",
        "product_category",
        "quantity",
        "sales_value",
        "discount",
        "transaction_timestamp",
        "store_id",
    ]
    for column in ["household_id", "basket_id", "product_id", "store_id", "department"]:
        assert pd.api.types.is_string_dtype(raw[column]), column
    assert raw["quantity"].dtype == np.int64
    assert raw["sales_value"].dtype == np.float64
    assert raw["discount"].dtype == np.float64
    assert pd.api.types.is_datetime64_dtype(raw["transaction_timestamp"])
    assert raw["transaction_timestamp"].dt.tz is None


def test_sample_ids_are_strings_without_missing(
    sample: tuple[pd.DataFrame, dict[str, str]],
) -> None:
    raw, _ = sample
    for column in ["household_id", "basket_id", "product_id", "store_id"]:
        assert raw[column].notna().all(), column
        assert all(isinstance(v, str) for v in raw[column].head(100)), column
    # Ids keep their text form: basket ids have 11 digits.
    assert raw["basket_id"].str.len().eq(11).all()


def test_sample_mapping(sample: tuple[pd.DataFrame, dict[str, str]]) -> None:
    raw, mapping = sample
    assert set(mapping) == {
        "customer_id",
        "timestamp",
        "amount",
        "order_id",
        "product_id",
        "category",
        "quantity",
        "discount",
    }
    assert set(mapping.values()) <= set(raw.columns)
    assert mapping["customer_id"] == "household_id"
    assert mapping["timestamp"] == "transaction_timestamp"


def test_sample_counts_match_readme(sample: tuple[pd.DataFrame, dict[str, str]]) -> None:
    raw, _ = sample
    customers, _ = load_sample_customers()
    assert len(raw) == _readme_figure("transaction lines")
    assert raw["household_id"].nunique() == _readme_figure("households")
    assert len(customers) == _readme_figure(
        "households with demographics (`customers.csv.gz` rows)"
    )
    assert raw["household_id"].isin(customers["household_id"]).sum() == _readme_figure(
        "lines of households with demographics"
    )


def test_sample_keeps_quirks(sample: tuple[pd.DataFrame, dict[str, str]]) -> None:
    raw, _ = sample
    assert (raw["quantity"] == 0).any()
    assert (raw["sales_value"] == 0).any()
    assert (raw["quantity"] > 100).any()
    assert raw["department"].isna().any()
    assert (raw["discount"] >= 0).all()
    assert raw["transaction_timestamp"].is_monotonic_increasing


def test_sample_customers() -> None:
    customers, mapping = load_sample_customers()
    assert mapping == {"customer_id": "household_id", "age_band": "age"}
    assert customers.shape == (400, 8)
    assert customers["household_id"].is_unique
    assert customers["household_id"].notna().all()
    assert all(pd.api.types.is_string_dtype(customers[c]) for c in customers.columns)
    raw, _ = load_sample()
    assert customers["household_id"].isin(raw["household_id"]).all()


def test_data_folder_is_small() -> None:
    total = sum(len(item.read_bytes()) for item in DATA.iterdir() if item.is_file())
    assert total < 2 * 1024 * 1024


# ---- event generator ------------------------------------------------------------------------


def _events(**kwargs: object) -> pd.DataFrame:
    params: dict[str, object] = {
        "customer_ids": [f"c{i}" for i in range(50)],
        "start": "2024-01-01",
        "end": "2024-03-01",
    }
    params.update(kwargs)
    return generate_events(**params)  # type: ignore[arg-type]


def _check_valid(events: pd.DataFrame) -> None:
    assert list(events.columns) == EVENT_COLUMNS
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    for column in ["customer_id", "event_type", "product_id", "category", "session_id"]:
        assert pd.api.types.is_string_dtype(events[column]), column
        assert events[column].notna().all(), column
    assert events["duration_s"].dtype == np.float64
    assert (events["duration_s"] > 0).all()
    assert set(events["event_type"]) <= EVENT_TYPES
    # Sorted by customer, then time.
    keys = list(zip(events["customer_id"], events["timestamp"], strict=True))
    assert keys == sorted(keys)
    # A session belongs to one customer and its id starts with the customer id.
    assert (events.groupby("session_id")["customer_id"].nunique() == 1).all()
    prefix = events["customer_id"] + "-"
    assert all(s.startswith(p) for p, s in zip(prefix, events["session_id"], strict=True))
    # Funnel: views, then optionally cart, checkout, purchase – in that order.
    funnel = events.groupby("session_id", sort=False)["event_type"].agg(" ".join)
    pattern = re.compile(r"^view( view)*( add_to_cart( checkout( purchase)?)?)?$")
    bad = [s for s in funnel if not pattern.match(s)]
    assert not bad, bad[:3]


def test_events_valid_and_sorted() -> None:
    _check_valid(_events())


def test_events_deterministic() -> None:
    first = _events(random_state=7)
    pd.testing.assert_frame_equal(first, _events(random_state=7))
    assert not first.equals(_events(random_state=8))


def test_events_independent_of_input_order(orders: pd.DataFrame) -> None:
    shuffled = orders.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(
        generate_events(orders, random_state=5), generate_events(shuffled, random_state=5)
    )
    ids = [f"c{i}" for i in range(30)]
    pd.testing.assert_frame_equal(_events(customer_ids=ids), _events(customer_ids=ids[::-1]))


def test_events_within_window_and_utc() -> None:
    events = _events(start="2024-02-01 12:00", end="2024-02-03 08:30")
    assert events["timestamp"].dt.tz is not None
    assert str(events["timestamp"].dt.tz) == "UTC"
    assert events["timestamp"].min() >= pd.Timestamp("2024-02-01 12:00", tz="UTC")
    assert events["timestamp"].max() <= pd.Timestamp("2024-02-03 08:30", tz="UTC")
    # An aware window is converted to UTC.
    start = pd.Timestamp("2024-02-01 12:00", tz="America/New_York")
    events = _events(start=start, end=start + pd.Timedelta(days=1))
    assert events["timestamp"].min() >= start


def test_every_order_has_a_purchase_minutes_before(orders: pd.DataFrame) -> None:
    events = generate_events(orders, sessions_per_customer=1.0, random_state=2)
    _check_valid(events)
    real = orders.groupby(["customer_id", "order_id"], as_index=False)["timestamp"].min()
    real["timestamp"] = real["timestamp"].dt.tz_localize("UTC")
    purchases = events.loc[events["event_type"] == "purchase", ["customer_id", "timestamp"]]
    matched = pd.merge_asof(
        real.sort_values("timestamp"),
        purchases.rename(columns={"timestamp": "purchase"}).sort_values("purchase"),
        left_on="timestamp",
        right_on="purchase",
        by="customer_id",
        direction="backward",
        tolerance=pd.Timedelta(minutes=5),
    )
    assert matched["purchase"].notna().all()
    # The window defaults to the transactions' time range (plus a lead-in hour).
    assert events["timestamp"].max() <= real["timestamp"].max()
    assert events["timestamp"].min() >= real["timestamp"].min() - pd.Timedelta(hours=1)


def test_order_products_are_purchased(orders: pd.DataFrame) -> None:
    events = generate_events(orders, sessions_per_customer=0.0, random_state=4)
    purchases = events[events["event_type"] == "purchase"]
    assert len(purchases) == orders.groupby(["customer_id", "order_id"]).ngroups
    bought = set(zip(orders["customer_id"], orders["product_id"], strict=True))
    assert set(zip(purchases["customer_id"], purchases["product_id"], strict=True)) <= bought


def test_accepts_categorical_and_aware_input(orders: pd.DataFrame) -> None:
    # The canonical frame of Transactions stores ids as categoricals and UTC times.
    canonical = orders.astype(
        {c: "category" for c in ["customer_id", "order_id", "product_id", "category"]}
    ).assign(timestamp=orders["timestamp"].dt.tz_localize("UTC"))
    pd.testing.assert_frame_equal(
        generate_events(canonical, random_state=1), generate_events(orders, random_state=1)
    )


def test_orders_without_order_id() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "timestamp": pd.to_datetime(
                ["2024-05-01 10:00", "2024-05-01 10:00", "2024-05-03 09:00", "2024-05-02 20:00"]
            ),
        }
    )
    events = generate_events(tx, sessions_per_customer=0.0)
    _check_valid(events)
    assert (events["event_type"] == "purchase").sum() == 3
    assert set(events["category"]) <= set(DEFAULT_CATEGORIES)


@pytest.mark.parametrize("rate", [0.2, 0.7])
def test_abandonment_rate(rate: float) -> None:
    events = _events(customer_ids=[f"c{i}" for i in range(1500)], abandonment_rate=rate)
    per_session = events.groupby("session_id")["event_type"]
    has_cart = per_session.agg(lambda s: "add_to_cart" in set(s))
    bought = per_session.agg(lambda s: "purchase" in set(s))
    abandoned = 1.0 - bought[has_cart].mean()
    assert abs(abandoned - rate) < 0.04


def test_purchase_always_after_cart_in_same_session(orders: pd.DataFrame) -> None:
    events = generate_events(orders, random_state=9)
    position = pd.Series(np.arange(len(events)), index=events.index)
    first_cart = (
        position[events["event_type"] == "add_to_cart"].groupby(events["session_id"]).min()
    )
    purchase = position[events["event_type"] == "purchase"].groupby(events["session_id"]).min()
    assert purchase.index.isin(first_cart.index).all()
    assert (first_cart.loc[purchase.index] < purchase).all()


def test_favourite_category_share_above_uniform() -> None:
    events = _events(customer_ids=[f"c{i}" for i in range(300)], sessions_per_customer=8.0)
    views = events[events["event_type"] == "view"]
    n_categories = views["category"].nunique()
    assert n_categories == 8
    top_share = views.groupby("customer_id")["category"].agg(
        lambda s: s.value_counts(normalize=True).iloc[0]
    )
    assert top_share.mean() > 2.0 / n_categories


def test_sessions_heavy_tailed() -> None:
    events = _events(customer_ids=[f"c{i}" for i in range(1000)], sessions_per_customer=6.0)
    sessions = events.groupby("customer_id")["session_id"].nunique()
    sessions = sessions.reindex([f"c{i}" for i in range(1000)], fill_value=0)
    assert 5.0 < sessions.mean() < 7.0
    assert sessions.var() > 3 * sessions.mean()  # over-dispersed, unlike Poisson


def test_categories_parameter() -> None:
    events = _events(categories=["shoes", "bags"])
    assert set(events["category"]) == {"shoes", "bags"}


def test_no_sessions_gives_empty_typed_frame() -> None:
    events = _events(sessions_per_customer=0.0)
    assert events.empty
    _check_valid(events)
    _check_valid(_events(customer_ids=[]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_customers=st.integers(0, 4),
    sessions=st.floats(0.0, 10.0, allow_nan=False),
    abandonment=st.floats(0.0, 1.0, allow_nan=False),
    window_s=st.integers(0, 90 * 86_400),
    seed=st.integers(0, 2**32 - 1),
)
def test_events_valid_for_any_parameters(
    n_customers: int, sessions: float, abandonment: float, window_s: int, seed: int
) -> None:
    start = pd.Timestamp("2023-12-31 23:59:59.5", tz="UTC")
    end = start + pd.Timedelta(seconds=window_s)
    events = generate_events(
        customer_ids=[f"id{i}" for i in range(n_customers)],
        start=start,
        end=end,
        sessions_per_customer=sessions,
        abandonment_rate=abandonment,
        random_state=seed,
    )
    _check_valid(events)
    if len(events):
        assert events["timestamp"].min() >= start
        assert events["timestamp"].max() <= end
    if abandonment == 1.0:
        assert not (events["event_type"] == "purchase").any()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"abandonment_rate": 1.5}, "abandonment_rate"),
        ({"abandonment_rate": -0.1}, "abandonment_rate"),
        ({"abandonment_rate": "high"}, "abandonment_rate"),
        ({"sessions_per_customer": -1}, "sessions_per_customer"),
        ({"sessions_per_customer": float("nan")}, "sessions_per_customer"),
        ({"sessions_per_customer": True}, "sessions_per_customer"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": 1.5}, "random_state"),
        ({"categories": []}, "categories"),
        ({"categories": "books"}, "categories"),
        ({"customer_ids": "abc"}, "customer_ids"),
        ({"customer_ids": ["a", None]}, "customer_ids"),
        ({"start": "not a date"}, "start"),
        ({"start": "2024-03-01", "end": "2024-01-01"}, "start"),
        ({"start": None}, "start"),
        ({"end": None}, "end"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        _events(**kwargs)


def test_invalid_parameter_message() -> None:
    expected = (
        "The 'abandonment_rate' parameter of generate_events() must be a float in the range "
        "[0, 1]. Got 1.5 instead."
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        _events(abandonment_rate=1.5)


def test_invalid_transactions() -> None:
    with pytest.raises(ValueError, match="'transactions'"):
        generate_events(pd.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(ValueError, match="'transactions'"):
        generate_events([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'customer_ids'"):
        generate_events(start="2024-01-01", end="2024-02-01")
