"""KMeansSegmenter: same partition as scikit-learn, k selection, ordering, naming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import segmentkit as sk


@pytest.fixture(scope="module")
def cdnow_features(cdnow_tx):
    return sk.extract_features(cdnow_tx, as_of="1998-07-01")


def test_fixed_k_gives_the_same_partition_as_scikit_learn(cdnow_features):
    model = sk.KMeansSegmenter(n_clusters=4, random_state=0).fit(cdnow_features)
    matrix = model.transform(cdnow_features)
    reference = KMeans(n_clusters=4, n_init=4, random_state=0).fit(matrix)
    assert adjusted_rand_score(reference.labels_, model.labels_) == 1.0
    segmentation = model.predict(cdnow_features)
    assert adjusted_rand_score(reference.labels_, segmentation.assignments["segment_id"]) == 1.0
    assert segmentation.catalog["customers"].sum() == 23_570


def test_k_is_chosen_by_silhouette_and_scores_are_kept(sample_features):
    model = sk.KMeansSegmenter(k_range=(2, 5), random_state=0).fit(sample_features)
    scores = model.k_scores_
    assert list(scores["k"]) == [2, 3, 4, 5]
    assert model.n_clusters_ == int(scores.loc[scores["silhouette"].idxmax(), "k"])
    assert scores["inertia"].is_monotonic_decreasing


def test_clusters_are_ordered_by_value_and_named(sample_features):
    seg = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit_predict(sample_features)
    clusters = seg.catalog[~seg.catalog["segment"].isin(["No purchases", "Returns only"])]
    medians = clusters["median_monetary"].to_numpy()
    assert (np.diff(medians) <= 0).all()
    names = [s.name for s in seg.segments][:3]
    assert len(set(names)) == 3
    assert all(name and name != "Cluster 0" for name in names)
    assert "Net spend" in " ".join(s.description for s in seg.segments)


def test_same_seed_same_segments_and_names_can_be_overridden(sample_features):
    first = sk.KMeansSegmenter(n_clusters=3, random_state=1).fit_predict(sample_features)
    again = sk.KMeansSegmenter(n_clusters=3, random_state=1).fit_predict(sample_features)
    pd.testing.assert_frame_equal(first.assignments, again.assignments)
    named = sk.KMeansSegmenter(n_clusters=3, random_state=1, names={0: "VIP"})
    assert named.fit_predict(sample_features).segments[0].name == "VIP"


def test_predict_equals_fit_labels_and_scores_new_customers(sample_features):
    model = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(sample_features)
    seg = model.predict(sample_features)
    np.testing.assert_array_equal(seg.assignments["segment_id"], model.labels_)
    assert (seg.assignments["distance"] >= 0).all()
    new = sample_features.frame.head(5).copy()
    new["monetary"] = new["monetary"] * 100
    assert len(model.predict(new.reset_index())) == 5


def test_missing_values_are_refused_or_imputed_explicitly():
    frame = pd.DataFrame(
        {
            "customer_id": list("abcdef"),
            "recency_days": [1.0, 5.0, np.nan, 30.0, 60.0, 90.0],
            "frequency": [5, 4, 0, 2, 1, 1],
            "monetary": [500.0, 300.0, 0.0, 80.0, 20.0, 10.0],
        }
    )
    # By default the customer who never bought is set apart, not clustered.
    seg = sk.KMeansSegmenter(n_clusters=2, random_state=0).fit_predict(frame)
    assert seg.assignments.set_index("customer_id").loc["c", "segment"] == "No purchases"
    everyone = sk.KMeansSegmenter(n_clusters=2, random_state=0, non_buyers="cluster")
    with pytest.raises(ValueError, match=r"missing feature values: \{'recency_days': 1\}"):
        everyone.fit(frame)
    seg = everyone.set_params(missing="median").fit_predict(frame)
    assert len(seg) == 6
    assert "No purchases" not in set(seg.assignments["segment"])


def test_categorical_features_are_one_hot_encoded(sample_features):
    model = sk.KMeansSegmenter(
        n_clusters=2, features=["monetary", "frequency", "top_category"], random_state=0
    ).fit(sample_features)
    names = Preprocessed = model.preprocessor_
    assert Preprocessed["categorical"]["top_category"]
    assert model.transform(sample_features).shape[1] == 2 + len(
        names["categorical"]["top_category"]
    )


def test_works_on_a_plain_numeric_array():
    rng = np.random.default_rng(0)
    blobs = np.vstack([rng.normal(0, 1, (50, 2)), rng.normal(8, 1, (50, 2))])
    seg = sk.KMeansSegmenter(n_clusters=2, random_state=0, log_transform=False).fit_predict(blobs)
    labels = seg.assignments["segment_id"].to_numpy()
    assert len(set(labels[:50])) == 1
    assert len(set(labels[50:])) == 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"n_clusters": 1},
            r"'n_clusters' parameter of KMeansSegmenter must be an int in the range "
            r"\[2, inf\) or None. Got 1 instead.",
        ),
        ({"k_range": (5, 2)}, r"'k_range' parameter"),
        ({"scaler": "minmax"}, r"'scaler' parameter of KMeansSegmenter must be one of"),
        ({"features": ["monetry"]}, r"asked for features \['monetry'\].*Did you mean 'monetary'"),
        ({"n_clusters": 1000}, r"n_customers=800 should be >= n_clusters=1000. Set n_clusters"),
        ({"features": ["first_purchase"]}, r"cannot cluster on timestamps"),
    ],
)
def test_bad_parameters(sample_features, params, match):
    with pytest.raises(ValueError, match=match):
        sk.KMeansSegmenter(**params).fit(sample_features)


def test_minibatch_is_used_past_the_threshold(sample_features):
    model = sk.KMeansSegmenter(n_clusters=3, random_state=0, minibatch_threshold=100)
    seg = model.fit_predict(sample_features)
    assert seg.catalog["customers"].sum() == 800


def test_clusters_with_the_same_words_are_told_apart_by_how_they_differ():
    from segmentkit.engines import describe_clusters

    # Clusters 1 and 2 both order and spend more than the base: the same two words. The
    # less valuable one (named second) is told apart by its difference from the first.
    frame = pd.DataFrame(
        {
            "monetary": [10.0] * 6 + [200.0] * 3 + [400.0] * 3,
            "frequency": [1] * 6 + [20] * 3 + [10] * 3,
        }
    )
    labels = np.array([0] * 6 + [1] * 3 + [2] * 3)
    names = [name for name, _ in describe_clusters(frame, labels, [0, 1, 2])]
    assert names[1] == "Frequent · High spend"
    assert names[2] == "Frequent · High spend · higher net spend"  # 400 against 200
    assert len({frozenset(name.split(" · ")) for name in names}) == 3


# ------------------------------------------------------------------ tiny inputs


def _few(sample_features: sk.CustomerFeatures, n: int) -> sk.CustomerFeatures:
    return sk.CustomerFeatures.from_frame(
        sample_features.frame.iloc[:n], as_of=sample_features.as_of
    )


@pytest.mark.parametrize(
    ("n", "params", "words"),
    [
        (1, {}, ["at least 2 customers", "got 1", "rules or RFM"]),
        (2, {}, ["k_range=(2, 8)", "more than 2 customers", "got 2", "n_clusters"]),
        (3, {"k_range": (3, 5)}, ["more than 3 customers", "got 3", "lower k_range"]),
        (3, {"n_clusters": 5}, ["n_customers=3", "n_clusters=5", "at most 3"]),
        (
            800,
            {"k_range": (150, 160), "silhouette_sample": 100},
            ["silhouette_sample=100", "k=150"],
        ),
    ],
)
def test_too_few_customers_are_refused_clearly(sample_features, n, params, words):
    # Not scikit-learn's or pandas' error (a KeyError 'silhouette' before).
    with pytest.raises(sk.errors.InvalidParameterError) as caught:
        sk.KMeansSegmenter(random_state=0, **params).fit(_few(sample_features, n))
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("params", [{}, {"n_clusters": 3}])
def test_identical_customers_are_refused_clearly(sample_features, params, recwarn):
    frame = sample_features.frame.iloc[:50].copy()
    frame[:] = frame.iloc[0].to_numpy()
    same = sk.CustomerFeatures.from_frame(frame, as_of=sample_features.as_of)
    with pytest.raises(sk.errors.InvalidParameterError, match=r"1 distinct"):
        sk.KMeansSegmenter(random_state=0, **params).fit(same)
    assert not [w for w in recwarn if "ConvergenceWarning" in w.category.__name__]


def test_three_customers_and_automatic_k_give_two_segments(sample_features):
    model = sk.KMeansSegmenter(random_state=0).fit(_few(sample_features, 3))
    assert model.n_clusters_ == 2
    assert list(model.k_scores_["k"]) == [2]


def test_tiny_input_on_the_command_line_names_the_option(tmp_path, capsys):
    from segmentkit.cli import main

    orders = tmp_path / "orders.csv"
    pd.DataFrame(
        {"customer": ["a", "b"], "day": ["2024-01-01", "2024-01-02"], "total": [5.0, 9.0]}
    ).to_csv(orders, index=False)
    code = main(
        ["-q", "segment", str(orders), "--map", "customer_id=customer", "timestamp=day",
         "amount=total", "--engine", "kmeans"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "--param n_clusters=2" in err
    assert "Traceback" not in err


# --- speed work that must not change results ------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(3, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(st.integers(-3, 3), min_size=2, max_size=2), min_size=n, max_size=n),
            st.lists(st.lists(st.integers(0, 4), min_size=n, max_size=n), min_size=1, max_size=3),
        )
    )
)
def test_mean_silhouettes_equal_scikit_learns(case: tuple[list, list]) -> None:
    # Whole-number points are full of ties and duplicates; labelings may skip ids.
    from sklearn.metrics import silhouette_score

    from segmentkit.engines._kmeans import mean_silhouettes

    rows, labelings = case
    points = np.asarray(rows, dtype=float)
    labels = [np.asarray(labeling) for labeling in labelings]
    ours = mean_silhouettes(points, labels)
    for labeling, score in zip(labels, ours, strict=True):
        if 1 < len(np.unique(labeling)) < len(points):
            assert score == pytest.approx(silhouette_score(points, labeling), abs=1e-12)
        else:
            assert np.isnan(score)


def test_full_kmeans_is_the_default_at_every_size() -> None:
    # Mini-batch was measured slower, with higher inertia, at 1M and 3M customers.
    from sklearn.cluster import KMeans as Lloyd
    from sklearn.cluster import MiniBatchKMeans

    segmenter = sk.KMeansSegmenter(n_clusters=3, random_state=0)
    assert segmenter.minibatch_threshold is None
    assert type(segmenter._model(3, 10_000_000)) is Lloyd
    chosen = sk.KMeansSegmenter(n_clusters=3, minibatch_threshold=1000)._model(3, 1000)
    assert type(chosen) is MiniBatchKMeans
