"""Segment quality: profile, evaluate (separation scores) and stability (resampling)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

import segmentkit as sk
from segmentkit.engines import Segmenter, SegmenterTags
from segmentkit.engines._quality import QualityReport, StabilityReport, evaluate, stability
from segmentkit.errors import InvalidParameterError

# --- helpers -------------------------------------------------------------------------


class RandomLabels(Segmenter):
    """Ignores the features: every customer gets a random segment (seeded)."""

    engine_name: ClassVar[str] = "random-labels"

    def __init__(self, *, n_segments: int = 3, random_state: int | None = None) -> None:
        self.n_segments = n_segments
        self.random_state = random_state

    def _fit(self, features: sk.CustomerFeatures) -> None:
        self.segments_ = [sk.Segment(i, f"S{i}") for i in range(self.n_segments)]

    def _assign(self, features: sk.CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng(self.random_state)
        return rng.integers(0, self.n_segments, len(features)), {}


FITS: list[tuple[tuple[str, ...], Any]] = []


class Recorder(Segmenter):
    """Records the customers and seed of every fit; puts everyone in one segment."""

    def __init__(self, *, random_state: int | None = None) -> None:
        self.random_state = random_state

    def _fit(self, features: sk.CustomerFeatures) -> None:
        FITS.append((tuple(features.customer_ids), self.random_state))
        self.segments_ = [sk.Segment(0, "Everyone")]

    def _assign(self, features: sk.CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        return np.zeros(len(features), dtype=np.int64), {}


class NoPredict(Recorder):
    tags: ClassVar[SegmenterTags] = SegmenterTags(supports_predict=False)


def blobs(n_per_blob: int = 150, seed: int = 0) -> sk.CustomerFeatures:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.vstack([c + rng.normal(scale=0.5, size=(n_per_blob, 2)) for c in centres])
    frame = pd.DataFrame(points, columns=["x", "y"])
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    return sk.CustomerFeatures.from_frame(frame, as_of="2024-01-01")


def with_labels(
    features: sk.CustomerFeatures, labels: np.ndarray, segments: list[sk.Segment]
) -> sk.Segmentation:
    assignments = pd.DataFrame(
        {"customer_id": features.customer_ids.to_numpy(dtype=object), "segment_id": labels}
    )
    names = {s.id: s.name for s in segments}
    assignments["segment"] = assignments["segment_id"].map(names)
    return sk.Segmentation(assignments, segments, features, "test")


@pytest.fixture(scope="module")
def rfm(sample_features):
    return sk.RFMSegmenter().fit_predict(sample_features)


@pytest.fixture(scope="module")
def kmeans(sample_features):
    return sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(sample_features)


def sklearn_scores(matrix: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    return (
        silhouette_score(matrix, labels),
        davies_bouldin_score(matrix, labels),
        calinski_harabasz_score(matrix, labels),
    )


def report_scores(report: QualityReport) -> tuple[float, float, float]:
    return report.silhouette, report.davies_bouldin, report.calinski_harabasz


# --- profile -------------------------------------------------------------------------


def test_profile_equals_a_direct_groupby_median(rfm, sample_features):
    profile = rfm.profile()
    frame = sample_features.frame
    labels = rfm.assignments.set_index("customer_id")["segment_id"].reindex(frame.index)
    numeric = [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    ids = rfm.catalog["segment_id"].tolist()  # most valuable first
    expected = frame[numeric].groupby(labels.to_numpy()).median().reindex(ids)
    base = frame[numeric].median()

    assert list(profile.index) == rfm.catalog["segment"].tolist()
    assert list(profile["segment_id"]) == ids
    names = {s.id: s.name for s in rfm.segments}
    assert [names[i] for i in profile["segment_id"]] == list(profile.index)
    customers = rfm.assignments["segment_id"].value_counts()
    assert (profile["customers"].to_numpy() == customers.reindex(ids, fill_value=0)).all()
    assert list(profile.columns.get_level_values("feature").unique()[4:]) == numeric
    for name in numeric:
        np.testing.assert_allclose(profile[(name, "median")], expected[name])
        if base[name] != 0:
            np.testing.assert_allclose(profile[(name, "ratio")], expected[name] / base[name])
        else:
            assert profile[(name, "ratio")].isna().all()
    assert profile.attrs["base_median"] == pytest.approx(base.to_dict(), nan_ok=True)
    for column in ("customers", "share", "revenue_share"):
        np.testing.assert_allclose(profile[column], rfm.catalog[column])


def test_profile_keeps_empty_segments_with_missing_medians(rfm):
    empty = rfm.profile().loc["No purchases"]
    assert empty[("customers", "")] == 0
    assert empty[("monetary", "median")] != empty[("monetary", "median")]  # NaN


def test_profile_accepts_other_features_in_any_order(rfm, sample_features):
    own = sample_features.to_frame().sample(frac=1.0, random_state=1)
    extra = own.head(1).assign(customer_id="someone-else")
    given = pd.concat([own, extra])
    profile = rfm.profile(given, columns=["monetary", "frequency"])
    expected = rfm.profile()[["segment_id", "customers", "share", "revenue_share"]]
    assert list(profile.columns.get_level_values(0).unique()[4:]) == ["monetary", "frequency"]
    pd.testing.assert_frame_equal(profile[expected.columns], expected)
    pd.testing.assert_frame_equal(
        profile[["monetary", "frequency"]], rfm.profile()[["monetary", "frequency"]]
    )


def test_profile_errors(rfm, sample_features):
    with pytest.raises(ValueError, match="lack 10 of the 800 segmented customers"):
        rfm.profile(sample_features.frame.iloc[10:])
    with pytest.raises(ValueError, match="numeric features only; \\['top_category'\\]"):
        rfm.profile(columns=["monetary", "top_category"])
    with pytest.raises(ValueError, match="no features \\['monetery'\\]"):
        rfm.profile(columns=["monetery"])
    with pytest.raises(InvalidParameterError, match="'features' parameter"):
        rfm.profile(features=[1, 2])


# --- evaluate ------------------------------------------------------------------------


def test_evaluate_in_engine_space_equals_sklearn(kmeans, sample_features):
    segmentation = kmeans.predict(sample_features)
    report = evaluate(segmentation, sample_features, segmenter=kmeans)
    matrix = kmeans.transform(sample_features)
    labels = segmentation.assignments["segment_id"].to_numpy()
    np.testing.assert_allclose(report_scores(report), sklearn_scores(matrix, labels))
    assert (report.n_customers, report.n_segments, report.n_noise) == (800, 3, 0)
    assert report.sample_size == 800
    assert "KMeansSegmenter.transform" in report.space


def test_evaluate_default_space_is_log_scaled_standardised_features(rfm, sample_features):
    columns = ["recency_days", "frequency", "discount_share", "mean_days_between_orders"]
    report = evaluate(rfm, sample_features, columns=columns)

    values = sample_features.frame[columns].to_numpy(dtype=float)
    logged = [0, 1, 3]  # discount_share is a share, not a skewed count or amount
    values[:, logged] = np.sign(values[:, logged]) * np.log1p(np.abs(values[:, logged]))
    assert np.isnan(values[:, 3]).any()
    values = np.where(np.isnan(values), np.nanmedian(values, axis=0), values)
    matrix = (values - values.mean(axis=0)) / values.std(axis=0)
    labels = rfm.assignments["segment_id"].to_numpy()
    np.testing.assert_allclose(report_scores(report), sklearn_scores(matrix, labels))
    assert "log_recency_days" in report.space
    assert "discount_share" in report.space


def test_evaluate_samples_the_silhouette_as_sklearn_does(kmeans, sample_features):
    segmentation = kmeans.predict(sample_features)
    matrix = kmeans.transform(sample_features)
    labels = segmentation.assignments["segment_id"].to_numpy()
    report = evaluate(segmentation, sample_features, segmenter=kmeans, sample_size=300)
    assert report.sample_size == 300
    assert report.silhouette == pytest.approx(
        silhouette_score(matrix, labels, sample_size=300, random_state=0)
    )
    # The other two scores always use every customer.
    assert report.davies_bouldin == pytest.approx(davies_bouldin_score(matrix, labels))
    again = evaluate(segmentation, sample_features, segmenter=kmeans, sample_size=300)
    assert again == report
    other = evaluate(
        segmentation, sample_features, segmenter=kmeans, sample_size=300, random_state=1
    )
    assert other.silhouette != report.silhouette


def test_evaluate_leaves_noise_out(kmeans, sample_features):
    labels = kmeans.predict(sample_features).assignments["segment_id"].to_numpy().copy()
    labels[::7] = sk.NOISE
    segments = [sk.Segment(sk.NOISE, "Unassigned"), *kmeans.segments_]
    report = evaluate(
        with_labels(sample_features, labels, segments), sample_features, segmenter=kmeans
    )
    keep = labels != sk.NOISE
    matrix = kmeans.transform(sample_features)
    np.testing.assert_allclose(report_scores(report), sklearn_scores(matrix[keep], labels[keep]))
    assert report.n_noise == int((~keep).sum()) == 115
    assert report.n_customers == 800
    assert report.sample_size == 800 - 115
    assert report.n_segments == 3
    assert "115 noise customers left out" in str(report)


def test_evaluate_on_cdnow_samples_the_silhouette(cdnow_tx):
    features = sk.extract_features(cdnow_tx)
    segmentation = sk.RFMSegmenter().fit_predict(features)
    report = evaluate(segmentation, features, sample_size=2000)
    assert report.n_customers == len(features) > 2000
    assert report.sample_size == 2000
    assert -1 <= report.silhouette <= 1
    assert report.davies_bouldin > 0
    assert report.calinski_harabasz > 0


def test_evaluate_errors(kmeans, sample_features):
    everyone = np.zeros(len(sample_features), dtype=np.int64)
    everyone[:5] = sk.NOISE
    one = with_labels(
        sample_features, everyone, [sk.Segment(sk.NOISE, "Unassigned"), sk.Segment(0, "All")]
    )
    with pytest.raises(ValueError, match=r"at least 2 segments with customers; .* has 1"):
        evaluate(one, sample_features)
    segmentation = kmeans.predict(sample_features)
    with pytest.raises(InvalidParameterError, match=r"pass columns=\.\.\. only without"):
        evaluate(segmentation, sample_features, segmenter=kmeans, columns=["monetary"])
    with pytest.raises(ValueError, match="lack 1 of the 800 segmented customers"):
        evaluate(segmentation, sample_features.frame.iloc[1:])
    with pytest.raises(ValueError, match="numeric features; \\['top_category'\\] are not"):
        evaluate(segmentation, sample_features, columns=["monetary", "top_category"])
    with pytest.raises(InvalidParameterError, match="'sample_size' parameter of evaluate"):
        evaluate(segmentation, sample_features, sample_size=1)
    with pytest.raises(InvalidParameterError, match="must be a Segmentation"):
        evaluate(sample_features, sample_features)


def test_quality_report_reads_as_a_paragraph():
    report = QualityReport(0.62, 0.55, 900.0, 1000, 4, 10, 990, "the space of X")
    text = str(report)
    assert "\n\n" not in text
    for part in ("990 customers in 4 segments", "10 noise", "Silhouette 0.620", "higher is"):
        assert part in text.replace("\n", " ")
    assert "Davies-Bouldin 0.550" in text.replace("\n", " ")
    assert "Calinski-Harabasz 900.0" in text.replace("\n", " ")


# --- stability -----------------------------------------------------------------------


def test_kmeans_on_well_separated_blobs_is_stable():
    features = blobs()
    engine = sk.KMeansSegmenter(n_clusters=3, random_state=0)
    report = stability(engine, features, n_resamples=5)
    assert isinstance(report, StabilityReport)
    assert report.n_resamples == len(report.ari) == 5
    assert report.min > 0.99
    assert report.verdict == "stable"
    assert report.mean == pytest.approx(np.mean(report.ari))
    assert report.std == pytest.approx(np.std(report.ari, ddof=1))
    model = engine.fit(features)
    quality = evaluate(model.predict(features), features, segmenter=model)
    assert quality.silhouette > 0.8


def test_random_labels_are_unstable(sample_features):
    report = stability(RandomLabels(), sample_features, n_resamples=4)
    assert abs(report.mean) < 0.05
    assert report.verdict == "unstable"
    assert "unstable" in str(report)


def test_stability_is_deterministic_for_a_seed(sample_features):
    engine = sk.KMeansSegmenter(n_clusters=3)  # no seed of its own: stability supplies one
    first = stability(engine, sample_features, n_resamples=3, random_state=7)
    again = stability(engine, sample_features, n_resamples=3, random_state=7)
    assert first == again
    other = stability(engine, sample_features, n_resamples=3, random_state=8)
    assert other.ari != first.ari


def test_resamples_are_subsamples_shared_across_engines_with_varied_seeds(sample_features):
    FITS.clear()
    stability(Recorder(random_state=5), sample_features, n_resamples=4, sample_fraction=0.5)
    first = list(FITS)
    FITS.clear()
    stability(Recorder(), sample_features, n_resamples=4, sample_fraction=0.5)
    second = list(FITS)

    reference_ids, reference_seed = first[0]
    assert reference_ids == tuple(sample_features.customer_ids)
    assert reference_seed == 5  # the engine's own seed is kept for the reference
    assert second[0][1] is not None  # ... and one is supplied when it has none
    resamples = first[1:]
    assert len(resamples) == 4
    for ids, _ in resamples:
        assert len(ids) == len(set(ids)) == 400  # without replacement
        assert set(ids) <= set(reference_ids)
    assert len({ids for ids, _ in resamples}) == 4
    assert len({seed for _, seed in resamples}) == 4
    assert [ids for ids, _ in resamples] == [ids for ids, _ in second[1:]]


class NoiseBeyondSeen(Recorder):
    """Customers beyond the largest x seen at fit are noise; the rest split on y."""

    def _fit(self, features: sk.CustomerFeatures) -> None:
        super()._fit(features)
        self.max_x_ = float(features.frame["x"].max())
        self.segments_ = [
            sk.Segment(sk.NOISE, "Unassigned"),
            sk.Segment(0, "Low"),
            sk.Segment(1, "High"),
        ]

    def _assign(self, features: sk.CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        frame = features.frame
        labels = np.where(frame["y"] < 5, 0, 1)
        return np.where(frame["x"] > self.max_x_, sk.NOISE, labels), {}


def test_stability_keeps_noise_as_a_label_of_its_own():
    features = blobs(n_per_blob=30)
    FITS.clear()
    report = stability(NoiseBeyondSeen(), features, n_resamples=4, sample_fraction=0.5)
    frame = features.frame
    reference = np.where(frame["y"] < 5, 0, 1)  # fitted on everyone: no noise
    expected = []
    for ids, _ in FITS[1:]:
        seen = frame.loc[list(ids), "x"].max()
        labels = np.where(frame["x"] > seen, sk.NOISE, reference)
        expected.append(adjusted_rand_score(reference, labels))
    assert report.ari == pytest.approx(expected)
    assert min(report.ari) < 1.0  # resamples that missed the largest x made noise


def test_stability_errors(sample_features):
    with pytest.raises(InvalidParameterError, match="'n_resamples' parameter of stability"):
        stability(RandomLabels(), sample_features, n_resamples=0)
    for fraction in (0.0, 1.5):
        with pytest.raises(InvalidParameterError, match="'sample_fraction' parameter"):
            stability(RandomLabels(), sample_features, sample_fraction=fraction)
    with pytest.raises(InvalidParameterError, match="must be a Segmenter"):
        stability("kmeans", sample_features)
    with pytest.raises(ValueError, match="cannot segment customers it was not fitted on"):
        stability(NoPredict(), sample_features)
    with pytest.raises(ValueError, match="leaves 1; each resample needs at least 2"):
        stability(RandomLabels(), sample_features, sample_fraction=0.001)


def test_stability_report_guide_states_rules_of_thumb():
    report = StabilityReport((0.8, 0.7), 0.75, 0.07, 0.7, 500, 0.8, "X")
    text = str(report).replace("\n", " ")
    assert report.verdict == "fairly stable"
    assert "Rules of thumb" in text
    assert "above 0.9 stable" in text
    assert "mean 0.750 (std 0.070, min 0.700)" in text
