"""Figures of a segmentation (segment sizes, the RFM grid, a 2-D map, the choice of k)
and of a purchase model's backtest (the tracking curve, calibration by decile).

Every function draws with matplotlib's object API on a :class:`matplotlib.figure.Figure`
(never through ``pyplot``), so it works headless, in scripts and in notebooks without
touching the global backend or showing anything. Pass ``ax=`` to draw on an axes of
your own figure; either way the figure is returned, to display or save with
``fig.savefig("segments.png")``.

matplotlib is an optional dependency (``pip install 'segmentkit[plot]'``); it is
imported when a function runs, not when this module is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, InstanceOf, Interval, OneOf, Satisfies, validated
from segmentkit.features._extract import CustomerFeatures
from segmentkit.report._pictures import flow_layout, profile_grid
from segmentkit.results._segmentation import NOISE, Segmentation, feature_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "decile_calibration",
    "k_selection",
    "migration_flow",
    "profile_heatmap",
    "projection",
    "rfm_heatmap",
    "segment_sizes",
    "tracking",
]

_MISSING_MATPLOTLIB = "Plots need matplotlib: pip install 'segmentkit[plot]'."
_SEED = [InstanceOf((int, np.integer), "an int"), NONE]
_SEGMENTATION = [
    InstanceOf(
        (Segmentation,), "a Segmentation, e.g. from sk.RFMSegmenter().fit_predict(features)"
    )
]
_FEATURES = [InstanceOf((CustomerFeatures, pd.DataFrame), "CustomerFeatures, a pandas DataFrame")]


def _is_axes(value: object) -> bool:
    # matplotlib is optional and imported only to draw: an object can only be an Axes
    # once matplotlib.axes is loaded.
    module = sys.modules.get("matplotlib.axes")
    return module is not None and isinstance(value, module.Axes)


_AX = [Satisfies(_is_axes, "a matplotlib Axes"), NONE]


def _is_segmenter(value: object) -> bool:
    # Imported on use: the engines load scikit-learn, which `import segmentkit` must not.
    from segmentkit.engines._base import Segmenter

    return isinstance(value, Segmenter)


def _is_backtest(value: object) -> bool:
    # Imported on use: the models load scipy, which `import segmentkit` must not.
    from segmentkit.models._backtest import Backtest

    return isinstance(value, Backtest)


_BACKTEST = [Satisfies(_is_backtest, "a Backtest, e.g. from sk.backtest(model, tx, ...)")]
_NOISE_COLOR = "0.75"


@validated(segmentation=_SEGMENTATION, ax=_AX)
def segment_sizes(segmentation: Segmentation, *, ax: Axes | None = None) -> Figure:
    """Bars of each segment's share of customers and share of revenue, most valuable first.

    Segments without customers are left out. Revenue is the ``monetary`` feature
    summed over the segment (see :attr:`Segmentation.catalog`); when the features had
    no ``monetary`` column only the customer shares are drawn.

    Parameters
    ----------
    segmentation : Segmentation
        The segmentation to show.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the figure of ``ax`` when given).

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    See Also
    --------
    Segmentation.summary : The same numbers as a table.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> seg = sk.RFMSegmenter().fit_predict(features)
    >>> fig = plots.segment_sizes(seg)
    >>> ax = fig.axes[0]
    >>> len(ax.patches), ax.get_yticklabels()[0].get_text()
    (22, 'Champions')
    >>> fig.savefig("segment_sizes.png")  # doctest: +SKIP
    """
    catalog = segmentation.catalog
    shown = catalog[catalog["customers"] > 0]  # most valuable first, as the catalog
    n = len(shown)
    fig, ax = _figure_and_axes(ax, figsize=(8.0, 1.3 + 0.5 * max(n, 1)))
    from matplotlib.ticker import PercentFormatter

    series = [("Customers", shown["share"].to_numpy(dtype=float), "C0")]
    revenue = shown["revenue_share"].to_numpy(dtype=float)
    if np.isfinite(revenue).any():
        series.append(("Revenue", np.nan_to_num(revenue), "C1"))
    height = 0.8 / len(series)
    positions = np.arange(n, dtype=float)
    for i, (label, values, color) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * height
        bars = ax.barh(positions + offset, values, height=height, label=label, color=color)
        ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=3, fontsize=8)
    values = np.concatenate([s[1] for s in series]) if n else np.zeros(1)
    # Room on the right (and left, for a negative revenue share) for the labels.
    ax.set_xlim(min(0.0, values.min() * 1.25), max(values.max(), 0.01) * 1.2)
    ax.set_yticks(positions, labels=shown["segment"].tolist())
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_xlabel("Share of all customers / of all revenue")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _despine(ax)
    ax.legend(loc="lower right", frameon=False)
    ax.set_title(
        f"Segments by customers and revenue ({segmentation.engine}, "
        f"{len(segmentation):,} customers)"
    )
    return fig


def _is_migration(value: object) -> bool:
    from segmentkit.timeline._migration import Migration

    return isinstance(value, Migration)


_MIGRATION = [Satisfies(_is_migration, "a Migration, e.g. from sk.migration(before, after)")]


@validated(migration=_MIGRATION, min_share=[Interval(float, 0, 1, closed="left")], ax=_AX)
def migration_flow(migration: Any, *, min_share: float = 0.005, ax: Axes | None = None) -> Figure:
    """Where each segment's customers went between two runs, as bands of flow.

    The segments of the earlier run stand on the left, those of the later run on the
    right, each as tall as its customers, most valuable first (as the catalogs list
    them), with ``'(new)'`` customers at the bottom left and ``'(gone)'`` ones at the
    bottom right. A band joins a left and a right segment, as wide as the customers who
    moved that way (``migration.matrix``); bands of customers who stayed (the same
    segment under the migration's matching) are solid, moves are lighter.

    Parameters
    ----------
    migration : Migration
        From :func:`segmentkit.migration`.
    min_share : float, default=0.005
        Bands under this share of all customers are not drawn (the title counts their
        customers), so a few strays do not hide the picture; ``0`` draws every one.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on; each band is a patch whose ``gid`` is
        ``"<from> -> <to>"``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> model = sk.RFMSegmenter().fit(sk.extract_features(tx, as_of="2017-10-01"))
    >>> before = model.predict(sk.extract_features(tx, as_of="2017-10-01"))
    >>> after = model.predict(sk.extract_features(tx, as_of="2018-01-01"))
    >>> fig = plots.migration_flow(sk.migration(before, after))
    >>> bands = [p for p in fig.axes[0].patches if (p.get_gid() or "").count(" -> ")]
    >>> [b.get_gid() for b in bands][:2]
    ['Champions -> Champions', 'Champions -> Loyal customers']
    """
    import matplotlib
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path as CurvePath

    flow = flow_layout(migration, min_share)
    fig, ax = _figure_and_axes(ax, figsize=(9.0, 6.0))
    colours = {name: _colour(matplotlib, i, len(flow.left)) for i, name in enumerate(flow.left)}
    width, x_left, x_right = 0.06, 0.0, 1.0
    for nodes, x, align in ((flow.left, x_left, "right"), (flow.right, x_right, "left")):
        for name, (top, size) in nodes.items():
            if size <= 0:
                continue
            node = Rectangle(
                (x - (width if align == "right" else 0.0), top),
                width,
                size,
                color=colours.get(name, "0.6"),
                gid=name,
            )
            ax.add_patch(node)
            offset = -width - 0.01 if align == "right" else width + 0.01
            ax.text(
                x + offset, top + size / 2, f"{name}  {int(size):,}", ha=align, va="center",
                fontsize=8,
            )  # fmt: skip
    mid = (x_left + x_right) / 2
    codes = [CurvePath.MOVETO] + [CurvePath.CURVE4] * 3 + [CurvePath.LINETO]
    codes += [CurvePath.CURVE4] * 3 + [CurvePath.CLOSEPOLY]
    for band in flow.bands:
        y0, y1, size = band.y0, band.y1, band.customers
        vertices = [
            (x_left, y0), (mid, y0), (mid, y1), (x_right, y1),
            (x_right, y1 + size), (mid, y1 + size), (mid, y0 + size), (x_left, y0 + size),
            (x_left, y0),
        ]  # fmt: skip
        ax.add_patch(
            PathPatch(
                CurvePath(vertices, codes),
                facecolor=colours.get(band.source, "0.6"),
                alpha=0.75 if band.stayed else 0.3,
                linewidth=0,
                gid=f"{band.source} -> {band.target}",
            )
        )
    ax.set_xlim(-0.55, 1.55)
    ax.set_ylim(flow.height, -flow.gap)
    ax.axis("off")
    before, after = migration.before_as_of, migration.after_as_of
    title = f"Customers from {before:%Y-%m-%d} (left) to {after:%Y-%m-%d} (right)"
    if flow.hidden:
        title += f"\n({flow.hidden:,} customers in bands under {min_share:.1%} of all not drawn)"
    ax.set_title(title)
    return fig


@validated(
    segmentation=_SEGMENTATION,
    columns=[
        Satisfies(
            lambda v: isinstance(v, list | tuple) and all(isinstance(c, str) for c in v),
            "a list of feature names",
        ),
        NONE,
    ],
    ax=_AX,
)
def profile_heatmap(
    segmentation: Segmentation,
    *,
    columns: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Segments × features: each median against the typical customer's, good or bad.

    A cell's colour is ``log2`` of the segment's median over the median of all
    customers (as in :meth:`Segmentation.profile`), clipped at ×4 and ×¼, signed so that
    blue is better and red worse by the feature's catalog direction (a short recency is
    blue); features with no better or worse (a discount share) are grey, darker the
    further from typical. Each cell is annotated with its ratio. Segments run top to
    bottom most valuable first; empty segments are left out.

    Parameters
    ----------
    segmentation : Segmentation
        The segmentation to show (with the features it was computed from).
    columns : list of str, optional
        Features to show, in this order; by default the 12 whose ratios differ most
        between segments, in catalog order.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on; its first image holds the signed ``log2`` ratios (NaN for
        the grey, directionless features), its second the directionless ones.

    Raises
    ------
    ValueError
        If a name in ``columns`` is not a numeric feature.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> seg = sk.RFMSegmenter().fit_predict(features)
    >>> fig = plots.profile_heatmap(seg, columns=["recency_days", "frequency", "monetary"])
    >>> ax = fig.axes[0]
    >>> [t.get_text() for t in ax.get_yticklabels()][:2]
    ['Champions', 'Loyal customers']

    Champions' short recency (×0.11 the typical customer) is good news: positive, blue.

    >>> round(float(ax.images[0].get_array()[0, 0]), 2)
    2.0
    """
    grid = profile_grid(segmentation, columns)
    values, signed = grid.logs, grid.signed
    neutral = np.where(np.isnan(signed) & ~np.isnan(values), np.abs(values), np.nan)

    n_rows, n_cols = values.shape
    fig, ax = _figure_and_axes(
        ax, figsize=(max(6.0, 1.0 + 0.95 * n_cols), max(3.0, 1.4 + 0.45 * n_rows))
    )
    import matplotlib

    diverging = matplotlib.colormaps["RdBu"].with_extremes(bad=(0, 0, 0, 0))
    greys = matplotlib.colormaps["Greys"].with_extremes(bad=(0, 0, 0, 0))
    image = ax.imshow(np.ma.masked_invalid(signed), cmap=diverging, vmin=-2, vmax=2, aspect="auto")
    ax.imshow(np.ma.masked_invalid(neutral), cmap=greys, vmin=0, vmax=3, aspect="auto")
    bar = fig.colorbar(image, ax=ax, shrink=0.85, ticks=[-2, 0, 2])
    bar.ax.set_yticklabels(["worse\n(×4 or ×¼)", "typical", "better\n(×4 or ×¼)"])
    for i in range(n_rows):
        for j in range(n_cols):
            ratio = grid.ratios[i, j]
            text = "–" if not np.isfinite(ratio) else f"×{ratio:.2f}"
            strong = grid.strong[i, j]
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if strong else "0.15",
            )
    ax.set_xticks(np.arange(n_cols), labels=grid.labels, rotation=35, ha="right")
    ax.set_yticks(np.arange(n_rows), labels=grid.segments)
    ax.set_title("Segment medians against the typical customer")
    return fig


