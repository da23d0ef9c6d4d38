"""Offers and price features: each equals an independent pandas computation, on every backend.

On the Complete Journey sample: ``amount`` is ``sales_value``, ``discount`` is
``retail_disc + coupon_disc + coupon_match_disc`` (the ``journey_raw`` fixture), and the
sample has no promo code column, so one is derived for these tests: ``"COUPON"`` on the
lines with ``coupon_disc > 0``, missing elsewhere. The reference computation reads the
validated lines (``Transactions.data``) with plain pandas group-bys; it shares no code
with either feature compiler.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
import segmentkit.features._native as native_path
import segmentkit.features._numpy as numpy_path
import segmentkit.features._prices as prices
from segmentkit.cli import main
from segmentkit.errors import InvalidParameterError
from segmentkit.features._definitions import BUDGET_UP_TO, PREMIUM_FROM, definitions
from segmentkit.features._prices import exact_medians

OFFERS = [
    "discounted_order_share",
    "full_price_spend_share",
    "discount_depth",
    "promo_order_share",
    "n_promo_codes",
]
PRICE = ["price_index", "price_tier"]
_JOURNEY = {
    "customer_id": "household_id",
    "timestamp": "transaction_timestamp",
    "amount": "sales_value",
    "order_id": "basket_id",
    "product_id": "product_id",
    "category": "department",
    "quantity": "quantity",
    "discount": "discount",
    "promo_code": "promo_code",
    "timezone": "America/New_York",
}


def _features(backend, raw: pd.DataFrame, as_of=None, **mapping) -> pd.DataFrame:
    tx = sk.Transactions.from_frame(backend.frame(raw), **mapping)
    if backend.is_pandas:
        return sk.extract_features(tx, as_of=as_of).frame
    return sk.extract_features(tx, as_of=as_of, output="pandas").frame


@pytest.fixture
def only_offers(monkeypatch):
    """Both compilers compute only the offers and price features (and nothing else).

    The Complete Journey comparison runs on every backend at several cuts: the other
    features would only add minutes (on Spark, a query plan too large for its default
    heap) without testing anything of these.
    """

    def chosen(*args, **kwargs):
        return [d for d in definitions(*args, **kwargs) if d.name in OFFERS + PRICE]

    monkeypatch.setattr(numpy_path, "definitions", chosen)
    monkeypatch.setattr(native_path, "definitions", chosen)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index) == list(expected.index)
    for name in expected.columns:
        want, have = expected[name], got[name]
        if pd.api.types.is_float_dtype(want.dtype):
            np.testing.assert_allclose(
                have.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-9, err_msg=name
            )
        else:
            assert have.tolist() == want.tolist(), name


# --- the independent computation ---------------------------------------------------------


def _reference(lines: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The offers and price features from validated lines, by pandas group-bys."""
    lines = lines[lines["timestamp"] <= as_of].copy()
    for name in ("customer_id", "order_id", "product_id", "promo_code"):
        lines[name] = lines[name].astype(object)
    customers = pd.Index(sorted(lines["customer_id"].unique()), name="customer_id")
    buy = lines[~lines["is_return"]].copy()
    per = buy.groupby("customer_id")

    def total(frame: pd.DataFrame, column: str) -> pd.Series:
        return frame.groupby("customer_id")[column].sum().reindex(customers, fill_value=0.0)

    def orders(frame: pd.DataFrame) -> pd.Series:
        counted = frame.groupby("customer_id")["order_id"].nunique()
        return counted.reindex(customers, fill_value=0)

    frequency = per["order_id"].nunique().reindex(customers, fill_value=0)
    bought = frequency > 0
    discounted = buy[buy["discount"].fillna(0.0) > 0]
    full_price = buy[~(buy["discount"].fillna(0.0) > 0)]
    promo = buy[buy["promo_code"].notna()]
    gross = total(buy, "amount")
    taken = total(discounted, "discount")
    out = pd.DataFrame(index=customers)
    out["discounted_order_share"] = (orders(discounted) / frequency).where(bought)
    out["full_price_spend_share"] = (total(full_price, "amount") / gross).where(gross > 0)
    out["discount_depth"] = (taken / (total(discounted, "amount") + taken)).where(taken > 0)
    out["promo_order_share"] = (orders(promo) / frequency).where(bought)
    codes = promo.groupby("customer_id")["promo_code"].nunique()
    out["n_promo_codes"] = codes.reindex(customers, fill_value=0).astype(np.int64)

    unit = (buy["amount"] / buy["quantity"]).where(buy["quantity"] > 0)
    priced = buy.assign(unit=unit)[unit.notna() & buy["product_id"].notna()]
    median = priced.groupby("product_id")["unit"].median()
    priced = priced.assign(ratio=priced["unit"] / priced["product_id"].map(median))
    priced = priced[priced["product_id"].map(median) > 0]
    spend = total(priced, "amount")
    weighted = total(priced.assign(w=priced["ratio"] * priced["amount"]), "w")
    index = (weighted / spend).where(spend > 0)
    out["price_index"] = index
    tier = np.select(
        [index >= PREMIUM_FROM, index <= BUDGET_UP_TO], ["premium", "budget"], "mid"
    ).astype(object)
    out["price_tier"] = np.where(index.notna(), tier, None)
    return out


