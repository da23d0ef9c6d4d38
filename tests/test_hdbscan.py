"""HDBSCANSegmenter: same clusters as the hdbscan library, explicit noise, fit on a sample."""

from __future__ import annotations

import warnings
from typing import Any

import hdbscan
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

import segmentkit as sk
from segmentkit.engines._hdbscan import HDBSCANSegmenter, _stable_edge_order
from segmentkit.engines._hdbscan_placement import place
from segmentkit.errors import SegmentkitWarning

RFM = ["recency_days", "frequency", "monetary"]


@pytest.fixture(scope="module")
def cdnow_features(cdnow_tx):
    return sk.extract_features(cdnow_tx, as_of="1998-07-01")


@pytest.fixture(scope="module")
def fitted(sample_features):
    model = HDBSCANSegmenter(features=RFM, min_cluster_size=20, min_samples=5)
    return model, model.fit_predict(sample_features)


def _tied_points() -> pd.DataFrame:
    # Two blobs rounded to whole numbers: many customers share a point, and for some of
    # them hdbscan.approximate_predict picks a tied neighbour in another cluster.
    rng = np.random.default_rng(7)
    points = np.round(np.vstack([rng.normal(0, 1.5, (150, 2)), rng.normal(5, 1.5, (150, 2))]))
    frame = pd.DataFrame(points, columns=["x", "y"])
    frame.index = pd.Index([f"c{i}" for i in range(len(frame))], name="customer_id")
    return frame


@pytest.mark.parametrize(
    "params",
    [
        {"min_cluster_size": 20, "min_samples": 5},
        {"min_cluster_size": 10, "cluster_selection_method": "leaf"},
        {"min_cluster_size": 10, "min_samples": 3, "cluster_selection_epsilon": 0.3},
    ],
)
def test_same_clusters_and_noise_as_the_hdbscan_library(sample_features, params):
    model = HDBSCANSegmenter(features=RFM, **params).fit(sample_features)
    # The engine sorts the spanning tree's tied edges stably (the same on every CPU).
    with _stable_edge_order():
        reference = hdbscan.HDBSCAN(**params).fit(model.transform(sample_features))
    assert model.n_clusters_ == reference.labels_.max() + 1 > 1
    assert adjusted_rand_score(reference.labels_, model.labels_) == 1.0
    np.testing.assert_array_equal(model.labels_ == sk.NOISE, reference.labels_ == -1)
    np.testing.assert_allclose(model.probabilities_, reference.probabilities_)
    assigned = model.predict(sample_features).assignments["segment_id"]
    assert adjusted_rand_score(reference.labels_, assigned) == 1.0


def test_every_customer_in_one_segment_and_noise_is_unclustered(fitted, sample_features):
    model, seg = fitted
    first = model.segments_[0]
    assert (first.id, first.name) == (sk.NOISE, "Unclustered")
    assert "fit no dense group" in first.description
    # Then the clusters, then the two segments of customers without a purchase.
    assert [s.id for s in model.segments_] == list(range(-1, model.n_clusters_ + 2))
    assert [s.name for s in model.segments_[-2:]] == ["No purchases", "Returns only"]
    assignments = seg.assignments
    assert assignments["customer_id"].is_unique
    assert len(assignments) == len(sample_features) == seg.catalog["customers"].sum()
    noise = assignments["segment_id"] == sk.NOISE
    assert noise.any()
    assert (assignments.loc[noise, "segment"] == "Unclustered").all()
    assert (assignments.loc[noise, "membership"] == 0).all()
    assert seg.catalog.set_index("segment_id").loc[sk.NOISE, "customers"] == noise.sum()


def test_noise_segment_is_listed_even_when_empty():
    rng = np.random.default_rng(0)
    centres = np.repeat([[0.0, 0.0], [50.0, 50.0]], 40, axis=0)
    frame = pd.DataFrame(centres + rng.normal(0, 0.01, centres.shape), columns=["x", "y"])
    model = HDBSCANSegmenter(min_cluster_size=10, log_transform=False)
    seg = model.fit_predict(frame)
    assert model.n_clusters_ == 2
    assert seg.catalog.set_index("segment_id").loc[sk.NOISE, "customers"] == 0
    assert model.segments_[0].name == "Unclustered"