@validated(
    segmentation=_SEGMENTATION,
    features=[*_FEATURES, NONE],
    value=[OneOf("customers", "monetary")],
    ax=_AX,
)
def rfm_heatmap(
    segmentation: Segmentation,
    features: CustomerFeatures | pd.DataFrame | None = None,
    *,
    value: Literal["customers", "monetary"] = "customers",
    ax: Axes | None = None,
) -> Figure:
    """The R score × F score grid, each cell annotated with its customers or mean spend.

    Rows are R scores, highest (most recent) at the top; columns are F scores, lowest
    (fewest orders) on the left, so the best customers sit in the top-right corner.
    Customers without a purchase (scores 0) are not in the grid; the title says how
    many were left out.

    Parameters
    ----------
    segmentation : Segmentation
        An RFM segmentation (from :class:`~segmentkit.RFMSegmenter`): its assignments
        have ``r_score`` and ``f_score`` columns.
    features : CustomerFeatures or pandas.DataFrame, optional
        Features with a ``monetary`` column for every segmented customer, used when
        ``value='monetary'``; defaults to the features the segmentation was computed
        from. Ignored for ``value='customers'``.
    value : {'customers', 'monetary'}, default='customers'
        What each cell shows: the number of customers, or their mean ``monetary``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the figure of ``ax`` when given), with a colour bar.

    Raises
    ------
    ValueError
        If the segmentation has no ``r_score``/``f_score`` columns (only RFM
        segmentations have them) or no customer with a purchase, or, for
        ``value='monetary'``, the features lack a ``monetary`` column or customers.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> seg = sk.RFMSegmenter().fit_predict(features)
    >>> fig = plots.rfm_heatmap(seg)
    >>> grid = fig.axes[0].images[0].get_array()
    >>> grid.shape, int(grid.sum())
    ((5, 5), 800)

    The top-right cell holds the customers with R = 5 and F = 5:

    >>> int(grid[0, -1])
    70
    >>> fig = plots.rfm_heatmap(seg, features, value="monetary")
    >>> round(float(fig.axes[0].images[0].get_array()[0, -1]), 2)
    288.83
    """
    data = _rfm_grid(segmentation, features, value)
    grid, counts, n_bins = data.values, data.counts, data.n_bins
    if value == "customers":
        label, title = "Customers", "Customers by R and F score"
    else:
        label, title = "Mean monetary", "Mean monetary value by R and F score"

    fig, ax = _figure_and_axes(ax, figsize=(6.4, 5.2))
    import matplotlib

    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="0.93")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="equal")
    fig.colorbar(image, ax=ax, label=label, shrink=0.85)
    for i in range(n_bins):
        for j in range(n_bins):
            cell = grid[i, j]
            if value == "customers":
                text = f"{int(cell):,}"
            elif counts[i, j] == 0:
                text = "–"
            else:
                text = _money(cell)
            # matplotlib types Normalize() as ArrayLike; for one number it is one number.
            dark = np.isfinite(cell) and cast("float", image.norm(cell)) > 0.55
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=9 if n_bins <= 6 else 7,
                color="white" if dark else "0.15",
            )
    scores = np.arange(1, n_bins + 1)
    ax.set_xticks(np.arange(n_bins), labels=[str(s) for s in scores])
    ax.set_yticks(np.arange(n_bins), labels=[str(s) for s in scores[::-1]])
    ax.set_xlabel("F score (higher = more orders)")
    ax.set_ylabel("R score (higher = more recent)")
    left_out = data.left_out
    if left_out:
        title += f"\n({left_out:,} customers without a purchase not shown)"
    ax.set_title(title)
    return fig