@pytest.fixture(scope="module")
def journey(journey_raw: pd.DataFrame) -> pd.DataFrame:
    coupon = journey_raw["coupon_disc"] > 0
    return journey_raw.assign(
        promo_code=pd.Series("COUPON", index=journey_raw.index).where(coupon)
    )


@pytest.fixture(scope="module")
def journey_lines(journey: pd.DataFrame) -> pd.DataFrame:
    return sk.Transactions.from_frame(journey, **_JOURNEY).data


_CUTS = ["2017-04-01", "2017-08-15", None]


def test_the_sample_exercises_every_case(journey_lines):
    # Otherwise the comparisons below would prove little.
    buy = journey_lines[~journey_lines["is_return"]]
    assert (buy["discount"] > 0).mean() > 0.3
    assert buy["promo_code"].notna().sum() > 500
    assert (buy["quantity"] == 0).sum() > 100
    # The sample has no return lines: test_offer_features_by_hand covers them.


@pytest.mark.parametrize("as_of", _CUTS)
def test_offer_and_price_features_equal_a_pandas_computation(
    backend, journey, journey_lines, as_of, only_offers
):
    stamp = (pd.Timestamp(as_of, tz="UTC") if as_of else journey_lines["timestamp"].max()).as_unit(
        "ns"
    )
    expected = _reference(journey_lines, stamp)
    got = _features(backend, journey, as_of, **_JOURNEY)
    _assert_same(got[OFFERS + PRICE], expected)
    # Every tier and both kinds of missing are there to compare.
    assert {"premium", "mid", "budget"} <= set(got["price_tier"].dropna())


# --- edge cases ---------------------------------------------------------------------------

_AS_OF = "2024-06-30"
_EDGE = pd.DataFrame(
    [
        # customer, order, day, product, category, quantity, amount, discount, promo
        ("a", "o1", "2024-06-01", "p1", "food", 1.0, 10.0, 2.0, "X"),
        ("a", "o1", "2024-06-01", "p2", "home", 2.0, 6.0, np.nan, None),
        ("a", "o2", "2024-06-10", "p1", "food", 1.0, 12.0, 0.0, None),
        # A return with a discount and a code: no offer, and not a price.
        ("a", "o8", "2024-06-12", "p1", "food", 1.0, -12.0, 5.0, "Q"),
        ("b", "o3", "2024-06-02", "p1", "food", 1.0, 8.0, 0.0, "Y"),
        # Zero quantity: spend, but no unit price.
        ("b", "o4", "2024-06-03", "p2", "home", 0.0, 0.0, 0.0, None),
        ("b", "o4", "2024-06-03", "p2", "home", 1.0, 5.0, 1.0, None),
        ("c", "o5", "2024-06-04", "p1", "food", 1.0, -10.0, 3.0, "Z"),  # returns only
        ("e", "o6", "2024-06-05", "p2", "home", 1.0, 8.0, 0.0, None),
        ("e", "o9", "2024-07-05", "p2", "home", 1.0, 100.0, 0.0, None),  # after as_of
        ("f", "o7", "2024-06-06", "p1", "food", 1.0, 5.0, 4.0, "X"),
    ],
    columns=[
        "customer_id",
        "order_id",
        "timestamp",
        "product_id",
        "category",
        "quantity",
        "amount",
        "discount",
        "promo_code",
    ],
)
_ALL = dict.fromkeys(_EDGE.columns)
_P1 = (8.0 + 10.0) / 2  # purchase prices 5, 8, 10, 12 (the return left out): even count
_P2 = 5.0  # 3, 5, 8: the line of zero quantity and the one after as_of left out


