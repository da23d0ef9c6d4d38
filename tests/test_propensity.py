"""PurchasePropensity: cut-offs, labels without leakage, evaluation, checks, real data."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.errors import ContractError, InvalidParameterError, NotFittedError
from segmentkit.models import _propensity as prop
from segmentkit.models._propensity_eval import (
    _auc,
    _brier,
    _calibration_table,
    _top_decile_lift,
)

START = pd.Timestamp("2023-01-01")


def store(n: int = 300, days: int = 720, seed: int = 7) -> pd.DataFrame:
    """Raw order lines of a synthetic store: customers buy at their own rate, then leave."""
    rng = np.random.default_rng(seed)
    joined = rng.uniform(0, days * 0.4, n)
    rate = rng.gamma(0.9, 1 / 25, n)  # purchases per day while active
    leaves = joined + rng.exponential(250, n)
    span = np.clip(np.minimum(leaves, days) - joined, 0, None)
    counts = 1 + rng.poisson(rate * span)
    owner = np.repeat(np.arange(n), counts)
    offset = np.where(
        np.r_[True, owner[1:] != owner[:-1]], 0.0, rng.uniform(0, 1, owner.size) * span[owner]
    )
    stamps = START + pd.to_timedelta((joined[owner] + offset) * 86400, unit="s")
    return pd.DataFrame(
        {
            "customer": [f"c{i:04d}" for i in owner],
            "ts": stamps,
            "amount": np.round(rng.lognormal(3, 0.6, owner.size), 2),
            "category": rng.choice(["books", "music", "games"], owner.size),
        }
    )


def transactions(raw: pd.DataFrame) -> sk.Transactions:
    return sk.Transactions.from_frame(
        raw, customer_id="customer", timestamp="ts", amount="amount", category="category"
    )


AS_OF = "2024-12-20"


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return store()


@pytest.fixture(scope="module")
def tx(raw: pd.DataFrame) -> sk.Transactions:
    return transactions(raw)


@pytest.fixture(scope="module")
def fitted(tx: sk.Transactions) -> sk.PurchasePropensity:
    return sk.PurchasePropensity(horizon_days=60, n_snapshots=4).fit(tx, as_of=AS_OF)


# -- cut-offs and the shape of the result -------------------------------------------------


def test_cutoffs_are_spaced_by_step_and_the_last_leaves_one_horizon_before_as_of(fitted):
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    assert fitted.as_of_ == as_of
    assert fitted.cutoffs_[-1] == as_of - pd.Timedelta(days=60)
    assert np.all(np.diff(fitted.cutoffs_) == pd.Timedelta(days=60))
    assert len(fitted.cutoffs_) == 4
    assert list(fitted.snapshots_["role"]) == ["train", "train", "train", "test"]
    ev = fitted.evaluation_
    assert ev.test_cutoff == fitted.cutoffs_[-1]
    assert list(ev.train_cutoffs) == fitted.cutoffs_[:-1]


def test_snapshot_table_counts_examples_buyers_and_customers_not_yet_seen(fitted, raw):
    stamps = pd.to_datetime(raw["ts"]).dt.tz_localize("UTC")
    first = stamps.groupby(raw["customer"]).min()
    as_of = fitted.as_of_
    h = pd.Timedelta(days=60)
    for cutoff, row in fitted.snapshots_.iterrows():
        known = first[first <= cutoff].index
        assert row["customers"] == len(known)
        assert row["later_customers"] == int(((first > cutoff) & (first <= as_of)).sum())
        window = raw[(stamps > cutoff) & (stamps <= cutoff + h)]
        assert row["buyers"] == len(set(window["customer"]) & set(known))
        assert row["buyer_rate"] == pytest.approx(row["buyers"] / row["customers"])
    assert fitted.n_examples_ == fitted.snapshots_["customers"].sum()


def test_dates_enter_as_ages_without_duplicating_recency_and_tenure(fitted):
    assert "first_purchase" not in fitted.feature_names_
    assert "last_purchase" not in fitted.feature_names_
    assert {"recency_days", "tenure_days", "frequency", "top_category"} <= set(
        fitted.feature_names_
    )


def test_a_date_feature_becomes_its_age_in_days_at_the_features_as_of():
    frame = pd.DataFrame(
        {"signup": pd.to_datetime(["2024-01-01", None], utc=True), "x": [1, 2]},
        index=pd.Index(["a", "b"], name="customer_id"),
    )
    features = sk.CustomerFeatures(frame, pd.Timestamp("2024-01-11", tz="UTC"))
    design = prop._learn_design([frame], min_valued=1)
    assert design.kinds == ("date", "numeric")
    x = prop._matrix(design, features)
    assert x[0, 0] == 10.0
    assert np.isnan(x[1, 0])


def test_categories_are_coded_rare_and_unknown_share_a_code_and_missing_stays_missing():
    train = pd.DataFrame({"top": ["b", "a", "b", None]}, index=list("pqrs"))
    design = prop._learn_design([train], min_valued=1)
    assert design.categories["top"] == ("b", "a")  # most frequent first
    later = pd.DataFrame({"top": ["a", "zz", None]}, index=list("xyz"))
    x = prop._matrix(design, sk.CustomerFeatures(later, pd.Timestamp("2024-01-01", tz="UTC")))
    assert x[0, 0] == 1.0
    assert x[1, 0] == 2.0
    assert np.isnan(x[2, 0])


# -- no leakage ---------------------------------------------------------------------------


def mutate_after(raw: pd.DataFrame, moment: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Change every line after ``moment`` and add new ones there (new and known customers)."""
    rng = np.random.default_rng(seed)
    naive = moment.tz_convert(None) if moment.tzinfo else moment
    out = raw.copy()
    late = out["ts"] > naive
    out.loc[late, "amount"] = out.loc[late, "amount"] * 7 + 1
    out.loc[late, "category"] = "trap"
    extra = pd.DataFrame(
        {
            "customer": [*(out["customer"].iloc[i % len(out)] for i in range(5)), "new1", "new2"],
            "ts": naive + pd.to_timedelta(rng.uniform(1, 10_000, 7), unit="min"),
            "amount": rng.uniform(1, 500, 7),
            "category": "trap",
        }
    )
    return pd.concat([out, extra], ignore_index=True)


