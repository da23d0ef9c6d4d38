"""Cluster names backed by evidence: every word is a claim the segment's profile bears out.

A word in a cluster's name ("Frequent", "Lapsed", "High spend") claims that the segment's
median lies on that side of the base median. These tests derive each word's claim from
the feature catalog and check it against the medians, on random data (hypothesis) and
on the engines' output for the quickstart sample and the shared data sets.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.engines._clustering import BUYER, non_buyer_kinds
from segmentkit.engines._naming import (
    MIN_EFFECT,
    TYPICAL,
    cluster_differences,
    describe_clusters,
    phrase,
    word_for,
)
from segmentkit.errors import SegmentkitWarning

FEATURES = ["recency_days", "frequency", "monetary", "avg_order_value", "return_rate"]


def _claims(token: str, columns: list[str]) -> list[tuple[str, bool]]:
    """The (feature, higher) pairs a name word can stand for."""
    return [
        (feature, higher)
        for feature in columns
        for higher in (True, False)
        if word_for(feature, higher=higher) == token
    ]


def _assert_names_backed(frame: pd.DataFrame, labels: np.ndarray, names: dict[int, str]) -> None:
    """Every word of every name holds against the medians; names unique as word sets."""
    numeric = frame.select_dtypes("number")
    columns = list(numeric.columns)
    for cluster, name in names.items():
        members = labels == cluster
        tokens = name.split(" · ")
        for token in tokens:
            if token == TYPICAL or token.startswith(("higher ", "lower ")):
                continue  # no claim against the base (a comparison with another cluster)
            claims = _claims(token, columns)
            assert claims, f"{name!r}: the word {token!r} stands for no feature"
            held = []
            for feature, higher in claims:
                values = numeric[feature].dropna()
                inside = values[members[numeric[feature].notna().to_numpy()]]
                segment, base = inside.median(), values.median()
                held.append(segment > base if higher else segment < base)
            assert any(held), f"{name!r}: {token!r} is not borne out by the medians"
    word_sets = [frozenset(name.split(" · ")) for name in names.values()]
    assert len(set(word_sets)) == len(word_sets), names


# ----------------------------------------------------------------- describe_clusters


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(2, 5),
    st.sampled_from(["normal", "zeros", "ties"]),
)
def test_every_name_word_is_borne_out_by_the_medians(seed, k, shape):
    rng = np.random.default_rng(seed)
    n = 300
    labels = rng.integers(0, k, n)
    shift = rng.normal(0, 1.5, (k, len(FEATURES)))[labels]
    values = rng.normal(0, 1, (n, len(FEATURES))) + shift
    if shape == "zeros":  # most customers at 0, as return rates are
        values = np.where(rng.random((n, len(FEATURES))) < 0.7, 0.0, np.abs(values))
    if shape == "ties":
        values = np.round(values)
    frame = pd.DataFrame(values, columns=FEATURES)
    described = describe_clusters(frame, labels, list(range(k)))
    _assert_names_backed(frame, labels, {i: name for i, (name, _) in enumerate(described)})


def test_a_tiny_median_difference_does_not_name_a_cluster():
    # The case: most customers never return anything; a cluster whose median
    # return rate is 0.5% against 0 is not "Frequent returns".
    rng = np.random.default_rng(0)
    n = 2000
    labels = (np.arange(n) < 400).astype(int)
    returns = np.where(rng.random(n) < 0.8, 0.0, rng.uniform(0, 0.6, n))
    returns[labels == 1] = np.where(rng.random(400) < 0.5, 0.005, 0.0)
    frame = pd.DataFrame({"return_rate": returns, "frequency": rng.poisson(5, n)})
    [(name, text)] = describe_clusters(frame, labels, [1])
    assert "returns" not in name
    assert name == TYPICAL
    assert text.startswith("400 customers;")


def test_words_follow_the_catalog_order_and_direction():
    frame = pd.DataFrame(
        {
            "monetary": [10.0] * 50 + [900.0] * 50,
            "recency_days": [300.0] * 50 + [3.0] * 50,
            "frequency": [1] * 50 + [30] * 50,
        }
    )
    labels = np.array([0] * 50 + [1] * 50)
    names = [name for name, _ in describe_clusters(frame, labels, [1, 0])]
    # Recency, orders, spend: the catalog's order, whatever the frame's; "Recent" for a
    # lower recency, as the catalog words it.
    assert names == ["Recent · Frequent · High spend", "Lapsed · Infrequent · Low spend"]


def test_a_cluster_like_the_base_is_called_typical():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"frequency": rng.poisson(5, 600), "monetary": rng.gamma(2, 50, 600)})
    labels = rng.integers(0, 2, 600)
    names = [name for name, _ in describe_clusters(frame, labels, [0, 1])]
    assert names[0] == TYPICAL
    assert names[1].startswith(TYPICAL + " · ")  # told apart from the first, not numbered


def test_clusters_without_numeric_features_are_counted_and_told_apart():
    frame = pd.DataFrame({"top_category": ["books", "toys", "toys"]})
    described = describe_clusters(frame, np.array([0, 1, 1]), [0, 1])
    assert described == [
        (TYPICAL, "1 customer."),
        (f"{TYPICAL} · (2)", "2 customers."),
    ]


def test_cluster_differences_measure_cliffs_delta_against_the_rest():
    frame = pd.DataFrame({"frequency": [1, 2, 3, 4, 5, 6]})
    [difference] = cluster_differences(frame, np.array([0, 0, 1, 0, 1, 1]), [1])[1]
    # Members 3, 5, 6 against 1, 2, 4: 8 of 9 pairs higher, 1 lower.
    assert difference.effect == pytest.approx(7 / 9)
    assert difference.median == 5
    assert difference.base_median == 3.5
    assert abs(difference.effect) >= MIN_EFFECT


@pytest.mark.parametrize(
    ("feature", "value", "typical", "text"),
    [
        ("monetary", 505.9, 291.9, "Net spend 505.90, 1.7× the typical 291.90"),
        ("monetary", 20.0, 80.0, "Net spend 20.00, 25% of the typical 80.00"),
        ("monetary", -5.0, 80.0, "Net spend -5.00 (typical 80.00)"),
        ("frequency", 11, 2, "11 orders (typical 2)"),
        ("frequency", 1, 2, "1 order (typical 2)"),
        ("recency_days", 9.0, 30.5, "last order 9 days ago (typical 30.5)"),
        ("return_rate", 0.005, 0.0, "Return rate 0.5% (typical 0.0%)"),
        ("tenure_days", 120.0, 400.0, "Tenure 120 days (typical 400)"),
        ("n_categories", 7, 5, "Categories: 7 (typical 5)"),
        ("spend_trend_90d", 1.25, 0.9, "Spend trend, 90 days 1.25 (typical 0.90)"),
        ("my_score", 0.25, 0.5, "My score: 0.25 (typical 0.5)"),
    ],
)
def test_descriptions_are_words_with_units(feature, value, typical, text):
    assert phrase(feature, value, typical) == text


# ------------------------------------------------------------------- the engines


def _buyers(features: sk.CustomerFeatures) -> pd.DataFrame:
    """The customers the engines cluster, indexed by id."""
    kinds = non_buyer_kinds(features.frame)
    buyers = np.ones(len(features), dtype=bool) if kinds is None else kinds == BUYER
    frame = features.frame[buyers]
    return frame.set_axis(pd.Index(np.asarray(features.customer_ids)[buyers]), axis=0)


def _engine_names(model) -> dict[int, str]:
    return {s.id: s.name for s in model.segments_ if 0 <= s.id < model.n_clusters_}


@pytest.fixture(scope="module", params=["sample", "cdnow", "journey"])
def data_set_features(request) -> sk.CustomerFeatures:
    if request.param == "sample":
        raw, mapping = sk.datasets.load_sample()
        return sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    return sk.extract_features(request.getfixturevalue(f"{request.param}_tx"))


@pytest.mark.parametrize(
    "engine",
    [
        lambda: sk.KMeansSegmenter(random_state=0),
        lambda: sk.KMeansSegmenter(n_clusters=6, random_state=0, min_cluster_share=0),
        lambda: sk.HDBSCANSegmenter(min_cluster_size=30, noise="attach"),
    ],
    ids=["kmeans-auto", "kmeans-6", "hdbscan"],
)
def test_engine_names_on_real_data_are_borne_out(data_set_features, engine):
    model = engine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)  # HDBSCAN: no dense group
        model.fit(data_set_features)
    frame = _buyers(data_set_features)
    if isinstance(model, sk.HDBSCANSegmenter):
        frame = frame.loc[model.fit_customer_ids_]  # the fit sample, in its order
    _assert_names_backed(frame[model._pre.numeric], model.labels_, _engine_names(model))
    if isinstance(model, sk.HDBSCANSegmenter) and model.n_clusters_:
        # The outlying customers of each cluster, named by their own medians.
        k = model.n_clusters_
        attached = model.predict(data_set_features).to_frame().set_index("customer_id")
        labels = attached.loc[model.fit_customer_ids_, "segment_id"].to_numpy()
        outlying = {
            s.id: s.name.removesuffix(" (outlying)")
            for s in model.segments_
            if k <= s.id < 2 * k and (labels == s.id).any()
        }
        assert all(s.name.endswith(" (outlying)") for s in model.segments_ if k <= s.id < 2 * k)
        _assert_names_backed(frame[model._pre.numeric], labels, outlying)


def test_automatic_k_returns_no_cluster_under_the_minimum_share(data_set_features):
    model = sk.KMeansSegmenter(random_state=0).fit(data_set_features)
    shares = np.bincount(model.labels_) / len(model.labels_)
    assert shares.min() >= model.min_cluster_share
    assert model.small_clusters_ == {}
    assert "smallest_share" in model.k_scores_


def _two_groups_and_four_outliers() -> sk.CustomerFeatures:
    """400 light and 400 heavy buyers, and 4 far beyond the heavy ones: the best
    silhouette (k=3) gives the four a cluster of their own."""
    rng = np.random.default_rng(0)
    frequency = np.r_[rng.normal(2, 0.5, 400), rng.normal(10, 1, 400), rng.normal(25, 0.3, 4)]
    spend = np.r_[rng.normal(50, 10, 400), rng.normal(300, 30, 400), rng.normal(750, 5, 4)]
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(len(spend))],
            "frequency": np.maximum(frequency.round(), 1),
            "monetary": spend,
        }
    )
    return sk.CustomerFeatures.from_frame(frame, as_of=pd.Timestamp("2024-01-01", tz="UTC"))


def test_automatic_k_skips_a_k_that_isolates_outliers():
    engine = sk.KMeansSegmenter(log_transform=False, random_state=0)
    engine.fit(_two_groups_and_four_outliers())
    scores = engine.k_scores_.set_index("k")
    assert scores["silhouette"].idxmax() == 3
    assert scores.loc[3, "smallest_share"] == pytest.approx(4 / 804)
    assert engine.n_clusters_ == 2
    assert np.bincount(engine.labels_).min() >= 400
    assert engine.small_clusters_ == {}


def test_a_chosen_k_with_a_tiny_cluster_is_flagged():
    features = _two_groups_and_four_outliers()
    engine = sk.KMeansSegmenter(n_clusters=3, log_transform=False, random_state=0)
    with pytest.warns(
        SegmentkitWarning, match=r"n_clusters=3 makes clusters under min_clu"
    ) as seen:
        engine.fit(features)
    [(cluster, share)] = engine.small_clusters_.items()
    assert share == pytest.approx(4 / 804)
    assert f"id {cluster}: 0.50%, 4 customers" in str(seen[0].message)
    # Asked for: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sk.KMeansSegmenter(
            n_clusters=3, log_transform=False, random_state=0, min_cluster_share=0
        ).fit(features)


# ---------------------------------------------------------------------- HDBSCAN noise


def test_hdbscan_tells_the_spend_left_unclustered(cdnow_tx):
    features = sk.extract_features(cdnow_tx)
    model = sk.HDBSCANSegmenter(min_cluster_size=50, max_fit_size=5000, random_state=0)
    model.fit(features)
    frame = features.frame.set_index(features.customer_ids).loc[model.fit_customer_ids_]
    spend = frame["monetary"].to_numpy()
    share = spend[model.labels_ == -1].sum() / spend.sum()
    noise = model.segments_[0]
    assert f"they hold {share:.1%} of net spend" in noise.description
    assert "noise='attach'" in noise.description


def test_hdbscan_attaches_noise_to_the_nearest_cluster_as_outlying(cdnow_tx):
    features = sk.extract_features(cdnow_tx)
    kept = sk.HDBSCANSegmenter(min_cluster_size=50, max_fit_size=5000, random_state=0)
    attached = sk.HDBSCANSegmenter(
        min_cluster_size=50, max_fit_size=5000, random_state=0, noise="attach"
    )
    plain = kept.fit_predict(features).to_frame().set_index("customer_id")["segment_id"]
    result = attached.fit_predict(features).to_frame().set_index("customer_id")["segment_id"]
    k = attached.n_clusters_
    assert k > 0
    pd.testing.assert_series_equal(result[plain >= 0], plain[plain >= 0])
    outlying = plain == -1
    assert (result[outlying] >= k).all()
    assert (result[outlying] < 2 * k).all()
    # The nearest clustered customer of the fit sample, found by brute force.
    matrix = attached.transform(features)[outlying.to_numpy()][:200]
    fitted = np.asarray(attached._model._raw_data)
    clustered = attached.labels_ >= 0
    distances = ((matrix[:, None, :] - fitted[clustered][None, :, :]) ** 2).sum(axis=2)
    expected = attached.labels_[clustered][distances.argmin(axis=1)] + k
    np.testing.assert_array_equal(result[outlying].to_numpy()[:200], expected)
    segments = {s.id: s for s in attached.segments_}
    for i in range(k):
        # Named by their own medians; the description says which cluster is nearest.
        assert segments[k + i].name.endswith(" (outlying)")
        assert f"nearest to '{segments[i].name}'" in segments[k + i].description or (
            f"is in '{segments[i].name}'" in segments[k + i].description
        )
    unclustered = segments[-1].description
    assert unclustered.startswith("None with noise='attach': ")


def test_a_word_names_one_measure():
    # "Small baskets" once meant both a low order value (money) and a low basket size
    # (units): two clusters with different reasons read alike. A word may be shared
    # only by the windows of one measure, and by net and gross spend.
    import re
    from collections import defaultdict

    from segmentkit.features._definitions import definitions

    measures = defaultdict(set)
    for definition in definitions((7, 30, 90), ("transactions", "events", "customers")):
        measure = re.sub(r"_\d+d$", "", definition.name)
        measure = "monetary" if measure == "gross_spend" else measure
        for word in definition.words or ():
            measures[word].add(measure)
    shared = {word: names for word, names in measures.items() if len(names) > 1}
    assert shared == {}


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-1, 3), st.one_of(st.none(), st.integers(0, 6))),
        min_size=2,
        max_size=80,
    )
)
def test_cluster_differences_equal_a_rank_by_rank_reference(rows: list) -> None:
    # The one-sort implementation against the definition: per cluster, pandas' average
    # ranks summed over the members, and the members' own median.
    from segmentkit.engines._naming import cluster_differences

    labels = np.array([label for label, _ in rows])
    values = pd.Series([np.nan if v is None else float(v) for _, v in rows])
    clusters = [0, 1, 2, 3]
    found = cluster_differences(pd.DataFrame({"frequency": values}), labels, clusters)
    known = values.notna().to_numpy()
    for cluster in clusters:
        if known.sum() < 2 or not (labels[known] == cluster).any():
            assert found[cluster] == []
            continue
        kept, owners = values[known].to_numpy(), labels[known]
        members = owners == cluster
        ranks = pd.Series(kept).rank(method="average").to_numpy()
        n_in, n_out = int(members.sum()), int((~members).sum())
        u = ranks[members].sum() - n_in * (n_in + 1) / 2
        effect = 0.0 if n_out == 0 else 2 * u / (n_in * n_out) - 1
        (difference,) = found[cluster]
        assert difference.effect == pytest.approx(effect, abs=1e-12)
        assert difference.median == np.median(kept[members])
        assert difference.base_median == np.median(kept)