def test_offer_features_by_hand(backend):
    got = _features(backend, _EDGE, _AS_OF, **{c: c for c in _ALL})
    nan = np.nan
    expected = pd.DataFrame(
        {
            "discounted_order_share": [1 / 2, 1 / 2, nan, 0.0, 1.0],
            "full_price_spend_share": [18 / 28, 8 / 13, nan, 1.0, 0.0],
            "discount_depth": [2 / 12, 1 / 6, nan, nan, 4 / 9],
            "promo_order_share": [1 / 2, 1 / 2, nan, 0.0, 1.0],
            "n_promo_codes": np.array([1, 1, 0, 0, 1], dtype=np.int64),
            "price_index": [
                (10 * 10 / _P1 + 6 * 3 / _P2 + 12 * 12 / _P1) / 28,
                (8 * 8 / _P1 + 5 * 5 / _P2) / 13,
                nan,
                8 / _P2,
                5 / _P1,
            ],
            "price_tier": ["mid", "mid", None, "premium", "budget"],
        },
        index=pd.Index(["a", "b", "c", "e", "f"], name="customer_id"),
    )
    _assert_same(got[expected.columns], expected)


def test_features_without_their_columns_are_absent(backend):
    bare = _EDGE.drop(columns=["discount", "promo_code", "product_id", "category"])
    got = _features(backend, bare, _AS_OF, **{c: c for c in bare.columns})
    assert not set(OFFERS + PRICE) & set(got.columns)
    # Only the promo code is missing: the discount features stay.
    no_promo = _EDGE.drop(columns="promo_code")
    got = _features(backend, no_promo, _AS_OF, **{c: c for c in no_promo.columns})
    assert {"discounted_order_share", "discount_depth", "price_index"} <= set(got.columns)
    assert not {"promo_order_share", "n_promo_codes"} & set(got.columns)


def test_price_falls_back_to_the_category(backend):
    by_category = _EDGE.drop(columns="product_id")
    got = _features(backend, by_category, _AS_OF, **{c: c for c in by_category.columns})
    # Here each category holds one product: the same references as by product.
    expected = _features(backend, _EDGE, _AS_OF, **{c: c for c in _ALL})
    _assert_same(got[PRICE], expected[PRICE])


def test_a_mapped_unit_price_is_the_line_price(backend):
    priced = _EDGE.assign(unit_price=_EDGE["amount"] / _EDGE["quantity"])
    # The zero-quantity line gets a price of its own: 4, so p2 is 3, 4, 5, 8.
    priced.loc[priced["quantity"] == 0, "unit_price"] = 4.0
    priced["unit_price"] = priced["unit_price"].abs()  # a return's price is not negative
    got = _features(backend, priced, _AS_OF, **{c: c for c in priced.columns})
    p2 = (4.0 + 5.0) / 2
    assert got.loc["b", "price_index"] == pytest.approx((8 * 8 / _P1 + 0 + 5 * 5 / p2) / 13)
    assert got.loc["e", "price_index"] == pytest.approx(8 / p2)


def test_without_quantity_the_amount_is_the_unit_price(backend):
    lines = _EDGE.drop(columns="quantity")
    got = _features(backend, lines, _AS_OF, **{c: c for c in lines.columns})
    p2 = (5.0 + 6.0) / 2  # a line's amount is its price: 0 (b's free line), 5, 6, 8
    assert got.loc["e", "price_index"] == pytest.approx(8 / p2)
    assert got.loc["b", "price_index"] == pytest.approx((8 * 8 / _P1 + 0 + 5 * 5 / p2) / 13)