def test_no_line_after_a_cutoff_reaches_its_features(fitted, raw, tx):
    purchases = tx.data.loc[~tx.data["is_return"], ["customer_id", "timestamp"]]
    for cutoff in fitted.cutoffs_:
        changed = transactions(mutate_after(raw, cutoff))
        changed_purchases = changed.data.loc[
            ~changed.data["is_return"], ["customer_id", "timestamp"]
        ]
        before = prop._snapshot(tx, purchases, cutoff, 60)
        after = prop._snapshot(changed, changed_purchases, cutoff, 60)
        pd.testing.assert_frame_equal(before.features.frame, after.features.frame)
        design = prop._learn_design([before.features.frame])
        np.testing.assert_array_equal(
            prop._matrix(design, before.features), prop._matrix(design, after.features)
        )


def test_labels_read_only_purchases_inside_the_horizon_window(raw, tx):
    cutoff = pd.Timestamp("2024-03-01", tz="UTC")
    h = 45
    purchases = tx.data.loc[~tx.data["is_return"], ["customer_id", "timestamp"]]
    base = prop._snapshot(tx, purchases, cutoff, h)
    # Lines after the window's end change nothing (they are neither features nor labels).
    end = cutoff + pd.Timedelta(days=h)
    changed = transactions(mutate_after(raw, end))
    changed_purchases = changed.data.loc[~changed.data["is_return"], ["customer_id", "timestamp"]]
    again = prop._snapshot(changed, changed_purchases, cutoff, h)
    np.testing.assert_array_equal(base.bought, again.bought)
    # The boundaries: a purchase at the cut-off is history, one at the window's end counts,
    # a return inside the window is not a purchase.
    index = pd.Index(["at_cutoff", "at_end", "returned", "after"])
    lines = pd.DataFrame(
        {
            "customer_id": ["at_cutoff", "at_end", "after"],
            "timestamp": [cutoff, end, end + pd.Timedelta(seconds=1)],
        }
    )
    assert prop._bought_within(lines, index, cutoff, h).tolist() == [False, True, False, False]