def test_clusters_are_ordered_by_value_named_and_renamable(fitted, sample_features):
    model, seg = fitted
    clusters = seg.catalog[seg.catalog["segment_id"].between(0, model.n_clusters_ - 1)]
    assert (np.diff(clusters["median_monetary"].to_numpy()) <= 0).all()
    names = [s.name for s in model.segments_]
    assert len(set(names)) == len(names)
    assert "Net spend" in " ".join(s.description for s in model.segments_[1:])
    renamed = clone(model).set_params(names={-1: "Outliers", 0: "VIP"})
    segments = renamed.fit(sample_features).segments_
    assert [segments[0].name, segments[1].name] == ["Outliers", "VIP"]


def test_predict_on_training_data_equals_fit_predict_and_labels(fitted, sample_features):
    model, seg = fitted
    again = model.predict(sample_features)
    pd.testing.assert_frame_equal(seg.assignments, again.assignments)
    np.testing.assert_array_equal(again.assignments["segment_id"], model.labels_)
    np.testing.assert_array_equal(again.assignments["membership"], model.probabilities_)


def test_fit_sample_is_looked_up_where_approximate_predict_differs():
    frame = _tied_points()
    model = HDBSCANSegmenter(min_cluster_size=15, log_transform=False, scaler="none")
    seg = model.fit_predict(frame)
    library, _ = hdbscan.approximate_predict(model._model, frame.to_numpy())
    assert (library != model._model.labels_).sum() > 0  # the library alone would differ
    np.testing.assert_array_equal(seg.assignments["segment_id"], model.labels_)


def test_new_or_changed_customers_are_placed_by_approximate_predict(fitted, sample_features):
    model, _ = fitted
    raw_to_id = dict(zip(model._model.labels_, model.labels_, strict=True))
    library, strengths = hdbscan.approximate_predict(
        model._model, model.transform(sample_features)
    )
    expected = np.array([raw_to_id.get(label, sk.NOISE) for label in library])
    new = sample_features.frame.copy()
    new.index = "new-" + new.index.astype(str)
    placed = model.predict(new).assignments
    np.testing.assert_array_equal(placed["segment_id"], expected)
    np.testing.assert_allclose(placed["membership"], np.where(expected == -1, 0, strengths))
    # Same customer, different features: not the stored fit label but a fresh placement.
    changed = sample_features.frame.copy()
    changed["monetary"] = changed["monetary"] * 3
    placed = model.predict(changed).assignments
    assert not np.array_equal(placed["membership"], model.probabilities_)


def test_membership_is_a_strength_in_unit_interval(fitted):
    _, seg = fitted
    membership = seg.assignments["membership"]
    clustered = seg.assignments["segment_id"] >= 0
    assert membership.between(0, 1).all()
    assert (membership[clustered] > 0).all()


def test_fit_on_a_sample_assigns_everyone(cdnow_features):
    model = HDBSCANSegmenter(max_fit_size=5000, random_state=0).fit(cdnow_features)
    assert model.fit_sample_size_ == 5000
    assert len(model.labels_) == len(model.probabilities_) == len(model.fit_customer_ids_) == 5000
    seg = model.predict(cdnow_features)
    assignments = seg.assignments
    assert len(assignments) == 23_570 == seg.catalog["customers"].sum()
    assert assignments["customer_id"].is_unique
    assert assignments["segment_id"].isin([s.id for s in model.segments_]).all()
    assert assignments["membership"].between(0, 1).all()
    sampled = assignments.set_index("customer_id").loc[model.fit_customer_ids_]
    np.testing.assert_array_equal(sampled["segment_id"], model.labels_)
    # Segments are described on the fit sample, and say so.
    for segment in model.segments_[:-2]:  # the clusters, not the non-buyers' segments
        assert " of the 5000 sampled customers" in segment.description