@validated(
    segmentation=_SEGMENTATION,
    features=_FEATURES,
    segmenter=[Satisfies(_is_segmenter, "a fitted Segmenter"), NONE],
    sample=[Interval(int, 1, None), NONE],
    random_state=_SEED,
    ax=_AX,
)
def projection(
    segmentation: Segmentation,
    features: CustomerFeatures | pd.DataFrame,
    *,
    segmenter: Any = None,
    sample: int | None = 5000,
    random_state: int | None = 0,
    ax: Axes | None = None,
) -> Figure:
    """A 2-D map of the customers, coloured by segment: PCA of the segmentation's space.

    The space is ``segmenter.transform(features)`` when the segmenter has a
    ``transform`` (k-means, HDBSCAN: the space the clusters were found in); otherwise
    the one :func:`segmentkit.evaluate` measures in, the standardised features with
    skewed ones log-scaled. Its first two principal components, fitted on all
    customers, are the axes. Noise customers (``NOISE``) are grey and drawn below the
    segments; smaller segments are drawn over larger ones so they stay visible.

    Parameters
    ----------
    segmentation : Segmentation
        The segmentation to colour the customers by.
    features : CustomerFeatures or pandas.DataFrame
        Features of every segmented customer (extra customers are ignored).
    segmenter : Segmenter, optional
        The fitted engine; its ``transform`` gives the space when it has one.
    sample : int or None, default=5000
        Most customers drawn; above it a random sample is drawn (the PCA still uses
        all). ``None`` draws every customer.
    random_state : int or None, default=0
        Seed of the sample.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the figure of ``ax`` when given). The axes hold one
        point collection per segment drawn, noise first, and a legend of segment
        names outside on the right.

    Raises
    ------
    ValueError
        If the features lack segmented customers or a parameter is invalid.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> model = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(features)
    >>> fig = plots.projection(model.predict(features), features, segmenter=model)
    >>> ax = fig.axes[0]
    >>> sum(len(c.get_offsets()) for c in ax.collections)
    800
    >>> len(ax.get_legend().get_texts())
    3
    """
    data = _projection_points(segmentation, features, segmenter, sample, random_state)
    fig, ax = _figure_and_axes(ax, figsize=(9.0, 6.0))
    points, drawn, ratios, n = data.points, data.labels, data.ratios, data.n_customers
    size = 14 if len(drawn) <= 2000 else 6

    import matplotlib

    clusters = [s for s in segmentation.segments if s.id != NOISE]
    colours = {s.id: _colour(matplotlib, i, len(clusters)) for i, s in enumerate(clusters)}
    handles = {}
    noise = drawn == NOISE
    if noise.any():
        name = next((s.name for s in segmentation.segments if s.id == NOISE), "Noise")
        xy = points[noise]
        handles[NOISE] = ax.scatter(
            xy[:, 0], xy[:, 1], s=size, color=_NOISE_COLOR, linewidths=0, alpha=0.6, label=name
        )
    present = [s for s in clusters if (drawn == s.id).any()]
    for segment in sorted(present, key=lambda s: -int((drawn == s.id).sum())):
        xy = points[drawn == segment.id]
        handles[segment.id] = ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=size,
            color=colours[segment.id],
            linewidths=0,
            alpha=0.75,
            label=segment.name,
        )
    ordered = [handles[s.id] for s in segmentation.segments if s.id in handles]
    ax.legend(
        handles=ordered,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
        markerscale=2.0 if size < 14 else 1.5,
        title="Segment",
    )
    ax.set_xlabel(f"PC1 ({ratios[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratios[1]:.0%} of variance)")
    has_transform = callable(getattr(segmenter, "transform", None))
    space = (
        f"{type(segmenter).__name__}.transform" if has_transform else "the standardised features"
    )
    title = f"{segmentation.engine} segments in 2-D (PCA of {space})"
    if len(drawn) < n:
        title += f"\n(random sample of {len(drawn):,} of {n:,} customers)"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    _despine(ax)
    return fig