def test_returns_in_the_window_are_not_purchases():
    raw = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "b"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-10", "2024-01-01", "2024-01-10"]),
            "amount": [10.0, -10.0, 10.0, 5.0],
        }
    )
    tx = sk.Transactions.from_frame(raw, customer_id="customer", timestamp="ts", amount="amount")
    purchases = tx.data.loc[~tx.data["is_return"], ["customer_id", "timestamp"]]
    snap = prop._snapshot(tx, purchases, pd.Timestamp("2024-01-05", tz="UTC"), 30)
    assert dict(zip(snap.features.frame.index, snap.bought, strict=True)) == {
        "a": False,
        "b": True,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(0, 200), min_size=1, max_size=40),
    owners=st.lists(st.integers(0, 5), min_size=40, max_size=40),
    cut=st.integers(0, 200),
    horizon=st.integers(1, 120),
)
def test_labels_and_features_match_a_brute_force_reading(offsets, owners, cut, horizon):
    stamps = START + pd.to_timedelta(offsets, unit="D") + pd.Timedelta(hours=12)
    raw = pd.DataFrame(
        {
            "customer": [f"k{owners[i]}" for i in range(len(offsets))],
            "ts": stamps,
            "amount": np.arange(1.0, len(offsets) + 1),
        }
    )
    cutoff = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=cut)
    if (stamps > cutoff.tz_convert(None)).all():
        return  # nothing by the cut-off: extract_features refuses (tested elsewhere)
    tx = sk.Transactions.from_frame(raw, customer_id="customer", timestamp="ts", amount="amount")
    purchases = tx.data.loc[~tx.data["is_return"], ["customer_id", "timestamp"]]
    snap = prop._snapshot(tx, purchases, cutoff, horizon)
    naive = cutoff.tz_convert(None)
    expected_customers = sorted(set(raw.loc[raw["ts"] <= naive, "customer"]))
    assert sorted(snap.features.frame.index) == expected_customers
    in_window = raw[(raw["ts"] > naive) & (raw["ts"] <= naive + pd.Timedelta(days=horizon))]
    expected = [c in set(in_window["customer"]) for c in snap.features.frame.index]
    assert snap.bought.tolist() == expected
    mutated = transactions(mutate_after(raw.assign(category="x"), cutoff))
    again = sk.extract_features(mutated, as_of=cutoff)
    pd.testing.assert_frame_equal(
        snap.features.frame[["frequency", "monetary", "recency_days"]],
        again.frame[["frequency", "monetary", "recency_days"]],
    )


def test_lines_after_as_of_change_nothing_in_the_fit(raw, fitted):
    changed = transactions(mutate_after(raw, fitted.as_of_))
    other = sk.PurchasePropensity(horizon_days=60, n_snapshots=4).fit(changed, as_of=AS_OF)
    pd.testing.assert_frame_equal(other.evaluation_.metrics, fitted.evaluation_.metrics)
    pd.testing.assert_frame_equal(other.snapshots_, fitted.snapshots_)
    features = sk.extract_features(transactions(raw), as_of=AS_OF)
    pd.testing.assert_series_equal(other.predict_proba(features), fitted.predict_proba(features))


def test_with_overlapping_windows_the_evaluated_model_skips_cutoffs_whose_outcome_is_later(tx):
    model = sk.PurchasePropensity(horizon_days=60, n_snapshots=4, step_days=30).fit(
        tx, as_of=AS_OF
    )
    # Cut-offs 30 days before the test one: their window ends after it, so not in training.
    assert list(model.snapshots_["role"]) == ["train", "train", "unused", "test"]
    assert len(model.evaluation_.train_cutoffs) == 2
    for cutoff in model.evaluation_.train_cutoffs:
        assert cutoff + pd.Timedelta(days=60) <= model.evaluation_.test_cutoff
    with pytest.raises(ContractError, match=r"step_days=30 shorter than horizon_days=60.*>= 3"):
        sk.PurchasePropensity(horizon_days=60, n_snapshots=2, step_days=30).fit(tx, as_of=AS_OF)


