"""Optional plots: each returns a Figure, draws what it should, saves, and takes an ax."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import segmentkit as sk
from _backends import optional_module
from segmentkit import plots
from segmentkit.errors import InvalidParameterError, NotFittedError

# Without matplotlib the tests that draw are skipped, the one that checks the message runs.
pytestmark = pytest.mark.requires("matplotlib")
matplotlib = optional_module("matplotlib")  # conftest sets MPLBACKEND=Agg
figure = optional_module("matplotlib.figure")

RFM = ["recency_days", "frequency", "monetary"]


@pytest.fixture(scope="module")
def rfm(sample_features):
    return sk.RFMSegmenter().fit_predict(sample_features)


@pytest.fixture(scope="module")
def kmeans(sample_features):
    return sk.KMeansSegmenter(k_range=(2, 5), random_state=0).fit(sample_features)


@pytest.fixture(scope="module")
def hdbscan_model(sample_features):
    # Three clusters and 458 noise customers on the sample.
    return sk.HDBSCANSegmenter(features=RFM, min_cluster_size=20, min_samples=3).fit(
        sample_features
    )


def _saves(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 0


def _points(ax):
    return sum(len(c.get_offsets()) for c in ax.collections)


# --- segment_sizes -------------------------------------------------------------------


def test_segment_sizes_draws_two_bars_per_non_empty_segment_most_valuable_first(rfm, tmp_path):
    fig = plots.segment_sizes(rfm)
    assert isinstance(fig, figure.Figure)
    ax = fig.axes[0]
    shown = rfm.summary().query("customers > 0")
    assert len(ax.patches) == 2 * len(shown)
    assert [t.get_text() for t in ax.get_yticklabels()] == shown.index.tolist()
    # The customer bars carry the shares, in that order, and are labelled in %.
    customers = ax.containers[0]
    widths = [bar.get_width() for bar in customers]
    np.testing.assert_allclose(widths, shown["share"].to_numpy())
    labels = [t.get_text() for t in ax.texts]
    assert f"{shown['share'].iloc[0]:.1%}" in labels
    assert all(label.endswith("%") for label in labels)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Customers", "Revenue"]
    _saves(fig, tmp_path, "sizes")


def test_segment_sizes_draws_on_a_given_ax(rfm, tmp_path):
    fig = figure.Figure()
    left, right = fig.subplots(1, 2)
    assert plots.segment_sizes(rfm, ax=right) is fig
    assert len(right.patches) > 0
    assert len(left.patches) == 0
    _saves(fig, tmp_path, "sizes_ax")


def test_segment_sizes_returns_the_root_figure_of_a_subfigure_axes(rfm):
    fig = figure.Figure()
    ax = fig.subfigures(1, 2)[1].subplots()
    assert plots.segment_sizes(rfm, ax=ax) is fig


# --- rfm_heatmap -----------------------------------------------------------------------


def test_rfm_heatmap_counts_customers_by_r_and_f_score(rfm, tmp_path):
    fig = plots.rfm_heatmap(rfm)
    assert isinstance(fig, figure.Figure)
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    assert grid.shape == (5, 5)
    assert len(ax.texts) == 25
    scores = rfm.assignments
    expected = np.zeros((5, 5))
    for r, f in zip(scores["r_score"], scores["f_score"], strict=True):
        expected[5 - r, f - 1] += 1
    np.testing.assert_array_equal(grid, expected)
    assert ax.texts[4].get_text() == f"{int(expected[0, 4]):,}"  # R=5, F=5 top right
    assert [t.get_text() for t in ax.get_yticklabels()] == ["5", "4", "3", "2", "1"]
    assert len(fig.axes) == 2  # the colour bar
    _saves(fig, tmp_path, "heatmap")


def test_rfm_heatmap_mean_monetary(rfm, sample_features, tmp_path):
    fig = plots.rfm_heatmap(rfm, sample_features, value="monetary")
    grid = fig.axes[0].images[0].get_array()
    money = sample_features.frame["monetary"].reindex(rfm.assignments["customer_id"])
    top_right = (rfm.assignments["r_score"] == 5) & (rfm.assignments["f_score"] == 5)
    assert grid[0, 4] == pytest.approx(money[top_right.to_numpy()].mean())
    # The default features are the segmentation's own.
    default = plots.rfm_heatmap(rfm, value="monetary").axes[0].images[0].get_array()
    np.testing.assert_allclose(default, grid)
    _saves(fig, tmp_path, "heatmap_monetary")


def test_rfm_heatmap_draws_on_a_given_ax(rfm, tmp_path):
    fig = figure.Figure()
    ax = fig.add_subplot()
    assert plots.rfm_heatmap(rfm, ax=ax) is fig
    assert len(ax.images) == 1
    assert len(ax.texts) == 25
    _saves(fig, tmp_path, "heatmap_ax")


def test_rfm_heatmap_refuses_other_engines(kmeans, sample_features):
    with pytest.raises(ValueError, match=r"only RFM segmentations .*lacks the columns"):
        plots.rfm_heatmap(kmeans.predict(sample_features))


def test_rfm_heatmap_checks_value_and_monetary(rfm, sample_features):
    with pytest.raises(InvalidParameterError, match=r"'value' parameter of rfm_heatmap"):
        plots.rfm_heatmap(rfm, value="revenue")
    without = sample_features.frame.drop(columns="monetary")
    with pytest.raises(ValueError, match=r"needs a 'monetary' feature"):
        plots.rfm_heatmap(rfm, without, value="monetary")
    fewer = sample_features.frame.iloc[10:]
    with pytest.raises(ValueError, match=r"features lack 10 of the 800 segmented customers"):
        plots.rfm_heatmap(rfm, fewer, value="monetary")


# --- projection ------------------------------------------------------------------------


def test_projection_in_the_engine_space_one_collection_per_segment(
    kmeans, sample_features, tmp_path
):
    seg = kmeans.predict(sample_features)
    fig = plots.projection(seg, sample_features, segmenter=kmeans)
    assert isinstance(fig, figure.Figure)
    ax = fig.axes[0]
    assert _points(ax) == len(sample_features)
    assert len(ax.collections) == kmeans.n_clusters_
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    # Segments without members (here the non-buyers' two) are not in the legend.
    present = set(seg.assignments["segment_id"])
    assert names == [s.name for s in seg.segments if s.id in present]
    assert ax.get_xlabel().startswith("PC1 (")
    _saves(fig, tmp_path, "projection")


def test_projection_shows_noise_in_grey_first(hdbscan_model, sample_features):
    seg = hdbscan_model.predict(sample_features)
    fig = plots.projection(seg, sample_features, segmenter=hdbscan_model)
    ax = fig.axes[0]
    noise = seg.catalog.set_index("segment_id").loc[sk.NOISE]
    assert noise["customers"] > 0
    first = ax.collections[0]
    assert len(first.get_offsets()) == noise["customers"]
    np.testing.assert_allclose(first.get_facecolor()[0][:3], matplotlib.colors.to_rgb("0.75"))
    assert ax.get_legend().get_texts()[0].get_text() == noise["segment"]
    assert _points(ax) == len(sample_features)


def test_projection_samples_reproducibly_in_the_default_space(rfm, sample_features, tmp_path):
    def offsets(seed):
        ax = plots.projection(rfm, sample_features, sample=300, random_state=seed).axes[0]
        return np.concatenate([c.get_offsets() for c in ax.collections])

    first = offsets(0)
    assert len(first) == 300
    np.testing.assert_array_equal(first, offsets(0))
    assert not np.array_equal(first, offsets(1))
    fig = figure.Figure()
    ax = fig.add_subplot()
    assert plots.projection(rfm, sample_features, sample=None, ax=ax) is fig
    assert _points(ax) == len(sample_features)
    _saves(fig, tmp_path, "projection_ax")


def test_projection_checks_its_inputs(rfm, sample_features):
    with pytest.raises(InvalidParameterError, match=r"'sample' parameter of projection"):
        plots.projection(rfm, sample_features, sample=0)
    with pytest.raises(ValueError, match=r"features lack 5 of the 800 segmented customers"):
        plots.projection(rfm, sample_features.frame.iloc[5:])
    with pytest.raises(InvalidParameterError, match=r"'segmentation' parameter of projection"):
        plots.projection(rfm.assignments, sample_features)
    with pytest.raises(
        InvalidParameterError,
        match=r"'ax' parameter of projection\(\) must be a matplotlib Axes or None",
    ):
        plots.projection(rfm, sample_features, ax="left")


# --- k_selection -----------------------------------------------------------------------


def test_k_selection_plots_silhouette_and_inertia_with_the_chosen_k(kmeans, tmp_path):
    fig = plots.k_selection(kmeans)
    assert isinstance(fig, figure.Figure)
    ax, twin = fig.axes
    scores = kmeans.k_scores_
    silhouette = ax.get_lines()[0]
    inertia = twin.get_lines()[0]
    assert silhouette.get_xdata().tolist() == scores["k"].tolist()
    np.testing.assert_allclose(silhouette.get_ydata(), scores["silhouette"])
    np.testing.assert_allclose(inertia.get_ydata(), scores["inertia"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-1] == f"Chosen k = {kmeans.n_clusters_}"
    # The vertical marker sits at the chosen k.
    assert any(list(line.get_xdata()) == [kmeans.n_clusters_] * 2 for line in ax.get_lines()[1:])
    _saves(fig, tmp_path, "k_selection")


def test_k_selection_draws_on_a_given_ax(kmeans, tmp_path):
    fig = figure.Figure()
    ax = fig.add_subplot()
    assert plots.k_selection(kmeans, ax=ax) is fig
    assert len(fig.axes) == 2  # ax and its twin for the inertia
    assert len(ax.get_lines()[0].get_xdata()) == len(kmeans.k_scores_)
    _saves(fig, tmp_path, "k_selection_ax")


def test_k_selection_errors(sample_features):
    fixed = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(sample_features)
    with pytest.raises(ValueError, match=r"k_scores_ is None: n_clusters=3 was fixed"):
        plots.k_selection(fixed)
    with pytest.raises(NotFittedError, match="not fitted"):
        plots.k_selection(sk.KMeansSegmenter())
    rfm_model = sk.RFMSegmenter().fit(sample_features)
    with pytest.raises(ValueError, match=r"RFMSegmenter has no k_scores_"):
        plots.k_selection(rfm_model)


# --- matplotlib missing ----------------------------------------------------------------


@pytest.mark.requires  # needs nothing: runs without matplotlib
def test_a_missing_matplotlib_names_the_extra(monkeypatch, rfm, kmeans, sample_features):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    calls = [
        lambda: plots.segment_sizes(rfm),
        lambda: plots.rfm_heatmap(rfm),
        lambda: plots.projection(rfm, sample_features),
        lambda: plots.k_selection(kmeans),
    ]
    for call in calls:
        with pytest.raises(ImportError, match=r"pip install 'segmentkit\[plot\]'"):
            call()


def test_profile_heatmap_colours_good_and_bad_by_direction(rfm, tmp_path):
    columns = ["recency_days", "frequency", "monetary", "discount_share"]
    fig = plots.profile_heatmap(rfm, columns=columns)
    ax = fig.axes[0]
    profile = rfm.profile(columns=columns)
    profile = profile[profile["customers"] > 0]
    assert [t.get_text() for t in ax.get_yticklabels()] == profile.index.tolist()
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "Recency",
        "Orders",
        "Net spend",
        "Discount share",
    ]
    ratios = profile.xs("ratio", axis=1, level="statistic")[columns].to_numpy()
    logs = np.clip(np.log2(np.clip(ratios, 0.25, None)), -2, 2)  # a median of 0: ×¼
    signed = np.asarray(ax.images[0].get_array().filled(np.nan))
    # Recency is better lower: its sign flips; orders and spend keep theirs; a discount
    # share has no better or worse: not on the good/bad scale, but grey by distance.
    np.testing.assert_allclose(signed[:, 0], -logs[:, 0])
    np.testing.assert_allclose(signed[:, 1:3], logs[:, 1:3])
    assert np.isnan(signed[:, 3]).all()
    grey = np.asarray(ax.images[1].get_array().filled(np.nan))
    np.testing.assert_allclose(grey[:, 3], np.abs(logs[:, 3]))
    assert np.isnan(grey[:, :3]).all()
    champions = profile.index.get_loc("Champions")
    assert signed[champions, 0] > 0  # a short recency is good news
    assert f"×{ratios[champions, 0]:.2f}" in [t.get_text() for t in ax.texts]
    _saves(fig, tmp_path, "profile_heatmap")


def test_profile_heatmap_defaults_to_the_features_that_tell_segments_apart(rfm):
    fig = plots.profile_heatmap(rfm)
    assert len(fig.axes[0].get_xticklabels()) == 12
    with pytest.raises(ValueError, match="nope"):
        plots.profile_heatmap(rfm, columns=["nope"])


def _runs(sample_tx):
    model = sk.RFMSegmenter().fit(sk.extract_features(sample_tx, as_of="2017-10-01"))
    before = model.predict(sk.extract_features(sample_tx, as_of="2017-10-01"))
    after = model.predict(sk.extract_features(sample_tx, as_of="2018-01-01"))
    return sk.migration(before, after)


def test_migration_flow_draws_every_move_as_wide_as_its_customers(sample_tx, tmp_path):
    moves = _runs(sample_tx)
    fig = plots.migration_flow(moves, min_share=0)
    ax = fig.axes[0]
    bands = {p.get_gid(): p for p in ax.patches if " -> " in (p.get_gid() or "")}
    matrix = moves.matrix
    expected = {
        f"{a} -> {b}": int(matrix.loc[a, b])
        for a in matrix.index
        for b in matrix.columns
        if matrix.loc[a, b] > 0
    }
    assert set(bands) == set(expected)
    for gid, band in bands.items():
        vertices = band.get_path().vertices
        # The band's width at its left end is its customers.
        assert vertices[-2][1] - vertices[0][1] == pytest.approx(expected[gid])
    # Stayers solid, movers light; nodes as tall as each run's segments.
    assert (
        bands["Champions -> Champions"].get_alpha()
        > bands["Champions -> Loyal customers"].get_alpha()
    )
    nodes = {p.get_gid(): p.get_height() for p in ax.patches if " -> " not in (p.get_gid() or "")}
    assert nodes["(new)"] == matrix.loc["(new)"].sum()
    assert "not drawn" not in ax.get_title()
    _saves(fig, tmp_path, "migration_flow")


def test_migration_flow_leaves_out_small_bands_and_says_so(sample_tx):
    moves = _runs(sample_tx)
    fig = plots.migration_flow(moves, min_share=0.02)
    ax = fig.axes[0]
    counts = moves.matrix.to_numpy().ravel()
    small = counts[(counts > 0) & (counts < 0.02 * counts.sum())]
    assert (
        f"({int(small.sum()):,} customers in bands under 2.0% of all not drawn)" in ax.get_title()
    )
    drawn = [p for p in ax.patches if " -> " in (p.get_gid() or "")]
    assert len(drawn) == int(((counts > 0) & (counts >= 0.02 * counts.sum())).sum())
    with pytest.raises(ValueError, match="Migration"):
        plots.migration_flow("not a migration")