def test_placement_in_parallel_threads_gives_the_same_segments(cdnow_features, monkeypatch):
    from segmentkit.engines import _hdbscan_placement

    # Small chunks so that CDNOW's 23,570 customers are split between two threads.
    monkeypatch.setattr(_hdbscan_placement, "_CELLS", 100_000)
    assert _hdbscan_placement._workers(2, 20) == 2
    assert _hdbscan_placement._workers(None, 20) == 1
    assert _hdbscan_placement._workers(4, 1) == 1
    serial = HDBSCANSegmenter(max_fit_size=5000, random_state=0).fit(cdnow_features)
    parallel = HDBSCANSegmenter(max_fit_size=5000, random_state=0, n_jobs=2).fit(cdnow_features)
    pd.testing.assert_frame_equal(
        serial.predict(cdnow_features).assignments, parallel.predict(cdnow_features).assignments
    )


def _library_fit(points: np.ndarray, **params: Any) -> hdbscan.HDBSCAN:
    return hdbscan.HDBSCAN(prediction_data=True, core_dist_n_jobs=1, **params).fit(points)


def _assert_placed_as_the_library(model: hdbscan.HDBSCAN, points: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no defined clusters"
        library, strengths = hdbscan.approximate_predict(model, points)
    labels, ours = place(model, points)
    np.testing.assert_array_equal(labels, library)
    np.testing.assert_allclose(ours, strengths, rtol=1e-12, atol=0)


def _blobs_with_noise(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, (4, 3))
    dense = centres[rng.integers(0, 4, n)] + rng.normal(0, 1, (n, 3))
    return np.vstack([dense, rng.uniform(-15, 15, (n // 5, 3))])  # a fifth is noise


@pytest.mark.parametrize(
    "params",
    [
        {"min_cluster_size": 25},
        {"min_cluster_size": 25, "min_samples": 3},
        {"min_cluster_size": 10, "min_samples": 1},
        {"min_cluster_size": 15, "cluster_selection_method": "leaf"},
        {"min_cluster_size": 15, "min_samples": 5, "cluster_selection_epsilon": 1.0},
    ],
)
def test_placement_equals_approximate_predict_on_blobs_with_noise(params):
    model = _library_fit(_blobs_with_noise(0, 1500), **params)
    new = _blobs_with_noise(1, 4000)
    _assert_placed_as_the_library(model, new)
    # The fitted points themselves: exact duplicates of fitted points, distance 0.
    _assert_placed_as_the_library(model, model.prediction_data_.raw_data)


def test_placement_equals_approximate_predict_on_customer_features(
    cdnow_features, sample_features
):
    cdnow = HDBSCANSegmenter(max_fit_size=4000, random_state=0).fit(cdnow_features)
    _assert_placed_as_the_library(cdnow._model, cdnow.transform(cdnow_features))
    sample = HDBSCANSegmenter(features=RFM, min_cluster_size=20, min_samples=5)
    sample.fit(sample_features)
    _assert_placed_as_the_library(sample._model, sample.transform(sample_features))


def test_placement_equals_approximate_predict_on_the_benchmark_features():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_clustering.py"
    spec = importlib.util.spec_from_file_location("bench_clustering", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    features = sk.CustomerFeatures.from_frame(bench.synthetic_features(30_000), as_of="2024-06-30")
    model = HDBSCANSegmenter(min_cluster_size=50, max_fit_size=5000, random_state=0)
    model.fit(features)
    _assert_placed_as_the_library(model._model, model.transform(features))


def test_placement_equals_approximate_predict_on_ties(monkeypatch):
    from segmentkit.engines import _hdbscan_placement

    # Whole-number points: many at the same distance and reach, the case where only the
    # full query's neighbour order settles the cluster.
    points = _tied_points().to_numpy()
    grid = np.stack(np.meshgrid(np.arange(-4, 10), np.arange(-4, 10)), -1).reshape(-1, 2)
    model = _library_fit(points, min_cluster_size=15)
    tables = _hdbscan_placement.PlacementTables.from_model(model)
    unsure, _ = tables._nearest(grid.astype(float), tables.min_samples + 2)
    assert (unsure < 0).any()  # the fallback to the library's k is exercised
    _assert_placed_as_the_library(model, grid.astype(float))
    _assert_placed_as_the_library(model, points)


def test_placement_of_a_clustering_without_clusters_is_all_noise():
    points = np.random.default_rng(0).uniform(size=(40, 2))
    model = _library_fit(points, min_cluster_size=30)
    _assert_placed_as_the_library(model, points)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(40, 200),
    min_cluster_size=st.integers(2, 20),
    min_samples=st.integers(1, 10),
    step=st.sampled_from([0.0, 0.5, 1.0]),
    method=st.sampled_from(["eom", "leaf"]),
)
def test_placement_equals_approximate_predict_property(
    seed, n, min_cluster_size, min_samples, step, method
):
    rng = np.random.default_rng(seed)
    points = np.vstack([rng.normal(0, 1, (n, 2)), rng.normal(4, 1.5, (n // 2, 2))])
    new = rng.uniform(-4, 8, (300, 2))
    if step:  # a grid: exact ties in distance everywhere
        points, new = np.round(points / step) * step, np.round(new / step) * step
    model = _library_fit(
        points,
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        cluster_selection_method=method,
    )
    _assert_placed_as_the_library(model, new)


def test_same_seed_same_segments(cdnow_features):
    def run(seed):
        return HDBSCANSegmenter(max_fit_size=2000, min_cluster_size=30, random_state=seed).fit(
            cdnow_features
        )

    first, again, other = run(1), run(1), run(2)
    np.testing.assert_array_equal(first.fit_customer_ids_, again.fit_customer_ids_)
    np.testing.assert_array_equal(first.labels_, again.labels_)
    assert first.segments_ == again.segments_
    assert set(first.fit_customer_ids_) != set(other.fit_customer_ids_)
    new = sk.CustomerFeatures.from_frame(cdnow_features.frame.head(3000))
    pd.testing.assert_frame_equal(first.predict(new).assignments, again.predict(new).assignments)


def test_no_dense_group_warns_and_everyone_is_unclustered(sample_features):
    model = HDBSCANSegmenter(min_cluster_size=50)
    with pytest.warns(SegmentkitWarning, match="no dense group among 800 customers"):
        seg = model.fit_predict(sample_features)
    assert model.n_clusters_ == 0
    assert [s.name for s in model.segments_] == ["Unclustered", "No purchases", "Returns only"]
    assert (seg.assignments["segment_id"] == sk.NOISE).all()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"min_cluster_size": 1},
            r"'min_cluster_size' parameter of HDBSCANSegmenter must be an int in the range "
            r"\[2, inf\). Got 1 instead.",
        ),
        ({"min_samples": 0}, r"'min_samples' parameter .* in the range \[1, inf\) or None"),
        ({"cluster_selection_method": "dbscan"}, r"'cluster_selection_method' .* one of"),
        ({"cluster_selection_epsilon": -0.5}, r"'cluster_selection_epsilon' parameter"),
        ({"max_fit_size": 1}, r"'max_fit_size' parameter"),
        ({"random_state": "seed"}, r"'random_state' parameter .* an int or None"),
        ({"n_jobs": "all"}, r"'n_jobs' parameter .* an int or None"),
        ({"scaler": "minmax"}, r"'scaler' parameter of HDBSCANSegmenter must be one of"),
        ({"features": ["monetry"]}, r"asked for features \['monetry'\].*Did you mean 'monetary'"),
        ({"min_cluster_size": 1000}, r"min_cluster_size=1000 customers.*n_customers=800"),
        ({"max_fit_size": 20}, r"max_fit_size=20 should be >= min_cluster_size=50\."),
        ({"min_samples": 900}, r"min_samples=900 should be <= the fit sample size 800\."),
    ],
)
def test_bad_parameters(sample_features, params, match):
    with pytest.raises(ValueError, match=match):
        HDBSCANSegmenter(**params).fit(sample_features)


def test_missing_values_are_refused_or_imputed_explicitly():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(60)],
            "recency_days": rng.uniform(1, 90, 60),
            "frequency": rng.integers(1, 9, 60),
            "monetary": rng.uniform(10, 500, 60),
        }
    )
    frame.loc[3, "recency_days"] = np.nan
    model = HDBSCANSegmenter(min_cluster_size=10)
    with pytest.raises(ValueError, match=r"missing feature values: \{'recency_days': 1\}"):
        model.fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)  # clusters or not, all placed
        seg = clone(model).set_params(missing="median").fit_predict(frame)
    assert len(seg) == 60