# -- evaluation ---------------------------------------------------------------------------


def test_evaluation_reports_model_and_baselines_side_by_side(fitted):
    ev = fitted.evaluation_
    assert list(ev.metrics.index) == ["model", "frequency-only", "recency-only"]
    assert list(ev.metrics.columns) == ["auc", "brier", "top_decile_lift"]
    assert ev.metrics.loc["model", "auc"] > 0.7
    assert (ev.metrics["brier"] < 0.25).all()
    assert ev.n_test == fitted.snapshots_["customers"].iloc[-1]
    assert ev.n_train == fitted.snapshots_["customers"].iloc[:-1].sum()
    assert ev.base_rate == pytest.approx(fitted.snapshots_["buyer_rate"].iloc[-1])
    assert ev.calibration["customers"].sum() == ev.n_test
    assert len(ev.calibration) == 10
    assert set(ev.importance.index) == set(fitted.feature_names_)
    assert ev.importance["importance"].is_monotonic_decreasing
    text = ev.summary(top=3)
    assert "model" in text
    assert "frequency-only" in text
    assert "recency-only" in text
    assert text.count(",") >= 2
    assert "Most important features" in text
    assert str(ev) == ev.summary()
    document = json.loads(json.dumps(ev.to_dict()))
    assert document["metrics"][0]["scorer"] == "model"
    assert document["test_cutoff"].startswith(str(ev.test_cutoff.date()))


def test_fits_repeat_exactly(tx, fitted):
    again = sk.PurchasePropensity(horizon_days=60, n_snapshots=4).fit(tx, as_of=AS_OF)
    pd.testing.assert_frame_equal(again.evaluation_.metrics, fitted.evaluation_.metrics)
    pd.testing.assert_frame_equal(again.evaluation_.importance, fitted.evaluation_.importance)


def test_importance_on_a_sample_of_a_large_evaluation_repeats_exactly(tx, monkeypatch):
    monkeypatch.setattr(prop, "_IMPORTANCE_ROWS", 120)
    model = sk.PurchasePropensity(horizon_days=60, n_snapshots=3, n_repeats=2)
    first = model.fit(tx, as_of=AS_OF).evaluation_.importance
    assert first["importance"].notna().all()
    pd.testing.assert_frame_equal(model.fit(tx, as_of=AS_OF).evaluation_.importance, first)


def test_calibration_folds_keep_each_customer_together_and_get_buyers():
    ids = np.array(["a", "b", "c", "a", "b", "c", "d", "d", "e", "f"])
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 0])
    folds = prop._customer_folds(ids, y, 0)
    assert len(folds) == 3
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(len(ids)))
    for train, test in folds:
        assert not set(ids[train]) & set(ids[test])
        assert y[test].sum() >= 1


def test_metric_functions():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert _auc(y, -np.arange(10.0)) == pytest.approx(15 / 16)
    assert np.isnan(_auc(np.zeros(5), np.arange(5.0)))
    assert _brier(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.25)
    # The top 10% is the single best customer, a buyer: lift = 1 / base rate.
    assert _top_decile_lift(y, -np.arange(10.0)) == pytest.approx(5.0)
    # All tied: the top 10% holds the average customer, whatever the row order.
    assert _top_decile_lift(y, np.zeros(10)) == pytest.approx(1.0)
    assert np.isnan(_top_decile_lift(np.zeros(10), np.arange(10.0)))
    table = _calibration_table(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1]), bins=2)
    assert table["customers"].tolist() == [2, 2]
    assert table["observed_rate"].tolist() == [1.0, 0.0]
    assert table["mean_predicted"].tolist() == pytest.approx([0.85, 0.15])


