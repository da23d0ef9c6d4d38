"""extract_features: checked against independent, straightforward computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk


def _independent_rfm(frame: pd.DataFrame, customer: str, order: str, amount: str, ts: str, as_of):
    grouped = frame.groupby(customer)
    return pd.DataFrame(
        {
            "recency_days": (as_of - grouped[ts].max()).dt.total_seconds() / 86400,
            "frequency": grouped[order].nunique(),
            "monetary": grouped[amount].sum(),
        }
    )


def test_cdnow_rfm_matches_independent_computation_and_published_figures(cdnow_raw, cdnow_tx):
    features = sk.extract_features(cdnow_tx, as_of="1998-07-01")
    frame = cdnow_raw.assign(ts=pd.to_datetime(cdnow_raw["date"], format="%Y%m%d", utc=True))
    expected = _independent_rfm(
        frame, "customer_id", "ts", "dollar_value", "ts", pd.Timestamp("1998-07-01", tz="UTC")
    )
    got = features.frame[["recency_days", "frequency", "monetary"]]
    pd.testing.assert_frame_equal(got, expected, check_names=False, check_dtype=False)
    # Figures from the data set's README.
    assert len(features) == 23_570
    assert features.frame["monetary"].sum() == pytest.approx(2_500_315.63)
    assert features.frame["recency_days"].median() == 472
    assert (features.frame["frequency"] == 1).sum() == 12_054


def test_complete_journey_rfm_matches_independent_computation(journey_raw, journey_tx):
    features = sk.extract_features(journey_tx)
    local = pd.to_datetime(journey_raw["transaction_timestamp"])
    frame = journey_raw.assign(ts=local.dt.tz_localize("America/New_York").dt.tz_convert("UTC"))
    expected = _independent_rfm(
        frame, "household_id", "basket_id", "sales_value", "ts", frame["ts"].max()
    )
    got = features.frame[["recency_days", "frequency", "monetary"]]
    pd.testing.assert_frame_equal(
        got, expected.sort_index(), check_names=False, check_dtype=False, rtol=1e-9
    )
    assert len(features) == 2_377
    # Discount share from its definition.
    sums = journey_raw.groupby("household_id")[["discount", "sales_value"]].sum()
    share = (sums["discount"] / (sums["discount"] + sums["sales_value"])).fillna(0.0)
    np.testing.assert_allclose(features.frame["discount_share"], share.sort_index(), rtol=1e-9)


def test_complete_journey_segments_compute(journey_tx):
    features = sk.extract_features(journey_tx)
    segmentation = sk.RFMSegmenter().fit_predict(features)
    assert segmentation.catalog["customers"].sum() == 2_377


def small_tx(**policy) -> sk.Transactions:
    frame = pd.DataFrame(
        {
            "c": ["a", "a", "a", "a", "b", "b", "c"],
            "o": ["1", "1", "2", "R2", "3", "4", "5"],
            "t": [
                "2024-01-01",
                "2024-01-01",
                "2024-01-11",
                "2024-01-12",
                "2024-01-05",
                "2024-01-20",
                "2024-02-01",
            ],
            "p": ["x", "y", "x", "x", "z", "z", "y"],
            "cat": ["music", "books", "music", "music", "books", "books", "books"],
            "v": [10.0, 30.0, 20.0, -20.0, 15.0, 5.0, 50.0],
            "d": [0.0, 10.0, 0.0, 0.0, 5.0, 0.0, 0.0],
            "q": [1, 2, 1, -1, 1, 1, 3],
        }
    )
    return sk.Transactions.from_frame(
        frame,
        customer_id="c",
        order_id="o",
        timestamp="t",
        product_id="p",
        category="cat",
        amount="v",
        discount="d",
        quantity="q",
        **policy,
    )


def test_purchase_features_by_definition():
    features = sk.extract_features(small_tx(), as_of="2024-01-31")
    a = features.frame.loc["a"]
    assert a["frequency"] == 2  # order R2 only returns goods
    assert a["gross_spend"] == 60.0
    assert a["monetary"] == 40.0
    assert a["return_rate"] == pytest.approx(20 / 60)
    assert a["avg_order_value"] == 30.0
    assert a["recency_days"] == 20.0
    assert a["tenure_days"] == 30.0
    assert a["mean_days_between_orders"] == 10.0
    assert a["discount_share"] == pytest.approx(10 / 70)
    assert a["n_products"] == 2
    assert a["n_categories"] == 2
    assert a["top_category"] == "books"
    assert a["top_category_share"] == pytest.approx(30 / 60)
    assert a["avg_basket_size"] == 2.0
    assert features.frame.loc["b", "return_rate"] == 0.0
    # Customer c bought after as_of: not a customer yet.
    assert "c" not in features.frame.index
    assert features.excluded["transactions_after_as_of"] == 1


def test_top_category_ties_go_to_the_alphabetically_first():
    frame = pd.DataFrame(
        {"c": ["a", "a"], "t": ["2024-01-01"] * 2, "v": [10.0, 10.0], "k": ["zoo", "art"]}
    )
    tx = sk.Transactions.from_frame(
        frame, customer_id="c", timestamp="t", amount="v", category="k"
    )
    assert sk.extract_features(tx).frame.loc["a", "top_category"] == "art"


def test_features_do_not_depend_on_row_order(sample_tx):
    raw, mapping = sk.datasets.load_sample()
    shuffled = raw.sample(frac=1.0, random_state=7)
    again = sk.Transactions.from_frame(shuffled, **mapping)
    pd.testing.assert_frame_equal(
        sk.extract_features(sample_tx).frame, sk.extract_features(again).frame
    )


def test_nothing_after_as_of_leaks_in(sample_tx):
    as_of = pd.Timestamp("2017-09-30", tz="UTC")
    features = sk.extract_features(sample_tx, as_of=as_of)
    truncated = sk.Transactions.from_frame(
        sample_tx.data[sample_tx.data["timestamp"] <= as_of].drop(
            columns=["order_key", "is_return"]
        )
    )
    expected = sk.extract_features(truncated, as_of=as_of)
    pd.testing.assert_frame_equal(features.frame, expected.frame)


def test_as_of_before_all_data_is_a_clear_error(sample_tx):
    with pytest.raises(ValueError, match="No transaction is on or before as_of=2000-01-01"):
        sk.extract_features(sample_tx, as_of="2000-01-01")


def test_bad_as_of_and_windows():
    with pytest.raises(ValueError, match="as_of='someday' is not a date"):
        sk.extract_features(small_tx(), as_of="someday")
    with pytest.raises(ValueError, match="'windows' parameter must hold positive"):
        sk.extract_features(small_tx(), windows=(0, 7))


def events_frame(rows) -> sk.Events:
    frame = pd.DataFrame(rows, columns=["c", "t", "e"])
    return sk.Events.from_frame(frame, customer_id="c", timestamp="t", event_type="e")


def test_browsing_features_sessions_windows_and_abandoned_carts():
    events = events_frame(
        [
            # a: one visit with a cart, bought 2 h later (not abandoned)
            ("a", "2024-01-29 10:00", "view"),
            ("a", "2024-01-29 10:05", "add_to_cart"),
            ("a", "2024-01-29 12:05", "purchase"),
            # a: a second visit 40 days ago with an abandoned cart
            ("a", "2023-12-22 09:00", "view"),
            ("a", "2023-12-22 09:10", "add_to_cart"),
            # d: never bought, abandoned a cart 3 days ago; visit spans 20 minutes
            ("d", "2024-01-28 08:00", "view"),
            ("d", "2024-01-28 08:20", "add_to_cart"),
            # d: a cart 2 hours before as_of is too young to call abandoned
            ("d", "2024-01-31 22:00", "add_to_cart"),
        ]
    )
    features = sk.extract_features(small_tx(), events, as_of="2024-02-01")
    frame = features.frame
    # The purchase two hours after the cart is a visit of its own (30-minute gap).
    assert frame.loc["a", "sessions_30d"] == 2
    assert frame.loc["a", "sessions_90d"] == 3
    assert frame.loc["a", "abandoned_carts_7d"] == 0
    assert frame.loc["a", "abandoned_carts_90d"] == 1
    assert frame.loc["a", "views_7d"] == 1
    assert frame.loc["d", "abandoned_carts_7d"] == 1
    assert frame.loc["d", "add_to_carts_7d"] == 2
    assert frame.loc["d", "time_on_site_7d"] == pytest.approx(20.0)
    assert frame.loc["d", "frequency"] == 0
    assert np.isnan(frame.loc["d", "recency_days"])
    assert frame.loc["d", "days_since_last_visit"] == pytest.approx(2 / 24)


def test_a_real_order_after_a_cart_means_not_abandoned():
    # b's order 3 is on 2024-01-05 00:00; a cart an hour earlier is converted.
    events = events_frame([("b", "2024-01-04 23:00", "add_to_cart")])
    features = sk.extract_features(small_tx(), events, as_of="2024-02-01")
    assert features.frame.loc["b", "abandoned_carts_90d"] == 0


def test_session_ids_are_used_when_given():
    frame = pd.DataFrame(
        {
            "c": ["a", "a", "a"],
            "t": ["2024-01-30 10:00", "2024-01-30 10:01", "2024-01-30 10:02"],
            "e": ["view", "view", "view"],
            "s": ["s1", "s2", "s2"],
            "d": [30.0, 60.0, 90.0],
        }
    )
    events = sk.Events.from_frame(
        frame, customer_id="c", timestamp="t", event_type="e", session_id="s", duration_s="d"
    )
    features = sk.extract_features(small_tx(), events, as_of="2024-02-01")
    assert features.frame.loc["a", "sessions_7d"] == 2
    assert features.frame.loc["a", "time_on_site_7d"] == pytest.approx(3.0)


def test_profile_features_age_at_as_of_and_no_personal_data():
    profiles = pd.DataFrame(
        {
            "id": ["a", "b", "z"],
            "email": ["a@example.com", "b@example.com", "z@example.com"],
            "born": ["1990-02-01", "1990-01-31", "1980-01-01"],
            "signup": ["2023-01-01", "2024-01-01", "2025-01-01"],
            "country": ["US", "GB", "FR"],
            "tier": ["gold", "silver", "bronze"],
        }
    )
    customers = sk.Customers.from_frame(
        profiles,
        customer_id="id",
        email="email",
        birth_date="born",
        signup_date="signup",
        country="country",
        extra_columns=["tier"],
    )
    features = sk.extract_features(small_tx(), customers=customers, as_of="2024-01-31")
    frame = features.frame
    assert frame.loc["a", "age"] == 33  # birthday tomorrow
    assert frame.loc["b", "age"] == 34
    assert frame.loc["a", "days_since_signup"] == 395
    assert frame.loc["b", "tier"] == "silver"
    assert "email" not in frame.columns
    assert "z" not in frame.index  # signed up after as_of
    assert features.excluded["profiles_signed_up_after_as_of"] == 1


def test_catalog_describes_every_column(sample_features):
    catalog = sample_features.catalog
    assert list(catalog["name"]) == sample_features.columns
    assert catalog["description"].str.len().gt(0).all()
    full = sk.feature_catalog()
    assert {"recency_days", "abandoned_carts_30d", "age"} <= set(full["name"])


def test_customer_features_from_frame_validates_ids():
    with pytest.raises(ValueError, match=r"ids repeat, e.g. \['a'\]"):
        sk.CustomerFeatures.from_frame(pd.DataFrame({"customer_id": ["a", "a"], "x": [1, 2]}))


def test_as_of_given_as_an_integer_date(cdnow_tx):
    features = sk.extract_features(cdnow_tx, as_of=19980701)
    assert features.as_of == pd.Timestamp("1998-07-01", tz="UTC")