@validated(
    segmenter=[Satisfies(_is_segmenter, "a fitted KMeansSegmenter that searched k")], ax=_AX
)
def k_selection(segmenter: Any, *, ax: Axes | None = None) -> Figure:
    """Silhouette and inertia for each k a :class:`~segmentkit.KMeansSegmenter` tried.

    Silhouette (left axis, higher is better) chose k; inertia (right axis) always falls
    as k grows, so look for its elbow rather than its minimum. The chosen k is marked.
    Both were measured on the customers the candidates were fitted on (see
    ``KMeansSegmenter.k_scores_``).

    Parameters
    ----------
    segmenter : KMeansSegmenter
        A fitted k-means engine that chose k itself (``n_clusters=None``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a twin axes for the inertia is added to it); by default a
        new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the figure of ``ax`` when given).

    Raises
    ------
    ValueError
        If ``k_scores_`` is None because ``n_clusters`` was fixed, or the segmenter
        has no ``k_scores_`` at all.
    segmentkit.errors.NotFittedError
        If the segmenter is not fitted.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> model = sk.KMeansSegmenter(k_range=(2, 6), random_state=0).fit(features)
    >>> fig = plots.k_selection(model)
    >>> silhouette, inertia = (a.get_lines()[0] for a in fig.axes)
    >>> silhouette.get_xdata().tolist(), model.n_clusters_
    ([2, 3, 4, 5, 6], 2)
    """
    from segmentkit.errors import check_is_fitted

    scores = _k_scores(segmenter, check_is_fitted)
    fig, ax = _figure_and_axes(ax, figsize=(7.5, 4.5))
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    k = scores["k"].to_numpy(dtype=np.int64)
    silhouette = scores["silhouette"].to_numpy(dtype=float)
    inertia = scores["inertia"].to_numpy(dtype=float)
    chosen = int(segmenter.n_clusters_)

    (line,) = ax.plot(k, silhouette, marker="o", color="C0", label="Silhouette")
    ax.set_xlabel("k (number of segments)")
    ax.set_ylabel("Silhouette (higher is better)", color="C0")
    ax.tick_params(axis="y", colors="C0")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax.twinx()
    (twin_line,) = twin.plot(k, inertia, marker="s", linestyle="--", color="C1", label="Inertia")
    twin.set_ylabel("Inertia (within-segment sum of squares)", color="C1")
    twin.tick_params(axis="y", colors="C1")
    marker = ax.axvline(chosen, color="0.35", linestyle=":", linewidth=1.2)
    if chosen in k:
        ax.plot(
            [chosen],
            silhouette[k == chosen],
            marker="o",
            markersize=13,
            markerfacecolor="none",
            markeredgecolor="C3",
            markeredgewidth=1.8,
            linestyle="none",
        )
    handles = [
        line,
        twin_line,
        Line2D([], [], color=marker.get_color(), linestyle=":", label=f"Chosen k = {chosen}"),
    ]
    ax.legend(handles=handles, loc="upper right", frameon=False)
    ax.set_title("Choosing k: silhouette and inertia for each k tried")
    ax.grid(alpha=0.3)
    return fig