@settings(max_examples=50, deadline=None)
@given(
    y=st.lists(st.booleans(), min_size=10, max_size=60).filter(any),
    seed=st.integers(0, 1000),
)
def test_top_decile_lift_does_not_depend_on_row_order(y, seed):
    y = np.array(y, dtype=float)
    score = np.random.default_rng(seed).integers(0, 3, y.size).astype(float)
    order = np.random.default_rng(seed + 1).permutation(y.size)
    assert _top_decile_lift(y, score) == pytest.approx(_top_decile_lift(y[order], score[order]))
    assert 0 <= _top_decile_lift(y, score) <= 1 / y.mean() + 1e-9


def test_an_evaluation_cutoff_where_everyone_bought_warns_and_reports_nan():
    raw = store(n=120, days=400, seed=3)
    last_window = START + pd.Timedelta(days=380)
    as_of = last_window + pd.Timedelta(days=6)  # the data end one day before
    everyone = pd.DataFrame(
        {
            "customer": sorted(set(raw.loc[raw["ts"] <= last_window, "customer"])),
            "ts": last_window + pd.Timedelta(days=5),
            "amount": 5.0,
            "category": "books",
        }
    )
    raw = pd.concat([raw[raw["ts"] <= last_window], everyone], ignore_index=True)
    model = sk.PurchasePropensity(horizon_days=20, n_snapshots=4)
    with pytest.warns(sk.errors.SegmentkitWarning, match="every customer bought within 20 days"):
        model.fit(transactions(raw), as_of=as_of.strftime("%Y-%m-%d"))
    assert np.isnan(model.evaluation_.metrics.loc["model", "auc"])
    assert model.evaluation_.importance["importance"].isna().all()
    assert model.evaluation_.to_dict()["metrics"][0]["auc"] is None


# -- prediction ---------------------------------------------------------------------------


def test_predict_proba_and_transform(fitted, tx):
    features = sk.extract_features(tx, as_of=AS_OF)
    p = fitted.predict_proba(features)
    assert p.name == fitted.column_name == "purchase_probability_60d"
    assert p.index.equals(features.frame.index)
    assert p.index.name == "customer_id"
    assert ((p >= 0) & (p <= 1)).all()
    assert p.notna().all()
    out = fitted.transform(features)
    assert list(out.columns) == [*features.frame.columns, "purchase_probability_60d"]
    np.testing.assert_array_equal(out["purchase_probability_60d"].to_numpy(), p.to_numpy())
    assert "purchase_probability_60d" not in features.frame.columns  # input untouched
    # Recent frequent buyers score higher than lapsed one-time buyers.
    frame = features.frame
    active = frame[(frame["recency_days"] < 20) & (frame["frequency"] >= 5)].index
    lapsed = frame[(frame["recency_days"] > 300) & (frame["frequency"] == 1)].index
    assert p[active].mean() > p[lapsed].mean() + 0.3


def test_prediction_needs_the_training_columns_and_customer_features(fitted, tx):
    features = sk.extract_features(tx, as_of=AS_OF)
    with pytest.raises(TypeError, match="takes CustomerFeatures"):
        fitted.predict_proba(features.frame)
    thin = sk.CustomerFeatures(features.frame.drop(columns=["frequency"]), features.as_of)
    with pytest.raises(ContractError, match=r"lack \['frequency'\]"):
        fitted.predict_proba(thin)
    with pytest.raises(NotFittedError):
        sk.PurchasePropensity().predict_proba(features)


