"""analyze_test: statistics against statsmodels and scipy, bookkeeping, warnings, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

import segmentkit as sk
from segmentkit.errors import InvalidParameterError, SegmentkitWarning, UnknownSegmentError
from segmentkit.timeline._abtest import COLUMNS, _bootstrap_means, _wilson, _ztest

ARMS = {"control": 0.2, "offer_a": 0.4, "offer_b": 0.4}


def _groups(n: int = 3000, arms=ARMS, segments: int = 0) -> sk.GroupAssignment:
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)]})
    if segments:
        frame["segment_id"] = np.arange(n) % segments
        frame["segment"] = "seg" + frame["segment_id"].astype(str)
        return sk.assign_groups(frame, arms=arms, salt="test")
    return sk.assign_groups(frame, arms=arms, salt="test", stratify_by=None)


def _outcomes(groups: sk.GroupAssignment, rates: dict, seed: int = 0) -> pd.DataFrame:
    """Every customer's conversion (at the arm's rate) and revenue (lognormal if bought)."""
    rng = np.random.default_rng(seed)
    arms = groups.table["arm"].map(rates).to_numpy()
    converted = rng.random(len(arms)) < arms
    revenue = np.where(converted, rng.lognormal(3, 1, len(arms)), 0.0)
    return pd.DataFrame(
        {"customer_id": groups.table["customer_id"], "converted": converted, "revenue": revenue}
    )


@pytest.fixture(scope="module")
def groups() -> sk.GroupAssignment:
    return _groups()


@pytest.fixture(scope="module")
def outcomes(groups) -> pd.DataFrame:
    return _outcomes(groups, {"control": 0.10, "offer_a": 0.16, "offer_b": 0.10})


@pytest.fixture(scope="module")
def analysis(groups, outcomes) -> sk.ExperimentAnalysis:
    return sk.analyze_test(groups, outcomes)


# --- the statistics ---------------------------------------------------------------------


def test_columns_are_the_documented_ones(analysis):
    assert list(analysis.table.columns) == COLUMNS
    assert COLUMNS[-2:] == ["conclusive", "note"]
    assert analysis.table["conclusive"].dtype == bool
    assert analysis.table["customers"].dtype == np.int64


def test_figures_match_statsmodels_and_scipy(groups, outcomes, analysis):
    table = analysis.table.set_index("arm")
    merged = groups.table.merge(outcomes, on="customer_id")
    control = merged[merged["arm"] == "control"]
    for arm in ARMS:
        part = merged[merged["arm"] == arm]
        row = table.loc[arm]
        x, n = int(part["converted"].sum()), len(part)
        assert (row["customers"], row["conversions"]) == (n, x)
        assert row["conversion_rate"] == pytest.approx(x / n)
        low, high = proportion_confint(x, n, alpha=0.05, method="wilson")
        assert row["conversion_ci_low"] == pytest.approx(low, abs=1e-12)
        assert row["conversion_ci_high"] == pytest.approx(high, abs=1e-12)
        money = part["revenue"].to_numpy()
        assert row["revenue_per_customer"] == pytest.approx(money.mean())
        low, high = stats.t.interval(0.95, n - 1, loc=money.mean(), scale=stats.sem(money))
        assert row["revenue_ci_low"] == pytest.approx(low, rel=1e-10)
        assert row["revenue_ci_high"] == pytest.approx(high, rel=1e-10)
        if arm == "control":
            assert math.isnan(row["conversion_lift"])
            assert math.isnan(row["conversion_p_value"])
            assert math.isnan(row["revenue_lift"])
            assert math.isnan(row["revenue_p_value"])
            continue
        xc, nc = int(control["converted"].sum()), len(control)
        _, p = proportions_ztest([x, xc], [n, nc])
        assert row["conversion_p_value"] == pytest.approx(p, rel=1e-10)
        assert row["conversion_lift"] == pytest.approx((x / n - xc / nc) / (xc / nc))
        welch = stats.ttest_ind(money, control["revenue"].to_numpy(), equal_var=False)
        assert row["revenue_p_value"] == pytest.approx(welch.pvalue, rel=1e-10)
        mean_c = control["revenue"].mean()
        assert row["revenue_lift"] == pytest.approx((money.mean() - mean_c) / mean_c)


def test_planted_effect_is_found_and_null_is_not(analysis):
    table = analysis.table.set_index("arm")
    assert table.loc["offer_a", "conversion_p_value"] < 0.05
    assert table.loc["offer_a", "conclusive"]
    assert "conversion higher than control, significant at 95%" in table.loc["offer_a", "note"]
    assert table.loc["offer_b", "conversion_p_value"] > 0.05
    assert "conversion: no significant difference" in table.loc["offer_b", "note"]
    assert table.loc["control", "note"] == "control"


def test_confidence_changes_intervals_only(groups, outcomes, analysis):
    wider = sk.analyze_test(groups, outcomes, confidence=0.99).table
    base = analysis.table
    assert (wider["conversion_ci_low"] < base["conversion_ci_low"]).all()
    assert (wider["revenue_ci_high"] > base["revenue_ci_high"]).all()
    pd.testing.assert_series_equal(wider["conversion_p_value"], base["conversion_p_value"])
    row = wider.iloc[0]
    low, high = proportion_confint(row["conversions"], row["customers"], 0.01, "wilson")
    assert (row["conversion_ci_low"], row["conversion_ci_high"]) == pytest.approx((low, high))


@settings(max_examples=200, deadline=None)
@given(
    n1=st.integers(1, 5000),
    n2=st.integers(1, 5000),
    f1=st.floats(0, 1),
    f2=st.floats(0, 1),
    confidence=st.floats(0.5, 0.999),
)
def test_wilson_and_ztest_match_statsmodels(n1, n2, f1, f2, confidence):
    x1, x2 = round(f1 * n1), round(f2 * n2)
    low, high = proportion_confint(x1, n1, alpha=1 - confidence, method="wilson")
    ours = _wilson(x1, n1, 1 - confidence)
    assert ours == pytest.approx((low, high), abs=1e-12)
    pooled = (x1 + x2) / (n1 + n2)
    if 0 < pooled < 1:
        _, p = proportions_ztest([x1, x2], [n1, n2])
        assert _ztest(x1, n1, x2, n2) == pytest.approx(p, rel=1e-9, abs=1e-300)
    else:
        assert math.isnan(_ztest(x1, n1, x2, n2))


@settings(max_examples=40, deadline=None)
@given(
    treated=st.lists(st.floats(0, 1e4, allow_nan=False), min_size=2, max_size=40),
    control=st.lists(st.floats(0, 1e4, allow_nan=False), min_size=2, max_size=40),
)
def test_revenue_p_value_matches_scipy_welch(treated, control):
    ids = [f"t{i}" for i in range(len(treated))] + [f"c{i}" for i in range(len(control))]
    arm = ["offer"] * len(treated) + ["control"] * len(control)
    table = pd.DataFrame(
        {
            "customer_id": ids,
            "segment_id": np.nan,
            "segment": None,
            "stratum": "All customers",
            "arm": arm,
            "bucket": 0.5,
        }
    )
    groups = sk.GroupAssignment(table, {"control": 0.5, "offer": 0.5}, "s", None)
    outcomes = pd.DataFrame({"customer_id": ids, "revenue": treated + control})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)
        row = sk.analyze_test(groups, outcomes, converted=None).table.iloc[1]
    a, b = np.array(treated), np.array(control)
    if a.var() == 0 and b.var() == 0:
        assert math.isnan(row["revenue_p_value"])
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ttest_ind(a, b, equal_var=False).pvalue
    if math.isnan(expected):
        assert math.isnan(row["revenue_p_value"])
    else:
        assert row["revenue_p_value"] == pytest.approx(expected, rel=1e-7, abs=1e-12)


# --- bootstrap --------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_close_to_welch(groups, outcomes, analysis):
    one = sk.analyze_test(groups, outcomes, revenue_test="bootstrap", n_bootstrap=500)
    two = sk.analyze_test(groups, outcomes, revenue_test="bootstrap", n_bootstrap=500)
    pd.testing.assert_frame_equal(one.table, two.table)
    other = sk.analyze_test(
        groups, outcomes, revenue_test="bootstrap", n_bootstrap=500, random_state=1
    )
    assert not other.table["revenue_ci_low"].equals(one.table["revenue_ci_low"])
    assert one.revenue_test == "bootstrap"
    # Conversion statistics do not depend on the revenue test.
    pd.testing.assert_series_equal(
        one.table["conversion_p_value"], analysis.table["conversion_p_value"]
    )
    # With ~600 customers per arm the bootstrap agrees with the t-interval closely.
    np.testing.assert_allclose(
        one.table["revenue_ci_low"], analysis.table["revenue_ci_low"], rtol=0.1
    )
    np.testing.assert_allclose(
        one.table["revenue_p_value"].dropna(),
        analysis.table["revenue_p_value"].dropna(),
        atol=0.1,
    )


def test_bootstrap_with_the_control_last(groups, outcomes):
    result = sk.analyze_test(
        groups, outcomes, control="offer_b", revenue_test="bootstrap", n_bootstrap=200
    )
    table = result.table.set_index("arm")
    assert list(table.index) == list(ARMS)
    assert table["revenue_p_value"].notna().tolist() == [True, True, False]
    # Each arm keeps its own seeded stream whichever arm is the control.
    default = sk.analyze_test(groups, outcomes, revenue_test="bootstrap", n_bootstrap=200)
    pd.testing.assert_series_equal(result.table["revenue_ci_low"], default.table["revenue_ci_low"])


def test_bootstrap_means_have_the_resampling_distribution():
    rng = np.random.default_rng(5)
    values = np.where(rng.random(400) < 0.2, rng.lognormal(3, 1, 400), 0.0)
    means = _bootstrap_means(values, 4000, np.random.default_rng(0))
    naive = np.random.default_rng(1).choice(values, size=(4000, len(values))).mean(axis=1)
    assert means.mean() == pytest.approx(values.mean(), rel=0.02)
    assert means.std() == pytest.approx(naive.std(), rel=0.08)
    assert means.std() == pytest.approx(values.std() / np.sqrt(len(values)), rel=0.08)


def test_bootstrap_in_blocks(monkeypatch):
    from segmentkit.timeline import _abtest

    values = np.arange(50, dtype=float)
    whole = _bootstrap_means(values, 300, np.random.default_rng(3))
    monkeypatch.setattr(_abtest, "_BLOCK", 10)
    blocked = _bootstrap_means(values, 300, np.random.default_rng(3))
    assert blocked.shape == (300,)
    assert blocked.mean() == pytest.approx(whole.mean(), rel=0.05)


def test_bootstrap_edge_cases():
    assert _bootstrap_means(np.array([]), 100, np.random.default_rng(0)) is None
    zeros = _bootstrap_means(np.zeros(5), 100, np.random.default_rng(0))
    assert (zeros == 0).all()


def test_bootstrap_of_identical_arms_is_not_significant():
    groups = _groups(2000, arms={"control": 0.5, "offer": 0.5})
    outcomes = pd.DataFrame({"customer_id": groups.table["customer_id"], "revenue": 0.0})
    with pytest.warns(SegmentkitWarning, match="too few customers or conversions"):
        result = sk.analyze_test(
            groups, outcomes, converted=None, revenue_test="bootstrap", n_bootstrap=100
        )
    assert result.table["revenue_p_value"].iloc[1] == 1.0
    assert math.isnan(result.table["conversion_p_value"].iloc[1])


# --- segments, bookkeeping --------------------------------------------------------------


def test_rows_per_segment_and_arm():
    groups = _groups(6000, segments=3)
    outcomes = _outcomes(groups, {"control": 0.2, "offer_a": 0.25, "offer_b": 0.2})
    table = sk.analyze_test(groups, outcomes).table
    assert table["segment"].tolist() == [
        s for s in ["All customers", "seg0", "seg1", "seg2"] for _ in range(3)
    ]
    assert table["arm"].tolist() == list(ARMS) * 4
    overall = table[table["segment"] == "All customers"].set_index("arm")
    parts = table[table["segment"] != "All customers"].groupby("arm")[["customers", "conversions"]]
    pd.testing.assert_frame_equal(
        parts.sum().loc[list(ARMS)], overall[["customers", "conversions"]], check_names=False
    )
    # Each segment's arms are compared with that segment's control.
    seg1 = table[table["segment"] == "seg1"].set_index("arm")
    expected = proportions_ztest(
        [seg1.loc["offer_a", "conversions"], seg1.loc["control", "conversions"]],
        [seg1.loc["offer_a", "customers"], seg1.loc["control", "customers"]],
    )[1]
    assert seg1.loc["offer_a", "conversion_p_value"] == pytest.approx(expected)


def test_sample_data_segments(sample_tx):
    features = sk.extract_features(sample_tx, as_of="2017-10-01")
    seg = sk.RFMSegmenter().fit_predict(features)
    groups = sk.assign_groups(seg, arms={"control": 0.5, "offer": 0.5}, salt="october")
    later = sample_tx.data[sample_tx.data["timestamp"] > features.as_of]
    outcomes = later.groupby("customer_id", as_index=False).agg(revenue=("amount", "sum"))
    with pytest.warns(SegmentkitWarning) as caught:
        result = sk.analyze_test(groups, outcomes, converted=None)
    messages = [str(w.message) for w in caught]
    assert any("are in no arm of the test" in m for m in messages)
    assert any("comparisons with the control have too few" in m for m in messages)
    table = result.table
    assert table["segment"].iloc[0] == "All customers"
    segments = [s for s in pd.unique(table["segment"]) if s != "All customers"]
    ids = seg.catalog.set_index("segment")["segment_id"]
    assert list(ids.loc[segments]) == sorted(ids.loc[segments])
    assert (
        result.missing_outcomes
        == len(groups) - outcomes["customer_id"].isin(groups.table["customer_id"]).sum()
    )
    assert (
        len(result.unknown_customers)
        == (~outcomes["customer_id"].isin(groups.table["customer_id"])).sum()
    )
    small = table[(table["segment"] == "Champions") & (table["arm"] == "offer")].iloc[0]
    assert not small["conclusive"]
    assert small["note"].startswith("too few to conclude: offer has 83 customers")


def test_missing_outcomes_count_as_no_conversion(groups):
    some = groups.table["customer_id"].iloc[:10]
    outcomes = pd.DataFrame({"customer_id": some, "converted": True, "revenue": 5.0})
    with pytest.warns(SegmentkitWarning, match="too few"):
        result = sk.analyze_test(groups, outcomes)
    assert result.missing_outcomes == len(groups) - 10
    overall = result.table[result.table["segment"] == "All customers"]
    assert overall["customers"].sum() == len(groups)
    assert overall["conversions"].sum() == 10
    assert (overall["revenue_per_customer"] * overall["customers"]).sum() == pytest.approx(50)
    assert len(result.unknown_customers) == 0


def test_unknown_customers_are_reported(groups, outcomes):
    extra = pd.DataFrame({"customer_id": ["x1", "x2"], "converted": [True, False], "revenue": 1.0})
    with pytest.warns(SegmentkitWarning, match=r"2 customer\(s\) of the outcomes are in no arm"):
        result = sk.analyze_test(groups, pd.concat([outcomes, extra]))
    assert list(result.unknown_customers) == ["x1", "x2"]
    assert result.table["customers"].iloc[:3].sum() == len(groups)


def test_integer_customer_ids_match_text_ids():
    frame = pd.DataFrame({"customer_id": [str(i) for i in range(400)]})
    groups = sk.assign_groups(
        frame, arms={"control": 0.5, "offer": 0.5}, salt="test", stratify_by=None
    )
    outcomes = pd.DataFrame({"customer_id": range(400), "converted": 1, "revenue": 2.0})
    result = sk.analyze_test(groups, outcomes)
    assert result.missing_outcomes == 0
    assert result.table["conversion_rate"].tolist() == [1.0, 1.0]


def test_converted_from_revenue_and_conversion_only(groups, outcomes):
    derived = sk.analyze_test(groups, outcomes.drop(columns="converted"), converted=None)
    assert (
        derived.table["conversions"] == sk.analyze_test(groups, outcomes).table["conversions"]
    ).all()
    only = sk.analyze_test(groups, outcomes.drop(columns="revenue"), revenue=None).table
    for column in ("revenue_per_customer", "revenue_ci_low", "revenue_lift", "revenue_p_value"):
        assert only[column].isna().all()
    assert "revenue" not in only["note"].iloc[1]


def test_zero_control_gives_no_lift():
    groups = _groups(1000, arms={"control": 0.5, "offer": 0.5})
    offer = groups.members("offer")
    outcomes = pd.DataFrame({"customer_id": offer[:50], "revenue": 10.0})
    with pytest.warns(SegmentkitWarning, match="1 of 1 comparisons"):
        result = sk.analyze_test(groups, outcomes, converted=None)
    row = result.table.iloc[1]
    assert math.isnan(row["conversion_lift"])
    assert math.isnan(row["revenue_lift"])
    assert row["conversion_p_value"] < 1e-10
    assert "control has 0 conversions" in row["note"]


def test_empty_arm_in_a_segment():
    frame = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "segment_id": [0, 0, 1], "segment": ["x", "x", "y"]}
    )
    groups = sk.assign_groups(frame, arms={"control": 0.5, "offer": 0.5}, salt="test")
    outcomes = pd.DataFrame({"customer_id": ["a"], "converted": [True], "revenue": [1.0]})
    with pytest.warns(SegmentkitWarning):
        table = sk.analyze_test(groups, outcomes).table
    y = table[table["segment"] == "y"]
    assert (y["customers"] == [1, 0]).all() or (y["customers"] == [0, 1]).all()
    empty = y[y["customers"] == 0].iloc[0]
    assert math.isnan(empty["conversion_rate"])
    assert math.isnan(empty["conversion_ci_low"])


def test_groups_from_a_file(tmp_path, groups, outcomes, analysis):
    path = groups.to_csv(tmp_path / "groups.csv")
    pd.testing.assert_frame_equal(sk.analyze_test(path, outcomes).table, analysis.table)


def test_summary_and_repr(analysis):
    summary = analysis.summary()
    assert list(summary.index) == list(ARMS)
    assert summary.loc["offer_a", "conclusive"]
    text = repr(analysis)
    assert text.startswith("<ExperimentAnalysis: 3000 customers, control 'control', 95%")
    assert "2 of 2 comparisons conclusive" in text
    assert "conversion lift" in text
    with pytest.raises(UnknownSegmentError, match="No segment 'VIP'"):
        analysis.summary("VIP")
    assert analysis.control == "control"
    assert analysis.confidence == 0.95
    assert (analysis.min_customers, analysis.min_conversions) == (100, 5)


def test_other_control_name(groups, outcomes):
    result = sk.analyze_test(groups, outcomes, control="offer_b")
    table = result.table.set_index("arm")
    assert math.isnan(table.loc["offer_b", "conversion_p_value"])
    assert not math.isnan(table.loc["control", "conversion_p_value"])


def test_thresholds_decide_conclusive(groups, outcomes):
    with pytest.warns(SegmentkitWarning, match="2 of 2 comparisons"):
        strict = sk.analyze_test(groups, outcomes, min_customers=10_000)
    assert not strict.table["conclusive"].any()
    assert "needs 10000 customers and 5 conversions" in strict.table["note"].iloc[1]


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("control", "holdout", r"control 'holdout' is not an arm of the test\. Arms: "),
        (
            "confidence",
            0,
            r"'confidence' parameter of analyze_test\(\) must be a float in the range "
            r"\(0, 1\)\. Got 0 ",
        ),
        ("confidence", 1.0, r"'confidence' parameter .* range \(0, 1\)\. Got 1\.0 "),
        ("confidence", "0.95", r"'confidence' parameter .* range \(0, 1\)\. Got '0\.95' "),
        ("confidence", True, r"'confidence' parameter .* range \(0, 1\)\. Got True "),
        (
            "revenue_test",
            "mannwhitney",
            r"'revenue_test' parameter .* one of \['bootstrap', 'welch'\]",
        ),
        (
            "n_bootstrap",
            10,
            r"'n_bootstrap' parameter .* an int in the range \[100, inf\)\. Got 10 ",
        ),
        ("n_bootstrap", 500.0, r"'n_bootstrap' parameter .* an int in the range \[100, inf\)"),
        ("random_state", None, r"'random_state' parameter .* an int in the range \[0, inf\)"),
        ("random_state", -1, r"'random_state' parameter .* an int in the range \[0, inf\)"),
        ("min_customers", 1, r"'min_customers' parameter .* an int in the range \[2, inf\)"),
        ("min_conversions", -1, r"'min_conversions' parameter .* an int in the range \[0, inf\)"),
        ("min_conversions", 2.5, r"'min_conversions' parameter .* Got 2\.5 instead"),
        ("customer", "id", r"no column \['id'\]"),
        ("converted", "bought", r"no column \['bought'\]"),
        ("revenue", "sales", r"no column \['sales'\]"),
    ],
)
def test_invalid_parameters(groups, outcomes, keyword, value, message):
    with pytest.raises(InvalidParameterError, match=message):
        sk.analyze_test(groups, outcomes, **{keyword: value})


def test_nothing_to_compare(groups, outcomes):
    with pytest.raises(InvalidParameterError, match="at least one of 'converted' and 'revenue'"):
        sk.analyze_test(groups, outcomes, converted=None, revenue=None)


def test_outcomes_must_be_a_frame(groups):
    with pytest.raises(
        InvalidParameterError,
        match=r"'outcomes' parameter .* a pandas DataFrame.*Got \{'customer_id'",
    ):
        sk.analyze_test(groups, {"customer_id": ["c1"]})


def test_groups_must_be_readable(outcomes):
    with pytest.raises(ValueError, match="needs the columns"):
        sk.analyze_test(pd.DataFrame({"customer_id": ["a"]}), outcomes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: pd.concat([o, o.iloc[:2]]), r"2 customer\(s\) have more than one outcome"),
        (lambda o: o.assign(customer_id=[None, *o["customer_id"][1:]]), "have no customer id"),
        (lambda o: o.assign(converted=[None, *o["converted"][1:]]), "conversion column"),
        (lambda o: o.assign(converted="yes"), "must hold booleans or 0/1"),
        (lambda o: o.assign(converted=2), "must hold booleans or 0/1"),
        (lambda o: o.assign(revenue="10"), "must hold numbers"),
        (lambda o: o.assign(revenue=True), "must hold numbers"),
        (lambda o: o.assign(revenue=[np.nan, *o["revenue"][1:]]), "missing or infinite"),
        (lambda o: o.assign(revenue=[np.inf, *o["revenue"][1:]]), "missing or infinite"),
    ],
)
def test_invalid_outcomes(groups, outcomes, change, message):
    with pytest.raises(ValueError, match=message):
        sk.analyze_test(groups, change(outcomes.reset_index(drop=True)))


def test_numeric_conversion_flags(groups, outcomes, analysis):
    flags = outcomes.assign(converted=outcomes["converted"].astype(int))
    pd.testing.assert_frame_equal(sk.analyze_test(groups, flags).table, analysis.table)


# --- multiple comparisons ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["holm", "bonferroni"])
def test_adjusted_p_values_match_statsmodels(method):
    from statsmodels.stats.multitest import multipletests

    groups = _groups(6000, segments=4)
    outcomes = _outcomes(groups, {"control": 0.2, "offer_a": 0.23, "offer_b": 0.2}, seed=3)
    result = sk.analyze_test(groups, outcomes)
    adjusted = result.adjusted_p_values(method)
    assert list(adjusted.columns) == [
        "segment",
        "arm",
        "conversion_p_value",
        "conversion_p_value_adjusted",
        "revenue_p_value",
        "revenue_p_value_adjusted",
    ]
    assert len(adjusted) == 5 * 2
    assert "control" not in set(adjusted["arm"])
    for metric in ("conversion", "revenue"):
        raw = adjusted[f"{metric}_p_value"].to_numpy()
        expected = multipletests(raw, method=method)[1]
        np.testing.assert_allclose(adjusted[f"{metric}_p_value_adjusted"], expected, rtol=1e-12)
        assert (adjusted[f"{metric}_p_value_adjusted"] >= raw).all()


# multipletests takes ~60 ms a call: few examples, each with many p-values.
@settings(max_examples=25, deadline=None)
@given(p_values=st.lists(st.one_of(st.floats(0, 1), st.just(math.nan)), max_size=30))
def test_holm_matches_statsmodels_and_skips_missing(p_values):
    from statsmodels.stats.multitest import multipletests

    from segmentkit.timeline._abtest import _adjust

    values = np.array(p_values, dtype=float)
    ours = _adjust(values, "holm")
    present = ~np.isnan(values)
    assert np.isnan(ours[~present]).all()
    if present.any():
        expected = multipletests(values[present], method="holm")[1]
        np.testing.assert_allclose(ours[present], expected, rtol=1e-12, atol=1e-300)


def test_adjusted_p_values_method_is_checked(analysis):
    with pytest.raises(
        InvalidParameterError,
        match=r"'method' parameter of ExperimentAnalysis\.adjusted_p_values\(\) must be one "
        r"of \['bonferroni', 'holm'\]",
    ):
        analysis.adjusted_p_values("fdr_bh")


def test_outcomes_indexed_by_customer(groups, outcomes, analysis):
    indexed = outcomes.set_index("customer_id")
    pd.testing.assert_frame_equal(sk.analyze_test(groups, indexed).table, analysis.table)


def test_conversion_flags_in_an_object_column(groups, outcomes, analysis):
    mixed = outcomes.assign(converted=outcomes["converted"].astype(object))
    pd.testing.assert_frame_equal(sk.analyze_test(groups, mixed).table, analysis.table)


def test_float_customer_ids_match_integer_text():
    frame = pd.DataFrame({"customer_id": [str(i) for i in range(400)]})
    groups = sk.assign_groups(
        frame, arms={"control": 0.5, "offer": 0.5}, salt="test", stratify_by=None
    )
    outcomes = pd.DataFrame({"customer_id": np.arange(400.0), "converted": 1, "revenue": 2.0})
    assert sk.analyze_test(groups, outcomes).missing_outcomes == 0


def test_no_outcomes_at_all(groups):
    empty = pd.DataFrame({"customer_id": [], "converted": [], "revenue": []})
    with pytest.warns(SegmentkitWarning, match="2 of 2 comparisons"):
        result = sk.analyze_test(groups, empty)
    assert result.missing_outcomes == len(groups)
    assert (result.table["conversions"] == 0).all()
    assert (result.table["revenue_per_customer"] == 0).all()


def test_notes_for_no_variation_and_a_significant_drop():
    groups = _groups(1000, arms={"control": 0.5, "offer": 0.5})
    rng = np.random.default_rng(0)
    base = np.where(groups.table["arm"] == "control", 100.0, 50.0)
    outcomes = pd.DataFrame(
        {
            "customer_id": groups.table["customer_id"],
            "converted": True,
            "revenue": base + rng.normal(0, 5, len(base)),
        }
    )
    row = sk.analyze_test(groups, outcomes).table.iloc[1]
    assert row["conclusive"]
    assert math.isnan(row["conversion_p_value"])
    assert row["revenue_lift"] == pytest.approx(-0.5, abs=0.02)
    assert row["note"] == (
        "conversion: no test (no variation); revenue lower than control, significant at 95%"
    )