@validated(backtest=_BACKTEST, ax=_AX)
def tracking(backtest: Any, *, ax: Axes | None = None) -> Figure:
    """The BTYD tracking plot: cumulative repeat purchases, actual against expected.

    The calibration cohort's repeat purchases (purchase days after each customer's
    first) added up at the end of each time unit, with each purchase model's
    expectation for customers of their age; a dashed vertical line marks the end of
    the calibration period. A model that tracks the actual curve past that line
    predicts the aggregate well.

    Parameters
    ----------
    backtest : Backtest
        From :func:`segmentkit.backtest`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the figure of ``ax`` when given).

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import warnings
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     bt = sk.backtest(sk.BetaGeoModel(), tx, calibration_end="2017-09-01",
    ...                      holdout_end="2017-12-01")
    >>> fig = plots.tracking(bt)
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
    ['Actual', 'BG/NBD (expected)']
    """
    table = backtest.tracking
    fig, ax = _figure_and_axes(ax, figsize=(8.0, 4.5))
    names = {key: name for name, key in backtest.keys.items()}
    ends = pd.DatetimeIndex(table["end"]).tz_localize(None)
    ax.plot(ends, table["actual"], color="0.1", linewidth=2, label="Actual")
    expected = [c for c in table.columns if c.startswith("expected_")]
    for i, column in enumerate(expected):
        label = names.get(column.removeprefix("expected_"), column)
        ax.plot(
            ends,
            table[column],
            color=f"C{(3 + i) % 10}",
            linestyle="--",
            linewidth=2,
            label=f"{label} (expected)",
        )
    split = pd.Timestamp(backtest.calibration_end).tz_localize(None)
    ax.axvline(split, color="0.45", linestyle=":", linewidth=1.2)
    ax.annotate(
        "holdout →",
        (split, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -12),
        textcoords="offset points",
        fontsize=9,
        color="0.35",
    )
    ax.set_ylabel("Cumulative repeat purchases")
    ax.set_title(f"Tracking: {backtest.counts['cohort']:,} customers of the calibration cohort")
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    _despine(ax)
    ax.legend(loc="upper left", frameon=False)
    fig.autofmt_xdate()
    return fig


