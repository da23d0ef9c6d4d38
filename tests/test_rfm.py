"""RFMSegmenter: scores, tie policy, reuse of cut points, the named grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import segmentkit as sk
from segmentkit.engines._rfm import CLASSIC_GRID, _apply_cuts, _learn_cuts
from segmentkit.errors import NotFittedError


def features(recency, frequency, monetary) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(len(recency))],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
        }
    )


def test_scores_on_distinct_values_are_equal_quintiles():
    n = 100
    frame = features(np.arange(n, dtype=float), np.arange(1, n + 1), np.arange(n) * 10.0)
    seg = sk.RFMSegmenter().fit_predict(frame)
    scores = seg.assignments
    assert scores["f_score"].value_counts().sort_index().tolist() == [20] * 5
    # Recency is reversed: the most recent customers score 5.
    assert scores.loc[scores["customer_id"] == "c000", "r_score"].item() == 5
    assert scores.loc[scores["customer_id"] == "c099", "r_score"].item() == 1


def test_tie_policy_equal_values_equal_scores_and_lowest_value_scores_one():
    # 60% one-time buyers, as in real shops.
    frequency = [1] * 60 + [2] * 15 + [3] * 10 + [5] * 10 + [9] * 5
    frame = features([10.0] * 100, frequency, np.linspace(1, 100, 100))
    seg = sk.RFMSegmenter().fit_predict(frame)
    by_value = seg.assignments.assign(f=frequency).groupby("f")["f_score"].agg(["min", "max"])
    assert (by_value["min"] == by_value["max"]).all()
    assert by_value.loc[1, "min"] == 1
    assert by_value["min"].is_monotonic_increasing
    # The block of ones starts at rank 1 and covers 60%: scores 2 and 3 stay unused.
    assert by_value["min"].tolist() == [1, 4, 4, 5, 5]
    # Everyone has the same recency: all share one score, the lowest.
    assert set(seg.assignments["r_score"]) == {1}


def test_thresholds_are_learned_at_fit_and_reused_by_predict():
    train = features(np.arange(100.0), np.arange(1, 101), np.arange(100) * 10.0)
    model = sk.RFMSegmenter().fit(train)
    new = features([-5.0, 1000.0], [1000, 0], [1e9, 1.0])
    scores = model.predict(new).assignments
    assert scores.loc[0, ["r_score", "f_score", "m_score"]].tolist() == [5, 5, 5]
    # Frequency 0: not a buyer, whatever the other values.
    assert scores.loc[1, "segment"] == "No purchases"
    assert model.thresholds_["recency"].tolist() == [79.0, 59.0, 39.0, 19.0]
    assert model.thresholds_["frequency"].tolist() == [21.0, 41.0, 61.0, 81.0]


def test_predict_on_training_data_equals_fit_predict(sample_features):
    model = sk.RFMSegmenter()
    first = model.fit_predict(sample_features)
    second = model.predict(sample_features)
    pd.testing.assert_frame_equal(first.assignments, second.assignments)


def test_rfm_score_text_and_fm_grid():
    frame = features(np.arange(100.0), np.arange(1, 101), np.arange(100) * 10.0)
    assignments = sk.RFMSegmenter().fit_predict(frame).assignments
    row = assignments.iloc[0]  # most recent, least frequent, lowest spend
    assert row["rfm_score"] == f"{row.r_score}{row.f_score}{row.m_score}" == "511"
    assert row["segment"] == "New customers"
    top = assignments.iloc[50]
    assert top["rfm_score"] == "333"
    assert top["segment"] == "Need attention"


def test_classic_grid_names_every_cell_with_the_eleven_classic_segments():
    names = {name for row in CLASSIC_GRID for name in row}
    assert len(CLASSIC_GRID) == 5
    assert all(len(row) == 5 for row in CLASSIC_GRID)
    assert names == {
        "Champions",
        "Loyal customers",
        "Potential loyalists",
        "New customers",
        "Promising",
        "Need attention",
        "About to sleep",
        "At risk",
        "Can't lose them",
        "Hibernating",
        "Lost",
    }
    grid = sk.RFMSegmenter.classic_grid()
    assert grid.loc[5, 5] == "Champions"
    assert grid.loc[1, 1] == "Lost"


def test_segment_rules_are_visible_in_the_catalog(sample_features):
    seg = sk.RFMSegmenter().fit_predict(sample_features)
    champions = next(s for s in seg.segments if s.name == "Champions")
    assert "(r_score == 5 and fm_score == 4)" in champions.rule


def test_custom_segment_map_with_default():
    frame = features(np.arange(100.0), np.arange(1, 101), np.arange(100) * 10.0)
    model = sk.RFMSegmenter(
        n_bins=4,
        segment_map={"Best": "r_score >= 3 and m_score == 4", "Gone": "r_score == 1"},
        default_segment="Middle",
    )
    seg = model.fit_predict(frame)
    # Most valuable first; the empty non-buyer segments last, in id order.
    assert list(seg.catalog["segment"]) == [
        "Middle",
        "Gone",
        "Best",
        "No purchases",
        "Returns only",
    ]
    assert seg.catalog["revenue"].is_monotonic_decreasing
    assert seg.assignments["r_score"].max() == 4
    assert seg.catalog.set_index("segment").loc["Gone", "customers"] == 25


def test_custom_map_unknown_name_is_reported_with_position():
    frame = features(np.arange(10.0), np.arange(1, 11), np.arange(10.0))
    model = sk.RFMSegmenter(segment_map={"Best": "r_scor >= 3"})
    with pytest.raises(sk.errors.RuleSyntaxError, match=r"Unknown feature 'r_scor'.*r_score"):
        model.fit(frame)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"n_bins": 1},
            ValueError,
            r"The 'n_bins' parameter of RFMSegmenter must be an int in the range \[2, 10\]. "
            r"Got 1 instead.",
        ),
        ({"n_bins": 4}, ValueError, r"segment_map='classic' is defined for n_bins=5"),
        ({"segment_map": "fancy"}, TypeError, r"'segment_map' parameter.*Got 'fancy' instead"),
        ({"recency": 3}, TypeError, r"'recency' parameter of RFMSegmenter must be a str"),
        ({"monetary": "spend"}, ValueError, r"needs the features \['spend'\]"),
    ],
)
def test_bad_parameters(params, error, match):
    frame = features(np.arange(10.0), np.arange(1, 11), np.arange(10.0))
    with pytest.raises(error, match=match):
        sk.RFMSegmenter(**params).fit(frame)


def test_needs_a_buyer():
    frame = features([np.nan, np.nan], [0, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="at least one customer with a purchase"):
        sk.RFMSegmenter().fit(frame)


def test_unfitted_predict_raises():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        sk.RFMSegmenter().predict(features([1.0], [1], [1.0]))


def test_sklearn_estimator_contract():
    model = sk.RFMSegmenter(n_bins=4, segment_map={"A": "r_score == 4"})
    assert model.get_params()["n_bins"] == 4
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "thresholds_")
    assert model.set_params(n_bins=3) is model
    assert repr(sk.RFMSegmenter(n_bins=5)) == "RFMSegmenter()"


def _sorted_cuts(values: np.ndarray, n_bins: int) -> np.ndarray:
    # The tie policy written out with a full sort: the reference the fast path must match.
    finite = np.sort(values[np.isfinite(values)])
    n = len(finite)
    scores = np.minimum(np.searchsorted(finite, finite, side="left") * n_bins // n + 1, n_bins)
    cuts = np.full(n_bins - 1, np.inf)
    for level in range(2, n_bins + 1):
        reached = finite[scores >= level]
        if len(reached):
            cuts[level - 2] = reached[0]
    return cuts


@pytest.mark.parametrize("n", [1, 3, 7, 100, 5_000, 70_000, 300_000])
@pytest.mark.parametrize("n_bins", [2, 5, 10])
def test_cut_points_match_a_full_sort_on_ties_and_large_inputs(n, n_bins):
    from segmentkit.engines._rfm import _learn_cuts

    rng = np.random.default_rng(n * 31 + n_bins)
    samples = {
        "continuous": rng.exponential(100.0, n),
        "few values": rng.geometric(0.6, n).astype(float),
        "one value": np.full(n, 3.0),
        "cents": np.round(rng.gamma(2.0, 30.0, n), 2),
        "sorted": np.sort(rng.integers(0, 50, n)).astype(float),
        "with missing": np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1, n)),
        "with inf": np.where(rng.random(n) < 0.1, np.inf, rng.integers(0, 9, n) * 1.0),
    }
    for name, values in samples.items():
        expected = _sorted_cuts(values, n_bins)
        np.testing.assert_array_equal(_learn_cuts(values, n_bins), expected, err_msg=name)


@pytest.mark.parametrize("n", [1, 2, 9, 70_000, 200_001])
def test_sorted_at_matches_numpy_sort(n):
    from segmentkit.results._segmentation import sorted_at

    rng = np.random.default_rng(n)
    for values in (
        rng.normal(size=n),
        rng.integers(0, 4, n).astype(float),
        np.repeat(rng.normal(size=n // 1000 + 1), 1000)[:n],
        # Every 64th value huge: a strided sample misleads the bracket (fallback path).
        np.where(np.arange(n) % 64 == 0, 1e9, rng.normal(size=n)),
    ):
        positions = sorted({0, n // 3, n // 2, (n - 1) // 2, n - 1})
        expected = np.sort(values)[positions]
        np.testing.assert_array_equal(sorted_at(values, positions), expected)


def test_catalog_medians_match_pandas_groupby_median():
    from segmentkit.results._segmentation import _catalog

    rng = np.random.default_rng(7)
    n = 150_000
    frame = pd.DataFrame(
        {
            "recency_days": np.where(rng.random(n) < 0.1, np.nan, rng.exponential(90, n)),
            "frequency": rng.geometric(0.5, n),
            "monetary": np.round(rng.gamma(2.0, 40.0, n), 2),
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    labels = rng.choice([0, 1, 2, 4], size=n, p=[0.6, 0.3, 0.0999, 0.0001])
    assignments = pd.DataFrame({"customer_id": frame.index, "segment_id": labels})
    segments = [sk.Segment(i, f"s{i}") for i in range(6)]
    catalog = _catalog(assignments, segments, frame)
    for name in frame.columns:
        expected = frame[name].astype(float).groupby(labels).median().reindex(range(6))
        np.testing.assert_array_equal(catalog[f"median_{name}"].to_numpy(), expected.to_numpy())


def test_text_columns_keep_the_dtype_pandas_gives_text(sample_features):
    assignments = sk.RFMSegmenter().fit_predict(sample_features).assignments
    text = pd.Series(np.array(["x"], dtype=object)).dtype
    for column in ("customer_id", "segment", "rfm_score"):
        assert assignments[column].dtype == text
    buyers = assignments["segment"] != "No purchases"
    expected = (
        assignments["r_score"].astype(str)
        + assignments["f_score"].astype(str)
        + assignments["m_score"].astype(str)
    )
    assert (assignments["rfm_score"][buyers] == expected[buyers]).all()
    assert (assignments["rfm_score"][~buyers] == "").all()


@pytest.mark.parametrize(
    ("ids", "labels"),
    [
        ([0, 1, 2, 11], [2, 0, 11, 11, 1]),
        ([-1, 3, 5], [5, -1, 4, 7, -2]),
        ([0, 10**12], [10**12, 0, 5]),
        ([0, 1], []),
    ],
)
def test_label_positions_match_index_get_indexer(ids, labels):
    from segmentkit.results._segmentation import label_positions

    ids = np.array(ids, dtype=np.int64)
    labels = np.array(labels, dtype=np.int64)
    expected = pd.Index(ids).get_indexer(labels)
    np.testing.assert_array_equal(label_positions(ids, labels), expected)


def test_amounts_differing_in_their_last_bits_score_alike():
    # The same lines summed in another order (another backend) differ in the last bits;
    # learned cuts and scores must not depend on that.
    rng = np.random.default_rng(0)
    base = np.round(rng.gamma(2.0, 100.0, 500), 2)
    base[::7] = 175.72  # many customers on one amount, so a cut falls on it
    nudged = base.copy()
    nudged[::14] = np.nextafter(nudged[::14], np.inf)
    nudged[1::14] = np.nextafter(nudged[1::14], -np.inf)
    cuts, cuts_nudged = _learn_cuts(base, 5), _learn_cuts(nudged, 5)
    np.testing.assert_allclose(cuts, cuts_nudged, rtol=1e-12)
    for learned in (cuts, cuts_nudged):
        np.testing.assert_array_equal(_apply_cuts(base, learned), _apply_cuts(nudged, learned))


def test_distinct_amounts_are_still_told_apart():
    values = np.array([1.0, 1.0 + 1e-6, 2.0, 3.0, 4.0])
    assert _apply_cuts(values, np.array([1.0 + 1e-6])).tolist() == [1, 2, 2, 2, 2]