def test_exact_medians_match_numpy():
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 50, size=2000)
    values = rng.choice([0.5, 1.0, 1.25, 3.0, 9.99], size=2000) * rng.integers(1, 5, size=2000)
    medians = exact_medians(keys, values, 52)
    for key in range(52):
        held = values[keys == key]
        want = np.median(held) if len(held) else np.nan
        np.testing.assert_allclose(medians[key], want, rtol=0, atol=1e-12)
    # Repeated values by count give the median of the expanded values.
    distinct, counts = np.unique(values[keys == 3], return_counts=True)
    assert exact_medians(np.zeros(len(distinct)), distinct, 1, counts)[0] == medians[3]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(st.integers(0, 6), min_size=1, max_size=80),
    prices_=st.lists(
        st.sampled_from([-1.0, 0.0, 0.25, 1.0, 2.5, 2.5000000000000004, 9.99]), min_size=80
    ),
    distinct=st.booleans(),
)
def test_medians_of_repeated_prices_equal_numpy(monkeypatch, keys, prices_, distinct):
    # The distinct (key, price) pairs path, forced on small inputs (the same patch for
    # every example); with distinct prices it hands over to the sort.
    monkeypatch.setattr(prices, "_FEW_VALUES", 0)
    keys_ = np.array(keys)
    values = np.array(prices_[: len(keys)])
    if distinct:
        values = values + np.arange(len(keys)) * 1e-3
    medians = exact_medians(keys_, values, 8)
    for key in range(8):
        held = np.sort(values[keys_ == key])
        if len(held) == 0:
            assert np.isnan(medians[key])
        else:
            assert medians[key] == (held[(len(held) - 1) // 2] + held[len(held) // 2]) / 2


# --- the offers preset --------------------------------------------------------------------


def test_offer_rules_name_their_thresholds():
    rules = sk.offer_rules(deal_min_share=0.6, deal_min_orders=3, full_price_min_share=0.95)
    assert [(r.name, r.when) for r in rules] == [
        ("Deal seekers", "discounted_order_share >= 0.6 and frequency >= 3"),
        ("Full-price loyalists", "full_price_spend_share >= 0.95 and frequency >= 3"),
    ]
    assert "60%" in rules[0].description


@pytest.mark.parametrize(
    ("parameter", "value", "wanted"),
    [
        ("deal_min_share", 1.5, "a float in the range [0, 1]"),
        ("full_price_min_share", "high", "a float in the range [0, 1]"),
        ("deal_min_orders", 0, "an int in the range [1, inf)"),
        ("full_price_min_orders", 2.5, "an int in the range [1, inf)"),
    ],
)
def test_offer_rules_refuse_bad_thresholds(parameter, value, wanted):
    with pytest.raises(InvalidParameterError, match=re.escape(f"'{parameter}' parameter")) as e:
        sk.offer_rules(**{parameter: value})
    assert wanted in str(e.value)


def test_offer_rules_segment_the_edge_customers():
    features = sk.extract_features(
        sk.Transactions.from_frame(_EDGE), as_of=_AS_OF
    )  # a: 1/2 of orders discounted, e: all at full price, c: no order
    engine = sk.RuleSegmenter(
        rules=sk.offer_rules(deal_min_orders=1, full_price_min_orders=1), default="Other"
    )
    assignments = engine.fit_predict(features).assignments.set_index("customer_id")["segment"]
    assert assignments.to_dict() == {
        "a": "Deal seekers",
        "b": "Deal seekers",
        "c": "Other",
        "e": "Full-price loyalists",
        "f": "Deal seekers",
    }


def test_offer_conditions_run_from_a_rules_file_on_the_command_line(tmp_path):
    orders = tmp_path / "orders.csv"
    _EDGE.to_csv(orders, index=False)
    rules = tmp_path / "offers.toml"
    rules.write_text(
        'default = "Other"\n'
        "[[rules]]\n"
        'name = "Deal seekers"\n'
        'when = "discounted_order_share >= 0.5 and frequency >= 2"\n'
        "[[rules]]\n"
        'name = "Premium"\n'
        "when = \"price_tier == 'premium'\"\n"
    )
    out = tmp_path / "segments.csv"
    mapping = [f"{c}={c}" for c in _EDGE.columns]
    engine = ["--engine", "rules", "--rules", str(rules), "--out", str(out)]
    code = main(["-q", "segment", str(orders), "--map", *mapping, "--as-of", _AS_OF, *engine])
    assert code == 0
    written = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    assert written["segment"].to_dict() == {
        "a": "Deal seekers",
        "b": "Deal seekers",
        "c": "Other",
        "e": "Premium",
        "f": "Other",
    }