@validated(backtest=_BACKTEST, predictor=[InstanceOf((str,), "a str"), NONE], ax=_AX)
def decile_calibration(
    backtest: Any, *, predictor: str | None = None, ax: Axes | None = None
) -> Figure:
    """Mean predicted against mean actual holdout purchases, by decile of the prediction.

    Customers are split into ten equal groups by predicted purchases (1 = fewest);
    bars of equal height in every decile mean the predictor is calibrated, and
    rising actual bars mean it ranks customers well.

    Parameters
    ----------
    backtest : Backtest
        From :func:`segmentkit.backtest`.
    predictor : str, optional
        A row of ``backtest.metrics`` that predicts purchases (e.g.
        ``'frequency-only'``); the model under test by default.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the figure of ``ax`` when given).

    Raises
    ------
    ValueError
        If ``predictor`` has no purchase predictions (a propensity model) or is not
        in the backtest.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import warnings
    >>> import segmentkit as sk
    >>> from segmentkit import plots
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     bt = sk.backtest(sk.BetaGeoModel(), tx, calibration_end="2017-09-01",
    ...                      holdout_end="2017-12-01")
    >>> fig = plots.decile_calibration(bt)
    >>> len(fig.axes[0].patches)
    20
    """
    name = backtest.model if predictor is None else predictor
    deciles = backtest.deciles[backtest.deciles["predictor"] == name]
    if deciles.empty:
        has = sorted(set(backtest.deciles["predictor"]))
        msg = (
            f"decile_calibration: {name!r} has no purchase predictions in this backtest; "
            f"choose one of {has}."
        )
        raise ValueError(msg)
    fig, ax = _figure_and_axes(ax, figsize=(7.5, 4.5))
    positions = deciles["decile"].to_numpy(dtype=float)
    ax.bar(positions - 0.2, deciles["predicted"], width=0.4, color="C3", label="Predicted")
    ax.bar(positions + 0.2, deciles["actual"], width=0.4, color="C0", label="Actual")
    ax.set_xticks(positions, labels=[str(int(d)) for d in positions])
    ax.set_xlabel("Decile of predicted purchases (1 = fewest)")
    ax.set_ylabel("Mean purchases per customer in the holdout")
    ax.set_title(f"Calibration by decile: {name}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _despine(ax)
    ax.legend(loc="upper left", frameon=False)
    return fig


# --- data of the figures (also drawn by the HTML report) ------------------------------


@dataclass(frozen=True)
class _RFMGrid:
    """The R score × F score grid: row 0 is the highest R score, column 0 the lowest F."""

    values: np.ndarray  # customers, or mean monetary (NaN in an empty cell)
    counts: np.ndarray  # customers in each cell
    left_out: int  # customers without a purchase (scores 0), in no cell

    @property
    def n_bins(self) -> int:
        return int(self.counts.shape[0])


def _rfm_grid(
    segmentation: Segmentation,
    features: CustomerFeatures | pd.DataFrame | None,
    value: str,
) -> _RFMGrid:
    assignments = segmentation.assignments
    absent = [c for c in ("r_score", "f_score") if c not in assignments.columns]
    if absent:
        msg = (
            f"rfm_heatmap draws the R and F scores of RFM segmentations; only RFM "
            f"segmentations (sk.RFMSegmenter) have them. This {segmentation.engine!r} "
            f"segmentation lacks the columns {absent}."
        )
        raise ValueError(msg)
    r = assignments["r_score"].to_numpy(dtype=np.int64)
    f = assignments["f_score"].to_numpy(dtype=np.int64)
    buyers = (r > 0) & (f > 0)
    if not buyers.any():
        msg = "rfm_heatmap found no customer with a purchase (all R and F scores are 0)."
        raise ValueError(msg)
    # The segmentation does not record n_bins: the highest score used on any of R, F
    # and M is the best estimate (the top bin of at least one is always used).
    score_columns = [c for c in ("r_score", "f_score", "m_score") if c in assignments.columns]
    n_bins = int(assignments[score_columns].to_numpy(dtype=np.int64).max())
    counts = np.zeros((n_bins, n_bins))
    np.add.at(counts, (r[buyers] - 1, f[buyers] - 1), 1)
    if value == "customers":
        grid = counts
    else:
        money = _monetary(segmentation, features)[buyers]
        sums = np.zeros((n_bins, n_bins))
        np.add.at(sums, (r[buyers] - 1, f[buyers] - 1), np.nan_to_num(money))
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(counts > 0, sums / counts, np.nan)
    # R = n_bins on the top row.
    return _RFMGrid(grid[::-1], counts[::-1], int((~buyers).sum()))


@dataclass(frozen=True)
class _Projection:
    """The customers drawn on the first two principal components of the space."""

    points: np.ndarray  # (drawn, 2) coordinates
    labels: np.ndarray  # segment id of each drawn customer
    ratios: tuple[float, float]  # share of the variance each component keeps
    n_customers: int  # all segmented customers (drawn or not)
    space: str  # what the space is, in words


def _projection_points(
    segmentation: Segmentation,
    features: CustomerFeatures | pd.DataFrame,
    segmenter: Any,
    sample: int | None,
    random_state: int | None,
    *,
    fit_on_sample: bool = False,
    user: str = "projection",
) -> _Projection:
    from sklearn.decomposition import PCA

    from segmentkit.engines._base import as_features
    from segmentkit.engines._quality import _aligned, _space, _subset

    aligned = _aligned(as_features(features), segmentation, user)
    labels = segmentation.assignments["segment_id"].to_numpy(dtype=np.int64)
    n = len(labels)
    rows = np.arange(n)
    if sample is not None and n > sample:
        rows = np.sort(np.random.default_rng(random_state).choice(n, sample, replace=False))
    if fit_on_sample:
        # For large data: build the space and the PCA from the drawn customers only.
        matrix, space = _space(_subset(aligned, rows), segmenter, None)
        chosen = np.arange(len(rows))
    else:
        matrix, space = _space(aligned, segmenter, None)
        chosen = rows
    width = matrix.shape[1]
    n_components = min(2, width, len(matrix))
    pca = PCA(n_components=n_components).fit(matrix)
    points = pca.transform(matrix[chosen])
    ratios = [float(v) for v in pca.explained_variance_ratio_]
    if n_components < 2:  # a one-feature space: spread along x only
        points = np.column_stack([points, np.zeros(len(points))])
        ratios.append(0.0)
    return _Projection(points, labels[rows], (ratios[0], ratios[1]), n, space)


# --- helpers -------------------------------------------------------------------------


def _figure_and_axes(ax: Any, *, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    try:
        # Import the package first: `import matplotlib.figure` alone would succeed from
        # the module cache even when the package itself is blocked.
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(_MISSING_MATPLOTLIB) from error
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    # An axes of a subfigure belongs to the subfigure; return the figure that saves.
    owner = ax.figure
    while not isinstance(owner, Figure):
        owner = owner.figure
    return owner, ax


def _monetary(
    segmentation: Segmentation, features: CustomerFeatures | pd.DataFrame | None
) -> np.ndarray:
    from segmentkit.engines._base import as_features

    frame = segmentation._features.frame if features is None else as_features(features).frame
    if "monetary" not in frame.columns:
        msg = (
            "rfm_heatmap(value='monetary') needs a 'monetary' feature; the features have "
            f"{list(frame.columns)}."
        )
        raise ValueError(msg)
    rows = feature_rows(frame, segmentation.assignments, "rfm_heatmap(value='monetary')")
    return frame["monetary"].to_numpy(dtype=float, na_value=np.nan)[rows]


def _k_scores(segmenter: Any, check_is_fitted: Any) -> pd.DataFrame:
    name = type(segmenter).__name__
    if "k_scores_" not in vars(segmenter) and hasattr(segmenter, "k_range"):
        check_is_fitted(segmenter)
    if not hasattr(segmenter, "k_scores_"):
        msg = (
            f"k_selection draws the k search of a fitted KMeansSegmenter; {name} has no k_scores_."
        )
        raise ValueError(msg)
    scores = segmenter.k_scores_
    if scores is None:
        fixed = getattr(segmenter, "n_clusters", None)
        msg = (
            f"k_selection needs the scores of a k search, but k_scores_ is None: "
            f"n_clusters={fixed} was fixed, so no k was tried. Fit with n_clusters=None "
            "(and a k_range) to let the engine choose k by silhouette."
        )
        raise ValueError(msg)
    if len(scores) == 0:
        msg = f"k_selection: {name}.k_scores_ is empty; no k was tried."
        raise ValueError(msg)
    return scores


def _money(value: float) -> str:
    # Short enough for a cell: 12.3, 456, 7,890, 123k.
    if abs(value) >= 100_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _colour(matplotlib: Any, i: int, n: int) -> Any:
    if n <= 10:
        return matplotlib.colormaps["tab10"](i)
    # tab20 pairs a dark and a light shade of each hue: all ten dark ones come first,
    # so neighbouring segment ids never get two shades of one hue.
    return matplotlib.colormaps["tab20"]((2 * i) % 20 + (i // 10) % 2)


def _despine(ax: Axes) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