# -- checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"horizon_days": 0}, "'horizon_days' parameter of PurchasePropensity must be an int"),
        ({"horizon_days": 1.5}, "'horizon_days'"),
        ({"horizon_days": True}, "'horizon_days'"),
        ({"n_snapshots": 1}, r"'n_snapshots'.*\[2, inf\)"),
        ({"step_days": -3}, "'step_days'"),
        ({"calibration": "platt"}, "'calibration'"),
        ({"learning_rate": 0.0}, "'learning_rate'"),
        ({"random_state": None}, "'random_state'"),
    ],
)
def test_bad_parameters_are_refused_by_name(tx, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        sk.PurchasePropensity(**params).fit(tx)


def test_as_of_must_lie_inside_the_data(tx):
    with pytest.raises(ContractError, match="as_of 2030-01-01 00:00 is outside the transactions"):
        sk.PurchasePropensity().fit(tx, as_of="2030-01-01")
    with pytest.raises(ContractError, match="outside the transactions"):
        sk.PurchasePropensity().fit(tx, as_of="2020-01-01")


def test_as_of_may_be_the_midnight_after_the_last_line():
    raw = store(n=200, days=400, seed=5)
    last = raw["ts"].max()
    midnight = (last.normalize() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    model = sk.PurchasePropensity(horizon_days=30, n_snapshots=3).fit(
        transactions(raw), as_of=midnight
    )
    assert model.as_of_ == pd.Timestamp(midnight, tz="UTC")


def test_too_little_history_says_how_much_is_needed_and_what_fits(tx):
    with pytest.raises(ContractError) as caught:
        sk.PurchasePropensity(horizon_days=90, n_snapshots=12).fit(tx, as_of=AS_OF)
    message = str(caught.value)
    assert "needs 1080 days of history before as_of 2024-12-20" in message
    assert "Pass n_snapshots=7 or less" in message
    with pytest.raises(ContractError, match="Not even two cut-offs fit"):
        sk.PurchasePropensity(horizon_days=400, n_snapshots=2).fit(tx, as_of=AS_OF)


def test_outcomes_with_one_class_are_refused():
    nobody_returns = pd.DataFrame(
        {
            "customer": [f"c{i}" for i in range(50)],
            "ts": START + pd.to_timedelta(np.arange(50), unit="D"),
            "amount": 10.0,
        }
    )
    tx = sk.Transactions.from_frame(
        nobody_returns, customer_id="customer", timestamp="ts", amount="amount"
    )
    with pytest.raises(ContractError, match=r"0 example\(s\) of a customer who bought.*longer"):
        sk.PurchasePropensity(horizon_days=10, n_snapshots=2).fit(tx)
    daily = pd.DataFrame(
        {
            "customer": np.tile([f"c{i}" for i in range(30)], 60),
            "ts": np.repeat(START + pd.to_timedelta(np.arange(60), unit="D"), 30),
            "amount": 10.0,
        }
    )
    tx = sk.Transactions.from_frame(daily, customer_id="customer", timestamp="ts", amount="amount")
    with pytest.raises(ContractError, match="Almost everybody bought: choose a shorter"):
        sk.PurchasePropensity(horizon_days=10, n_snapshots=3).fit(tx)


def test_buyers_from_too_few_customers_for_the_calibration_folds_are_refused():
    # 40 one-time customers, and one regular who buys every week: 12 buying examples.
    once = pd.DataFrame(
        {
            "customer": [f"c{i}" for i in range(40)],
            "ts": START + pd.to_timedelta(np.arange(40), unit="D"),
            "amount": 10.0,
        }
    )
    regular = pd.DataFrame(
        {"customer": "reg", "ts": START + pd.to_timedelta(np.arange(0, 400, 7), unit="D")}
    ).assign(amount=5.0)
    tx = sk.Transactions.from_frame(
        pd.concat([once, regular]), customer_id="customer", timestamp="ts", amount="amount"
    )
    with pytest.raises(ContractError, match=r"from only 1 customer\(s\)"):
        sk.PurchasePropensity(horizon_days=20, n_snapshots=12, step_days=25).fit(tx)


def _with_column(monkeypatch, values_for):
    extract = sk.extract_features

    def with_signup(transactions, **kwargs):
        features = extract(transactions, **kwargs)
        features.frame["signup"] = values_for(features.frame.index)
        return features

    monkeypatch.setattr(prop, "extract_features", with_signup)
    return with_signup


def test_a_feature_without_any_value_is_left_out_and_listed_without_a_warning(tx, monkeypatch):
    with_empty = _with_column(
        monkeypatch, lambda index: pd.Series(pd.NaT, index=index, dtype="M8[ns, UTC]")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = sk.PurchasePropensity(horizon_days=60, n_snapshots=3).fit(tx, as_of=AS_OF)
    assert model.features_left_out_ == ["signup"]
    assert "signup" not in model.feature_names_
    assert model.predict_proba(with_empty(tx, as_of=AS_OF)).between(0, 1).all()


def test_a_feature_valued_for_a_few_customers_is_left_out_with_a_warning(tx, monkeypatch):
    def few_valued(index):
        values = pd.Series(np.nan, index=index)
        values.iloc[:5] = 1.0
        return values

    with_few = _with_column(monkeypatch, few_valued)
    with pytest.warns(
        sk.errors.SegmentkitWarning, match=r"left out \['signup'\]: fewer than 30 customers"
    ):
        model = sk.PurchasePropensity(horizon_days=60, n_snapshots=3).fit(tx, as_of=AS_OF)
    assert model.features_left_out_ == ["signup"]
    assert model.predict_proba(with_few(tx, as_of=AS_OF)).between(0, 1).all()


def test_fit_takes_pandas_transactions(raw):
    with pytest.raises(TypeError, match=r"takes sk\.Transactions"):
        sk.PurchasePropensity().fit(raw)


def test_params_and_repr():
    model = sk.PurchasePropensity(30, n_snapshots=3)
    assert model.get_params()["horizon_days"] == 30
    assert model.set_params(calibration="isotonic") is model
    assert "calibration='isotonic'" in repr(model)
    with pytest.raises(InvalidParameterError, match="no parameters \\['horizon'\\]"):
        model.set_params(horizon=3)


def test_isotonic_calibration_also_fits(tx):
    model = sk.PurchasePropensity(horizon_days=60, n_snapshots=3, calibration="isotonic")
    model.fit(tx, as_of=AS_OF)
    assert model.evaluation_.metrics.loc["model", "auc"] > 0.7


def test_importing_the_model_does_not_load_scikit_learn():
    code = "import sys, segmentkit as sk; sk.PurchasePropensity(); print('sklearn' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_backtest_compares_the_propensity_with_the_purchase_model(sample_tx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the grocery sample does not suit BG/NBD
        bt = sk.backtest(
            sk.BetaGeoModel(time_unit="W"),
            sample_tx,
            calibration_end="2017-09-01",
            holdout_end="2017-11-30",
            compare=[sk.PurchasePropensity(horizon_days=90, n_snapshots=2)],
        )
    assert list(bt.metrics.index)[:2] == ["BG/NBD", "PurchasePropensity"]
    assert bt.metrics.loc["PurchasePropensity", "auc"] > 0.7


# -- real data ----------------------------------------------------------------------------


def test_cdnow_time_split(cdnow_tx):
    model = sk.PurchasePropensity(horizon_days=90, n_snapshots=4).fit(cdnow_tx, as_of="1998-07-01")
    ev = model.evaluation_
    assert ev.test_cutoff == pd.Timestamp("1998-04-02", tz="UTC")
    assert ev.n_test == 23_570
    assert ev.n_train == 3 * 23_570
    assert ev.base_rate == pytest.approx(3282 / 23_570)
    metrics = ev.metrics
    assert metrics.loc["model", "auc"] > 0.82
    # Calibrated: better Brier than either baseline turned into probabilities.
    assert (
        metrics.loc["model", "brier"]
        < metrics.loc[["frequency-only", "recency-only"], "brier"].min()
    )
    assert metrics.loc["model", "top_decile_lift"] > 3.5
    assert abs(ev.calibration["mean_predicted"].mean() - ev.base_rate) < 0.03
    assert "recency_days" in ev.importance.index[:3]


def test_complete_journey_time_split(journey_tx):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = sk.PurchasePropensity(horizon_days=30, n_snapshots=4).fit(journey_tx)
    # A year of history: the 365-day spend trend has no earlier year to compare with, so
    # it is empty for everyone and left out without a warning.
    assert model.features_left_out_ == ["spend_trend_365d"]
    ev = model.evaluation_
    assert ev.n_test == 2362
    assert model.snapshots_["later_customers"].tolist() == [75, 49, 32, 15]
    assert ev.metrics.loc["model", "auc"] > 0.78
    assert ev.metrics.loc["model", "auc"] > ev.metrics.loc["recency-only", "auc"]
    assert ev.metrics.loc["model", "brier"] < ev.metrics.loc["recency-only", "brier"]
