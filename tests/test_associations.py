"""What to offer: associations, next-best items, items to promote per segment.

Every number is checked against an independent brute-force pandas computation (sets of
items per basket, counted pair by pair), on random small stores (Hypothesis), on the
Complete Journey sample, and on every backend.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from _backends import NATIVE
from segmentkit.errors import InvalidParameterError, NotFittedError

MAPPING = {
    "customer_id": "customer",
    "timestamp": "time",
    "amount": "amount",
    "order_id": "order",
    "category": "category",
    "brand": "brand",
}


def _store(rows: list[tuple[int, int, int, int, int]]) -> pd.DataFrame:
    """Lines from (customer, order, day, category, brand) codes; every 7th is a return."""
    frame = pd.DataFrame(rows, columns=["c", "o", "d", "cat", "br"])
    return pd.DataFrame(
        {
            "customer": "c" + frame["c"].astype(str),
            "order": "c" + frame["c"].astype(str) + "-o" + frame["o"].astype(str),
            "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["d"], unit="D"),
            "amount": np.where(np.arange(len(frame)) % 7 == 6, -5.0, 10.0),
            "category": "cat" + frame["cat"].astype(str),
            "brand": np.where(frame["br"] == 0, None, "brand" + frame["br"].astype(str)),
        }
    )


def _brute_rules(
    raw: pd.DataFrame,
    column: str,
    basket: str,
    as_of: pd.Timestamp,
    min_support: float,
    min_count: int,
) -> pd.DataFrame:
    """Support, confidence and lift counted pair by pair from Python sets."""
    bought = raw[(raw["amount"] > 0) & (raw["time"] <= as_of) & raw[column].notna()]
    key = "customer" if basket == "customer" else "order"
    sets = bought.groupby(key)[column].agg(lambda s: frozenset(s)).tolist()
    n = len(sets)
    counts: dict[str, int] = {}
    for items in sets:
        for item in items:
            counts[item] = counts.get(item, 0) + 1
    kept = sorted(i for i, c in counts.items() if c / n >= min_support and c >= min_count)
    rows = []
    for a, b in itertools.permutations(kept, 2):
        both = sum(1 for items in sets if a in items and b in items)
        if both == 0 or both / n < min_support or both < min_count:
            continue
        rows.append(
            {
                "antecedent": a,
                "consequent": b,
                "support": both / n,
                "confidence": both / counts[a],
                "lift": (both / counts[a]) / (counts[b] / n),
                "n_both": both,
                "n_antecedent": counts[a],
                "n_consequent": counts[b],
            }
        )
    columns = list(sk.models._associations.ASSOCIATION_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def _same_rules(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    keys = ["antecedent", "consequent"]
    left = got.sort_values(keys).reset_index(drop=True)
    right = expected.sort_values(keys).reset_index(drop=True)
    assert len(left) == len(right)
    if len(left):
        pd.testing.assert_frame_equal(
            left, right.astype(left.dtypes.to_dict()), check_exact=False, rtol=1e-12
        )


_rows = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.integers(0, 2),
        st.integers(0, 20),
        st.integers(0, 5),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=_rows,
    column=st.sampled_from(["category", "brand"]),
    basket=st.sampled_from(["customer", "order"]),
    min_support=st.sampled_from([0.01, 0.2, 0.5]),
    min_count=st.integers(1, 3),
    day=st.integers(0, 20),
)
def test_associations_equal_a_brute_force_count(rows, column, basket, min_support, min_count, day):
    raw = _store(rows)
    tx = sk.Transactions.from_frame(raw, **MAPPING)
    as_of = pd.Timestamp("2024-01-01") + pd.Timedelta(days=day)
    if not (raw["time"] <= as_of).any():
        with pytest.raises(ValueError, match="No transaction is on or before"):
            sk.associations(tx, column, as_of=as_of)
        return
    got = sk.associations(
        tx, column, min_support=min_support, min_count=min_count, as_of=as_of, basket=basket
    )
    as_of_utc = as_of.tz_localize("UTC")
    expected = _brute_rules(
        raw.assign(time=raw["time"].dt.tz_localize("UTC")),
        column,
        basket,
        as_of_utc,
        min_support,
        min_count,
    )
    _same_rules(got, expected)
    # Sorted by lift, then names; lift above 1 and below agree with confidence vs base rate.
    order = got.assign(neg=-got["lift"]).sort_values(["neg", "antecedent", "consequent"])
    assert order.index.tolist() == list(range(len(got)))
    assert got.attrs["basket"] == basket
    assert got.attrs["attribute"] == column


def test_lines_without_an_item_are_counted_not_hidden():
    raw = _store([(0, 0, 0, 0, 0), (0, 0, 0, 1, 1), (1, 0, 1, 1, 1)])
    rules = sk.associations(sk.Transactions.from_frame(raw, **MAPPING), "brand", min_count=1)
    assert rules.attrs["lines_without_item"] == 1
    assert rules.attrs["baskets"] == 2


def test_associations_on_the_complete_journey_sample_equal_brute_force(completejourney_lines):
    lines = completejourney_lines
    tx = sk.Transactions.from_frame(
        lines,
        customer_id="household_id",
        timestamp="transaction_timestamp",
        amount="sales_value",
        order_id="basket_id",
        category="department",
        brand="brand",
    )
    raw = tx.data.astype({"customer_id": str, "order_id": str, "category": object})
    raw = raw.assign(
        customer=raw["customer_id"],
        order=raw["customer_id"] + "|" + raw["order_id"],
        time=raw["timestamp"],
        amount=np.where(raw["is_return"], -1.0, 1.0),
    )
    as_of = tx.data["timestamp"].max()
    for basket, support in (("customer", 0.05), ("order", 0.002)):
        got = sk.associations(tx, "category", min_support=support, basket=basket)
        _same_rules(got, _brute_rules(raw, "category", basket, as_of, support, 2))
        assert len(got) > 10


def _journey(lines: pd.DataFrame, frame=None, **extra) -> sk.Transactions:
    return sk.Transactions.from_frame(
        lines if frame is None else frame,
        customer_id="household_id",
        timestamp="transaction_timestamp",
        amount="sales_value",
        order_id="basket_id",
        product_id="product_id",
        category="product_category",
        brand="department",
        timezone="America/New_York",
        **extra,
    )


# --- every backend ---------------------------------------------------------------------


@pytest.mark.backends(*NATIVE)
def test_native_backends_give_the_pandas_rules_and_recommendations(backend):
    raw = _store(
        [
            (c, o, (c * 3 + o * 5) % 20, (c + o) % 5, (c * o) % 4)
            for c in range(8)
            for o in range(3)
        ]
    )
    pandas_tx = sk.Transactions.from_frame(raw, **MAPPING)
    native_tx = sk.Transactions.from_frame(backend.frame(raw), **MAPPING)
    for basket in ("customer", "order"):
        for column in ("category", "brand"):
            expected = sk.associations(
                pandas_tx, column, min_support=0.1, basket=basket, as_of="2024-01-15"
            )
            got = sk.associations(
                native_tx, column, min_support=0.1, basket=basket, as_of="2024-01-15"
            )
            pd.testing.assert_frame_equal(got, expected)
            assert got.attrs == expected.attrs
    model = sk.NextBestItems("category", k=2).fit(pandas_tx)
    native = sk.NextBestItems("category", k=2).fit(native_tx)
    pd.testing.assert_frame_equal(native.recommend(), model.recommend())
    seg = sk.RFMSegmenter().fit_predict(sk.extract_features(pandas_tx))
    pd.testing.assert_frame_equal(
        sk.segment_items(seg, native_tx, min_customers=1),
        sk.segment_items(seg, pandas_tx, min_customers=1),
    )


# --- next-best items -------------------------------------------------------------------


def _brute_scores(
    raw: pd.DataFrame, min_support: float, min_count: int
) -> dict[str, dict[str, float]]:
    """score(c, j) = P(j) + Σ over bought i of max(0, confidence(i → j) − P(j))."""
    bought = raw[raw["amount"] > 0]
    sets = bought.groupby("customer")["category"].agg(frozenset)
    n = len(sets)
    rules = _brute_rules(raw, "category", "customer", raw["time"].max(), min_support, min_count)
    share = {i: sum(i in s for s in sets) / n for i in set().union(*sets)}
    gain = {
        (r.antecedent, r.consequent): r.confidence - share[r.consequent]
        for r in rules.itertuples()
        if r.confidence > share[r.consequent]
    }
    scores = {}
    for customer, items in sets.items():
        scores[customer] = {
            j: share[j] + sum(gain.get((i, j), 0.0) for i in items)
            for j in share
            if j not in items
        }
    return scores


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows, k=st.integers(1, 4), min_count=st.integers(1, 2))
def test_next_best_scores_equal_brute_force_and_skip_what_was_bought(rows, k, min_count):
    raw = _store(rows)
    tx = sk.Transactions.from_frame(raw, **MAPPING)
    if not (raw["amount"] > 0).any():
        return
    model = sk.NextBestItems("category", k=k, min_support=0.01, min_count=min_count).fit(tx)
    long = model.recommend()
    expected = _brute_scores(raw, 0.01, min_count)
    popularity = model.popularity_
    for customer, scores in expected.items():
        got = long[long["customer_id"] == customer]
        # The k best by score, then popularity, then name.
        ranked = sorted(scores, key=lambda j: (-round(scores[j], 12), -popularity[j], j))[:k]
        assert got["item"].tolist() == ranked
        assert got["rank"].tolist() == list(range(1, len(ranked) + 1))
        np.testing.assert_allclose(got["score"], [scores[j] for j in ranked], rtol=1e-12)
    bought = raw[raw["amount"] > 0].groupby("customer")["category"].agg(set)
    assert not any(
        item in bought[c] for c, item in zip(long["customer_id"], long["item"], strict=True)
    )
    wide = model.transform()
    assert list(wide.columns) == ["customer_id", *(f"next_best_{i + 1}" for i in range(k))]
    assert wide["customer_id"].tolist() == sorted(bought.index)


def test_reason_is_the_bought_item_whose_rule_adds_most():
    # Everyone who bought A also bought C; B buyers also bought D.
    rows = [(c, 0, 0, 0, 0) for c in range(4)] + [(c, 0, 0, 2, 0) for c in range(4)]
    rows += [(c, 0, 0, 1, 0) for c in range(4, 8)] + [(c, 0, 0, 3, 0) for c in range(4, 8)]
    rows += [(8, 0, 0, 0, 0), (9, 0, 0, 1, 0)]
    tx = sk.Transactions.from_frame(_store(rows), **MAPPING)
    model = sk.NextBestItems("category", k=1).fit(tx)
    long = model.recommend(["c8", "c9", "never-bought"]).set_index("customer_id")
    assert long.loc["c8", "item"] == "cat2"
    assert long.loc["c8", "antecedent"] == "cat0"
    assert long.loc["c9", "item"] == "cat3"
    assert long.loc["c9", "antecedent"] == "cat1"
    # Unknown to the model: the most popular items, no reason.
    assert pd.isna(long.loc["never-bought", "antecedent"])
    assert long.loc["never-bought", "item"] == model.popularity_.idxmax()


def test_recommendations_are_deterministic_and_batched_identically(monkeypatch):
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    model = sk.NextBestItems("category", k=4).fit(tx, as_of="2017-10-01")
    once = model.recommend()
    monkeypatch.setattr("segmentkit.models._next_best._BATCH_ROWS", 500)
    pd.testing.assert_frame_equal(model.recommend(), once)
    assert once.groupby("customer_id").size().max() == 4


def test_next_best_items_function_and_features_as_customers():
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    wide = sk.next_best_items(tx, "category", k=2, as_of="2017-10-01")
    model = sk.NextBestItems("category", k=2).fit(tx, as_of="2017-10-01")
    pd.testing.assert_frame_equal(wide, model.transform())
    features = sk.extract_features(tx, as_of="2017-10-01")
    by_features = model.transform(features)
    assert by_features["customer_id"].tolist() == features.frame.index.astype(str).tolist()


# --- the evaluation on Complete Journey -----------------------------------------------


def test_next_best_beats_most_popular_on_the_complete_journey_sample(completejourney_lines):
    tx = _journey(completejourney_lines)
    splits = [("2017-06-30", 91), ("2017-08-31", 120), ("2017-09-30", 91), ("2017-10-31", 61)]
    tables = [
        sk.evaluate_next_best(tx, cutoff, "category", horizon_days=days, k=[3, 5])
        for cutoff, days in splits
    ]
    hits = pd.concat(tables).groupby(["method", "k"])["hit_rate"].mean().unstack("method")
    # Averaged over four time splits, at 3 and 5 items.
    assert (hits["next_best"] > hits["popular"]).all(), hits
    five = tables[-1].set_index(["method", "k"])["hit_rate"]
    assert five[("next_best", 5)] > five[("popular", 5)]
    assert tables[-1]["customers"].iloc[0] > 1000


def test_evaluation_needs_new_purchases_after_the_cutoff():
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    with pytest.raises(ValueError, match="no customer known at the cut-off buys a new item"):
        sk.evaluate_next_best(tx, "2018-06-01", "category")


# --- per segment -----------------------------------------------------------------------


def test_segment_items_equal_brute_force_lift():
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    seg = sk.RFMSegmenter().fit_predict(sk.extract_features(tx, as_of="2017-11-30"))
    got = sk.segment_items(seg, tx, "category", top=3, min_customers=5)
    data = tx.data
    bought = data[
        (~data["is_return"]) & (data["timestamp"] <= seg.as_of) & data["category"].notna()
    ]
    pairs = bought[["customer_id", "category"]].astype(str).drop_duplicates()
    members = seg.assignments[["customer_id", "segment"]].astype(str)
    pairs = pairs.merge(members, on="customer_id")
    size = members["segment"].value_counts()
    base = pairs.groupby("category")["customer_id"].nunique() / len(members)
    for name in size.index:
        counts = pairs[pairs["segment"] == name].groupby("category")["customer_id"].nunique()
        counts = counts[counts >= 5]
        lift = (counts / size[name]) / base[counts.index]
        table = pd.DataFrame({"lift": lift, "buyers": counts})
        table = table.reset_index().sort_values(
            ["lift", "buyers", "category"], ascending=[False, False, True]
        )
        shown = got[got["segment"] == name]
        assert shown["item"].tolist() == table["category"].head(3).tolist()
        np.testing.assert_allclose(shown["lift"], table["lift"].head(3), rtol=1e-12)
    assert got["rank"].max() <= 3
    # A purchase after the segmentation's as_of never counts.
    later = sk.segment_items(seg, tx, "category", top=3, as_of=data["timestamp"].max())
    assert not later.equals(got)


# --- bad input -------------------------------------------------------------------------


def test_bad_inputs_get_clear_errors():
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    with pytest.raises(ValueError, match="attribute='colour' is not a column of the transactions"):
        sk.associations(tx, "colour")
    with pytest.raises(ValueError, match="attribute='amount' is not a product attribute"):
        sk.associations(tx, "amount")
    with pytest.raises(InvalidParameterError, match="'basket' parameter"):
        sk.associations(tx, basket="session")
    with pytest.raises(InvalidParameterError, match="'min_support' parameter"):
        sk.associations(tx, min_support=0)
    with pytest.raises(InvalidParameterError, match="'transactions' parameter"):
        sk.associations(raw)
    with pytest.raises(ValueError, match="No transaction is on or before"):
        sk.associations(tx, as_of="2000-01-01")
    with pytest.raises(NotFittedError, match="not fitted"):
        sk.NextBestItems().recommend()
    with pytest.raises(InvalidParameterError, match="'k' parameter of NextBestItems"):
        sk.NextBestItems(k=0).fit(tx)
    model = sk.NextBestItems().fit(tx)
    with pytest.raises(ValueError, match="repeats ids"):
        model.recommend(["1566", "1566"])
    with pytest.raises(TypeError, match="list of customer ids"):
        model.recommend("1566")


@pytest.mark.backends("polars")
def test_order_baskets_need_orders_on_a_native_backend(backend):
    raw, mapping = sk.datasets.load_sample()
    mapping = {k: v for k, v in mapping.items() if k != "order_id"}
    rows = sk.Transactions.from_frame(backend.frame(raw), orders_from="row", **mapping)
    with pytest.raises(ValueError, match="every line is an order of its own"):
        sk.associations(rows, basket="order")


# --- command line ----------------------------------------------------------------------


def test_cli_next_best_file_goes_to_braze_profiles(tmp_path, capsys):
    from segmentkit.cli import main

    raw, _ = sk.datasets.load_sample()
    orders = tmp_path / "orders.csv"
    raw.to_csv(orders, index=False)
    columns = [
        "customer_id=household_id",
        "timestamp=transaction_timestamp",
        "amount=sales_value",
        "order_id=basket_id",
        "category=department",
    ]
    out = tmp_path / "next_best.csv"
    args = ["-q", "next-best", str(orders), "--map", *columns, "--as-of", "2017-10-01"]
    assert main([*args, "--k", "2", "--out", str(out)]) == 0
    assert "next-best category as of 2017-10-01" in capsys.readouterr().out
    written = pd.read_csv(out, dtype=str)
    tx = sk.Transactions.from_frame(raw, **dict(c.split("=") for c in columns))
    expected = sk.next_best_items(tx, "category", k=2, as_of="2017-10-01")
    assert written.fillna("").values.tolist() == expected.fillna("").values.tolist()

    segments = tmp_path / "segments.csv"
    segment = ["-q", "segment", str(orders), "--map", *columns, "--as-of", "2017-10-01"]
    assert main([*segment, "--out", str(segments)]) == 0
    customers = tmp_path / "customers.csv"
    pd.DataFrame({"id": ["1566"], "email": ["a@example.com"]}).to_csv(customers, index=False)
    chosen = pd.read_csv(segments, dtype=str).set_index("customer_id").loc["1566", "segment"]
    export = [
        "-q", "export", str(segments), "--customers", str(customers), "--map-customers",
        "customer_id=id", "email=email", "--param", "consent=null", "--to", "braze",
        "--out", str(tmp_path / "out"), "--segment", chosen, "--predictions", str(out),
    ]  # fmt: skip
    assert main(export) == 0
    body = next((tmp_path / "out").glob("braze-*.json")).read_text(encoding="utf-8")
    first = expected.set_index("customer_id").loc["1566", "next_best_1"]
    assert f'"segmentkit_next_best_1": "{first}"' in body
    assert main(["-q", "next-best", str(orders), "--map", *columns, "--out", "x.txt"]) == 1
