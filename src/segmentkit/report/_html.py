"""A shareable report of a segmentation: one self-contained HTML file.

The file needs no network to open: the style sheet is inline, every chart is an inline
SVG drawn here (no matplotlib, no script, no web font), so it can be mailed, attached
to a ticket or archived and still look the same years later. It holds aggregates
only: segment sizes, medians, counts of moves and test results, never a customer id.
The projection's dots are anonymous points.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._common._files import PathLike, write_atomic
from segmentkit._common._params import NONE, PATH, InstanceOf, Satisfies, validated
from segmentkit._version import __version__
from segmentkit.errors import InvalidParameterError
from segmentkit.report._pictures import Flow, ProfileGrid, flow_layout, profile_grid
from segmentkit.results._segmentation import NOISE, REPORT_PARAMETERS, Segmentation
from segmentkit.timeline._abtest import COLUMNS as ANALYSIS_TABLE_COLUMNS

__all__ = ["write_backtest_report", "write_report"]

#: Most customers drawn on the 2-D map of a clustering (the PCA is fitted on them too).
PROJECTION_SAMPLE = 3000

#: The columns of sk.segment_items the "What to offer" section reads.
_OFFER_COLUMNS = ("segment", "rank", "item", "buyers", "share", "base_share", "lift")
_DRIFT_COLUMNS = ("segment", "customers_before", "customers_after", "size_change")
# The columns analyze_test documents: one list, so the two cannot drift apart.
_ANALYSIS_COLUMNS = tuple(ANALYSIS_TABLE_COLUMNS)
# tab10, then the light shades of tab20: neighbouring segments never share a hue.
_PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"),
    *("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"),
    *("#c49c94", "#f7b6d2", "#9edae5", "#dbdb8d", "#c7c7c7"),
)
_NOISE_COLOUR = "#b8b8b8"
_BLUES = (
    (0.0, "#f7fbff"),
    (0.25, "#c6dbef"),
    (0.5, "#6baed6"),
    (0.75, "#2171b5"),
    (1.0, "#08306b"),
)
_KEY_MEDIANS = (
    ("median_recency_days", "Median recency (days)"),
    ("median_frequency", "Median orders"),
    ("median_monetary", "Median spend"),
)


@validated(
    segmentation=[
        InstanceOf(
            (Segmentation,), "a Segmentation, e.g. from sk.RFMSegmenter().fit_predict(features)"
        )
    ],
    **REPORT_PARAMETERS,
)
def write_report(
    segmentation: Segmentation,
    path: PathLike,
    *,
    migration: Any = None,
    analysis: Any = None,
    snapshots: Iterable[Segmentation] | None = None,
    title: str | None = None,
    segmenter: Any = None,
    backtest: Any = None,
    offers: pd.DataFrame | None = None,
) -> Path:
    """Write a self-contained HTML report of a segmentation, atomically.

    Parameters
    ----------
    segmentation : Segmentation
        The segmentation to report on.
    path : str or os.PathLike
        Destination, usually ``*.html``; its folder must exist. Replaced only once
        fully written.
    migration : Migration, optional
        From :func:`segmentkit.migration`: adds the moves between two runs.
    analysis : ExperimentAnalysis, optional
        From :func:`segmentkit.analyze_test`: adds the test results.
    snapshots : sequence of Segmentation, optional
        Runs at successive dates (e.g. :func:`segmentkit.snapshots`): adds segment
        sizes over time.
    title : str, optional
        Heading of the report; defaults to ``'Customer segments'``.
    segmenter : Segmenter, optional
        The fitted engine of a clustering: the 2-D map is drawn in its
        ``transform`` space, as :func:`segmentkit.report.plots.projection` does.
    backtest : Backtest, optional
        From :func:`segmentkit.backtest`: adds the purchase model's backtest (metrics
        next to the baselines, tracking curve, deciles).
    offers : pandas.DataFrame, optional
        From :func:`segmentkit.segment_items`: adds "What to offer", per segment the
        items it buys more often than the whole base, with their share and lift.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    segmentkit.errors.InvalidParameterError
        If an argument has the wrong type.
    ValueError
        If ``snapshots`` is empty or not in date order, or a table of ``migration``
        or ``analysis`` lacks columns.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> seg = sk.RFMSegmenter().fit_predict(features)
    >>> path = write_report(seg, Path(tempfile.mkdtemp()) / "report.html")
    >>> text = path.read_text(encoding="utf-8")
    >>> text.count("<section "), "<script" in text
    (4, False)
    """
    _check_tables(migration, analysis)
    if offers is not None:
        _check_columns(offers, _OFFER_COLUMNS, "offers")
    runs = _snapshot_list(snapshots)
    document = _document(
        segmentation, migration, analysis, runs, title, segmenter, backtest, offers
    )
    return write_atomic(path, lambda tmp: tmp.write_text(document, encoding="utf-8"))


# --- arguments -----------------------------------------------------------------------


def _check_tables(migration: Any, analysis: Any) -> None:
    # Their types were checked by the declaration (REPORT_PARAMETERS); here their tables.
    if migration is not None:
        _check_columns(migration.drift, _DRIFT_COLUMNS, "migration.drift")
    if analysis is not None:
        _check_columns(analysis.table, _ANALYSIS_COLUMNS, "analysis.table")


def _check_columns(frame: Any, columns: Sequence[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        msg = f"report: {name} must be a pandas DataFrame. Got {type(frame).__name__}."
        raise InvalidParameterError(msg)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"report: {name} lacks the columns {missing}; it has {list(frame.columns)}."
        raise ValueError(msg)


def _snapshot_list(snapshots: Any) -> list[Any]:
    if snapshots is None:
        return []
    runs = list(snapshots)
    for i, run in enumerate(runs):
        if not (hasattr(run, "as_of") and isinstance(getattr(run, "catalog", None), pd.DataFrame)):
            msg = (
                "The 'snapshots' parameter of report must hold Segmentation objects; "
                f"item {i} is a {type(run).__name__}."
            )
            raise InvalidParameterError(msg)
    if not runs:
        msg = "The 'snapshots' parameter of report is empty; pass None to leave the section out."
        raise ValueError(msg)
    dates = [pd.Timestamp(run.as_of) for run in runs]
    if any(later <= earlier for earlier, later in itertools.pairwise(dates)):
        shown = [_date(d) for d in dates]
        msg = (
            f"The 'snapshots' parameter of report must be in date order, one run per date; "
            f"got as_of {shown}."
        )
        raise ValueError(msg)
    return runs


# --- the document --------------------------------------------------------------------


def _document(
    segmentation: Segmentation,
    migration: Any,
    analysis: Any,
    runs: list[Any],
    title: str | None,
    segmenter: Any,
    backtest: Any = None,
    offers: pd.DataFrame | None = None,
) -> str:
    title = title or "Customer segments"
    colours = _colours(segmentation)
    sections = [
        ("sizes", "Segment sizes", _sizes_section(segmentation, colours)),
        ("catalog", "Segment catalog", _catalog_section(segmentation, colours)),
        ("profiles", "Profiles", _profiles_section(segmentation)),
    ]
    if _is_rfm(segmentation):
        sections.append(("rfm", "RFM grid", _rfm_section(segmentation)))
    else:
        sections.append(("map", "Customer map", _projection_section(segmentation, segmenter)))
    if migration is not None:
        sections.append(("migration", "Migration", _migration_section(migration, colours)))
    if analysis is not None:
        sections.append(("test", "Test results", _analysis_section(analysis)))
    if runs:
        sections.append(("snapshots", "Over time", _snapshots_section(runs, colours)))
    if offers is not None:
        sections.append(("offers", "What to offer", _offers_section(offers, colours)))
    if backtest is not None:
        sections.append(("backtest", "Backtest", _backtest_section(backtest)))
    return _page(title, _header(segmentation, title), sections)


def _page(
    title: str, header: str, sections: list[tuple[str, str, str]], what: str = "segment-level"
) -> str:
    nav = "".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections)
    body = "\n".join(
        f'<section id="{key}" data-section="{key}">\n<h2>{_e(name)}</h2>\n{content}\n</section>'
        for key, name, content in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="segmentkit {_e(__version__)}">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{header}
<nav id="contents">{nav}</nav>
<main>
{body}
</main>
<footer>Made with segmentkit {_e(__version__)}. This file holds {what} figures
only: no customer is named or listed.</footer>
</body>
</html>
"""


def _header(segmentation: Segmentation, title: str) -> str:
    catalog = segmentation.catalog
    revenue = float(catalog["revenue"].sum(min_count=1))
    used = int((catalog["customers"] > 0).sum())
    facts = [
        ("engine", "Engine", segmentation.engine),
        ("as-of", "Data as of", _date(segmentation.as_of)),
        ("customers", "Customers", _int(len(segmentation))),
        ("revenue", "Revenue", _money(revenue)),
        ("segments", "Segments", f"{used} of {len(segmentation.segments)} used"),
    ]
    cards = "".join(
        f'<div class="fact" data-fact="{key}"><span>{_e(label)}</span><b>{_e(value)}</b></div>'
        for key, label, value in facts
    )
    return (
        f'<header id="report-header">\n<h1 id="report-title">{_e(title)}</h1>\n'
        f'<div class="facts">{cards}</div>\n</header>'
    )


# --- sections ------------------------------------------------------------------------


def _sizes_section(segmentation: Segmentation, colours: dict[str, str]) -> str:
    shown = segmentation.catalog  # most valuable first
    shown = shown[shown["customers"] > 0]
    has_revenue = bool(np.isfinite(shown["revenue_share"].to_numpy(dtype=float)).any())
    note = (
        "Each segment's share of all customers and, where they differ, its share of all "
        "revenue: a segment whose revenue bar is longer matters more than its size says."
        if has_revenue
        else "Each segment's share of all customers (the data has no spend)."
    )
    negative = shown[shown["revenue"].to_numpy(dtype=float) < 0] if has_revenue else shown[:0]
    if len(negative):
        listed = ", ".join(
            f"{name} ({_money(value)})"
            for name, value in zip(negative["segment"], negative["revenue"], strict=True)
        )
        note += (
            f" Negative revenue ({listed}): these customers' returns and cancellations "
            "exceed what they bought in the period, so they take revenue away; their "
            "bar is drawn at zero, the figure beside it is the true one."
        )
    return f'<p class="note">{_e(note)}</p>\n' + _bars_svg(shown, has_revenue, colours)


def _bars_svg(shown: pd.DataFrame, has_revenue: bool, colours: dict[str, str]) -> str:
    names = shown["segment"].astype(str).tolist()
    share = shown["share"].to_numpy(dtype=float)
    revenue = np.nan_to_num(shown["revenue_share"].to_numpy(dtype=float))
    label_width = int(min(max(7.2 * max((len(n) for n in names), default=4) + 14, 90), 280))
    width, right = 780, 64
    bar = 13 if has_revenue else 18
    row = 2 * bar + 10 if has_revenue else bar + 12
    top = 28
    height = top + row * max(len(names), 1) + 6
    values = np.concatenate([share, revenue]) if has_revenue else share
    # Bars start at zero: a negative revenue share is written, not drawn below the axis.
    low = 0.0
    high = max(float(values.max(initial=0.0)), 0.01)
    scale = (width - label_width - right) / (high - low)
    zero = label_width + (0 - low) * scale
    parts = [_legend_svg([("Customers", "#4e79a7"), ("Revenue", "#f28e2b")][: 1 + has_revenue])]
    for i, name in enumerate(names):
        y = top + i * row
        colour = colours.get(name, _PALETTE[0])
        tip = f"{name}: {_int(shown['customers'].iloc[i])} customers ({_pct(share[i])})"
        if has_revenue:
            tip += f", revenue {_money(shown['revenue'].iloc[i])} ({_pct(revenue[i])})"
        rows = [(share[i], "#4e79a7")] + ([(revenue[i], "#f28e2b")] if has_revenue else [])
        group = [
            f'<g data-segment="{_e(name)}"><title>{_e(tip)}</title>',
            f'<rect x="0" y="{y - 3}" width="5" height="{row - 6}" fill="{colour}"/>',
            f'<text x="{label_width - 8}" y="{y + (row - 10) / 2 + 4:.1f}" '
            f'text-anchor="end" class="label">{_e(_clip(name, 40))}</text>',
        ]
        for j, (value, fill) in enumerate(rows):
            x0 = zero
            w = max(value, 0.0) * scale
            yy = y + j * (bar + 2)
            group.append(
                f'<rect x="{x0:.1f}" y="{yy}" width="{max(w, 0.5):.1f}" height="{bar}" '
                f'fill="{fill}" rx="2"/>'
                f'<text x="{max(zero, x0 + w) + 4:.1f}" y="{yy + bar - 3}" class="value">'
                f"{_e(_pct(value))}</text>"
            )
        group.append("</g>")
        parts.append("".join(group))
    parts.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top - 4}" y2="{height - 4}" class="axis"/>'
    )
    return _svg(width, height, "sizes-chart", "Segment shares of customers and revenue", parts)


def _catalog_section(segmentation: Segmentation, colours: dict[str, str]) -> str:
    catalog = segmentation.catalog  # most valuable first
    medians = [(c, label) for c, label in _KEY_MEDIANS if c in catalog.columns]
    head = (
        '<tr><th>Segment</th><th class="text">Description</th><th>Customers</th><th>Share</th>'
        "<th>Revenue</th><th>Revenue share</th>"
        + "".join(f"<th>{_e(label)}</th>" for _, label in medians)
        + "</tr>"
    )
    rows = []
    for record in catalog.to_dict("records"):
        name = str(record["segment"])
        empty = ' class="empty"' if record["customers"] == 0 else ""
        cells = [
            f'<td class="name"><i style="background:{colours.get(name, _NOISE_COLOUR)}"></i>'
            f"{_e(name)}</td>",
            f'<td class="text">{_e(str(record["description"] or ""))}</td>',
            f"<td>{_int(record['customers'])}</td>",
            _share_cell(record["share"], "#4e79a7"),
            f"<td>{_money(record['revenue'])}</td>",
            _share_cell(record["revenue_share"], "#f28e2b"),
        ]
        cells += [
            f"<td>{_in_unit(record[c], _unit(c.removeprefix('median_')))}</td>" for c, _ in medians
        ]
        rows.append(f'<tr data-segment="{_e(name)}"{empty}>{"".join(cells)}</tr>')
    note = "All segments, most valuable first (by revenue, then customers)."
    if np.isfinite(catalog["revenue"].to_numpy(dtype=float)).any():
        note += (
            " Revenue is the customers' net spend (purchases minus returns) over the "
            "observation period."
        )
    if medians:
        note += " Medians are over the segment's customers."
    return (
        f'<p class="note">{_e(note)}</p>\n<div class="scroll"><table id="catalog-table">'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


#: Segments per profile table: with the features as rows, seven segment columns fit a
#: 1,280 px page; more segments continue in the next table.
_PROFILE_COLUMNS = 7


def _profiles_section(segmentation: Segmentation) -> str:
    numeric = segmentation._features.frame.select_dtypes("number")
    if numeric.shape[1] == 0:
        return (
            '<p class="note" id="profiles-missing">No profiles: this segmentation carries no '
            "numeric features (it was read from a file).</p>"
        )
    profile = segmentation.profile()
    profile = profile[profile["customers"] > 0]
    # Most valuable first, as the catalog.
    profile = profile.loc[[n for n in segmentation.catalog["segment"] if n in profile.index]]
    base = profile.attrs.get("base_median", {})
    # A row of dashes (no segment and no customer has a value) says nothing.
    features = [
        f
        for f in dict.fromkeys(profile.columns.get_level_values("feature"))
        if (f, "median") in profile.columns
        and (profile[(f, "median")].notna().any() or not _missing(base.get(f)))
    ]
    rows_of = {f: _profile_row_head(f) for f in features}
    names = [str(name) for name in profile.index]
    tables = []
    for start in range(0, len(names), _PROFILE_COLUMNS):
        chunk = names[start : start + _PROFILE_COLUMNS]
        head = (
            '<tr><th class="feature">Feature</th><th>All customers<small class="label">'
            "median</small></th>"
            + "".join(f'<th class="segment">{_e(name)}</th>' for name in chunk)
            + "</tr>"
        )
        body = []
        for feature in features:
            unit = _unit(feature)
            cells = [
                rows_of[feature],
                f'<td class="base">{_in_unit(base.get(feature), unit)}</td>',
            ]
            for name in chunk:
                median = profile.loc[name, (feature, "median")]
                ratio = profile.loc[name, (feature, "ratio")]
                ratio_text = f"×{ratio:.2f}" if np.isfinite(ratio) else ""
                cells.append(
                    f'<td style="background:{_ratio_colour(ratio, _direction(feature))}" '
                    f'title="{_e(f"{name}: {feature} {_in_unit(median, unit)} {ratio_text}")}">'
                    f"{_in_unit(median, unit)}<small>{_e(ratio_text)}</small></td>"
                )
            body.append(f'<tr data-feature="{_e(feature)}">{"".join(cells)}</tr>')
        table_id = (
            "profiles-table" if start == 0 else f"profiles-table-{start // _PROFILE_COLUMNS + 1}"
        )
        tables.append(
            f'<table id="{table_id}" class="profile"><thead>{head}</thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    note = (
        "The median of each feature in each segment, and (×) how it compares with the "
        "median of all customers: ×2.00 is twice the typical customer. Hover a feature "
        "for its code name and definition. The picture above shows the features that "
        "differ most between segments; the tables show them all."
    )
    legend = (
        '<ul class="legend inline">'
        f'<li><i style="background:{_GOOD}"></i>better than the typical customer</li>'
        f'<li><i style="background:{_BAD}"></i>worse than the typical customer</li>'
        f'<li><i style="background:{_NEUTRAL}"></i>higher or lower, neither better nor '
        "worse</li></ul>"
    )
    picture = _profile_svg(profile_grid(segmentation))
    return (
        f"{legend}\n{picture}\n<h3>Medians by segment</h3>"
        f'<p class="note">{_e(note)}</p>\n' + "\n".join(tables)
    )


def _profile_svg(grid: ProfileGrid) -> str:
    """Every segment against the typical customer on the features that tell them apart."""
    if not grid.features or not grid.segments:
        return ""
    cell_w, cell_h, left, top = 66, 26, 280, 120
    # Room on the right for the last feature's slanted label.
    width = left + cell_w * len(grid.features) + 120
    height = top + cell_h * len(grid.segments) + 8
    parts = []
    for j, label in enumerate(grid.labels):
        x = left + j * cell_w + cell_w / 2
        parts.append(
            f'<text transform="translate({x:.1f} {top - 8}) rotate(-40)" class="tick" '
            f'data-feature="{_e(grid.features[j])}"><title>{_e(grid.features[j])}</title>'
            f"{_e(_clip(label, 26))}</text>"
        )
    for i, segment in enumerate(grid.segments):
        y = top + i * cell_h
        parts.append(
            f'<text x="{left - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end" '
            f'class="label"><title>{_e(segment)}</title>{_e(_clip(segment, 40))}</text>'
        )
        for j, feature in enumerate(grid.features):
            ratio = grid.ratios[i, j]
            fill = _ratio_colour(ratio, grid.directions[j])
            strong = grid.strong[i, j]
            text = f"×{ratio:.2f}" if np.isfinite(ratio) else "–"
            tip = f"{segment}: {grid.labels[j]} {text} the typical customer"
            x = left + j * cell_w
            parts.append(
                f'<g data-cell="{_e(segment)}|{_e(feature)}"><title>{_e(tip)}</title>'
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{fill}" stroke="#e4e4e4"/>'
                f'<text x="{x + (cell_w - 2) / 2:.1f}" y="{y + cell_h / 2 + 3:.1f}" '
                f'text-anchor="middle" style="font-size:11px;fill:'
                f'{"#ffffff" if strong else "#222222"}">{_e(text)}</text></g>'
            )
    label = "Segment medians against the typical customer"
    return _svg(width, height, "profile-heatmap", label, parts)


def _profile_row_head(feature: str) -> str:
    """A feature's row header: its label and unit, its code name and definition on hover."""
    from segmentkit.features._catalog import column_definition

    definition = column_definition(feature)
    label = definition.label if definition is not None and definition.label else feature
    unit = _unit(feature)
    described = definition.description if definition is not None else ""
    title = f"{feature}: {described}" if described else feature
    unit_text = f'<small class="label">{_e(_UNIT_LABELS.get(unit, unit))}</small>' if unit else ""
    return f'<th class="feature" title="{_e(title)}">{_e(label)}{unit_text}</th>'


#: How a unit reads under a feature's label.
_UNIT_LABELS = {"currency": "money", "share": "percent"}


def _unit(feature: str) -> str:
    from segmentkit.features._catalog import column_definition

    definition = column_definition(feature)
    return definition.unit if definition is not None else ""


def _direction(feature: str) -> str:
    from segmentkit.features._catalog import column_definition

    definition = column_definition(feature)
    return definition.direction if definition is not None else "neutral"


def _in_unit(value: Any, unit: str) -> str:
    """A value as its unit reads, the same number of decimals down a column.

    Money to the cent, shares in percent, days to a tenth, ratios to a hundredth;
    counts whole, or to a tenth when a median falls between two counts.
    """
    if unit in ("currency", "money"):
        return _money(value)
    if unit in ("share", "percent"):
        return _pct(value)
    if _missing(value):
        return "—"
    value = float(value)
    if unit in ("days", "minutes", "years"):
        return f"{value:,.1f}"
    if unit == "ratio":
        return f"{value:,.2f}"
    if unit in _COUNTS:
        return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    return _number(value)


#: Units that count things: whole numbers, but for a median between two counts.
_COUNTS = frozenset(
    ("orders", "units", "products", "categories", "brands", "codes", "carts", "events",
     "sessions")
)  # fmt: skip


def _rfm_section(segmentation: Segmentation) -> str:
    from segmentkit.report.plots import _rfm_grid

    scores = segmentation.assignments[["r_score", "f_score"]].to_numpy(dtype=np.int64)
    if not ((scores[:, 0] > 0) & (scores[:, 1] > 0)).any():
        return '<p class="note">No RFM grid: no customer has a purchase.</p>'
    grids = [("customers", "Customers", _rfm_grid(segmentation, None, "customers"))]
    if "monetary" in segmentation._features.frame.columns:
        grids.append(("monetary", "Mean spend", _rfm_grid(segmentation, None, "monetary")))
    left_out = grids[0][2].left_out
    note = (
        "Customers by R score (rows, most recent at the top) and F score (columns, most "
        "orders on the right): the best customers sit in the top-right corner, the lost "
        "ones bottom-left."
    )
    if left_out:
        note += f" {left_out:,} customers without a purchase have no scores and are not shown."
    charts = "".join(_heatmap_svg(key, label, grid) for key, label, grid in grids)
    return f'<p class="note">{_e(note)}</p>\n<div class="charts" id="rfm-heatmap">{charts}</div>'


def _heatmap_svg(key: str, label: str, grid: Any) -> str:
    n = grid.n_bins
    cell = 52 if n <= 6 else max(22, 312 // n)
    left, top = 62, 30
    width, height = left + n * cell + 12, top + n * cell + 46
    values = grid.values
    finite = values[np.isfinite(values)]
    high = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    parts = [f'<text x="{left}" y="18" class="title">{_e(label)} by R and F score</text>']
    for i in range(n):
        for j in range(n):
            value = values[i, j]
            x, y = left + j * cell, top + i * cell
            r, f = n - i, j + 1
            if key == "customers":
                text = _int(value)
            elif grid.counts[i, j] == 0:
                text = "–"
            else:
                # To the cent where a cell has room for it.
                text = _money(value) if abs(value) < 1000 else _short(value)
            share = value / high if np.isfinite(value) and grid.counts[i, j] > 0 else math.nan
            fill = _blues(share) if np.isfinite(share) else "#eeeeee"
            ink = "#ffffff" if np.isfinite(share) and share > 0.55 else "#222222"
            tip = f"R {r}, F {f}: {_int(grid.counts[i, j])} customers"
            if key == "monetary" and grid.counts[i, j] > 0:
                tip += f", mean spend {_money(value)}"
            font = 12 if cell >= 44 else 9
            parts.append(
                f'<g data-cell="{r}-{f}"><title>{_e(tip)}</title>'
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}"/>'
                f'<text x="{x + (cell - 2) / 2:.1f}" y="{y + cell / 2 + 3:.1f}" '
                f'text-anchor="middle" style="font-size:{font}px;fill:{ink}">{_e(text)}</text></g>'
            )
        parts.append(
            f'<text x="{left - 8}" y="{top + i * cell + cell / 2 + 3:.1f}" '
            f'text-anchor="end" class="tick">{n - i}</text>'
        )
    for j in range(n):
        parts.append(
            f'<text x="{left + j * cell + cell / 2 - 1:.1f}" y="{top + n * cell + 14}" '
            f'text-anchor="middle" class="tick">{j + 1}</text>'
        )
    middle = top + n * cell / 2
    parts.append(
        f'<text x="{left + n * cell / 2:.1f}" y="{top + n * cell + 34}" text-anchor="middle" '
        'class="axis-label">F score (more orders →)</text>'
        f'<text transform="translate(20 {middle:.1f}) rotate(-90)" text-anchor="middle" '
        'class="axis-label">R score (more recent →)</text>'
    )
    return _svg(width, height, f"rfm-{key}", f"{label} by R and F score", parts, grow=False)


def _projection_section(segmentation: Segmentation, segmenter: Any) -> str:
    from segmentkit.report.plots import _projection_points

    frame = segmentation._features.frame
    numeric = [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    if (not numeric and segmenter is None) or len(segmentation) < 2:
        return (
            '<p class="note" id="map-missing">No map: this segmentation carries no numeric '
            "features (it was read from a file) or has fewer than two customers.</p>"
        )
    data = _projection_points(
        segmentation,
        segmentation._features,
        segmenter,
        PROJECTION_SAMPLE,
        0,
        fit_on_sample=True,
        user="report",
    )
    names = {s.id: s.name for s in segmentation.segments}
    colours = _colours(segmentation)
    drawn = len(data.labels)
    space = (
        f"the space {type(segmenter).__name__} clusters in"
        if callable(getattr(segmenter, "transform", None))
        else "the customers' standardised features (skewed ones log-scaled)"
    )
    note = (
        f"Each dot is a customer, placed by the first two principal components (PCA) of "
        f"{space}: customers close together are alike. The axes keep "
        f"{data.ratios[0]:.0%} and {data.ratios[1]:.0%} of the variance; what they leave "
        "out can make segments look more mixed than they are."
    )
    if drawn < data.n_customers:
        note += f" A random sample of {drawn:,} of the {data.n_customers:,} customers is drawn."
    width, height, margin, pad = 720, 460, 44, 10
    points = data.points
    # A few far-out customers would squeeze everyone else into a corner: the frame
    # spans the central 99% (plus a margin) and the note counts who is left outside.
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    low, high = low - 0.08 * span, high + 0.08 * span
    span = high - low
    inside = ((points >= low) & (points <= high)).all(axis=1)
    outside = int((~inside).sum())
    if outside:
        note += f" {outside:,} outlying customers fall outside the frame and are not drawn."
    x = margin + pad + (points[:, 0] - low[0]) / span[0] * (width - 2 * margin - 2 * pad)
    y = height - margin - pad - (points[:, 1] - low[1]) / span[1] * (height - 2 * margin - 2 * pad)
    present, counts = np.unique(data.labels, return_counts=True)
    # Noise first and large segments before small ones, so small ones stay visible on top.
    order = sorted(zip(present, counts, strict=True), key=lambda p: (p[0] != NOISE, -p[1]))
    dot = 5 if drawn <= 1500 else 4
    parts = [
        f'<rect x="{margin}" y="{margin}" width="{width - 2 * margin}" '
        f'height="{height - 2 * margin}" class="frame"/>'
    ]
    legend = []
    for label, count in order:
        name = names.get(int(label), str(label))
        colour = _NOISE_COLOUR if label == NOISE else colours.get(name, _PALETTE[0])
        chosen = (data.labels == label) & inside
        # A zero-length path segment with round caps draws a dot: far smaller than circles.
        path = "".join(f"M{a:.1f} {b:.1f}h0" for a, b in zip(x[chosen], y[chosen], strict=True))
        parts.append(
            f'<path data-segment="{_e(name)}" d="{path}" stroke="{colour}" '
            f'stroke-width="{dot}" stroke-linecap="round" opacity="0.8">'
            f"<title>{_e(name)}: {count:,} customers drawn</title></path>"
        )
    for s in segmentation.segments:
        if s.id in set(present.tolist()):
            colour = _NOISE_COLOUR if s.id == NOISE else colours.get(s.name, _PALETTE[0])
            legend.append(f'<li><i style="background:{colour}"></i>{_e(s.name)}</li>')
    parts.append(
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle" class="axis-label">'
        f"PC1 ({data.ratios[0]:.0%} of variance)</text>"
        f'<text transform="translate(16 {height / 2}) rotate(-90)" text-anchor="middle" '
        f'class="axis-label">PC2 ({data.ratios[1]:.0%} of variance)</text>'
    )
    chart = _svg(width, height, "projection-chart", "Customers in two dimensions", parts)
    return (
        f'<p class="note">{_e(note)}</p>\n<div class="chart-with-legend">{chart}'
        f'<ul class="legend">{"".join(legend)}</ul></div>'
    )


def _migration_section(migration: Any, colours: dict[str, str] | None = None) -> str:
    before = _date(getattr(migration, "before_as_of", None))
    after = _date(getattr(migration, "after_as_of", None))
    matrix, shares = migration.matrix, migration.shares
    head = "<tr><th>from \\ to</th>" + "".join(f"<th>{_e(str(c))}</th>" for c in matrix.columns)
    head += "<th>Total</th></tr>"
    rows = []
    for row_name in matrix.index:
        counts = matrix.loc[row_name]
        cells = []
        for column in matrix.columns:
            count = counts[column]
            share = float(shares.at[row_name, column]) if row_name in shares.index else math.nan
            fill = _blues(0.85 * share) if np.isfinite(share) and count else "transparent"
            ink = ' style="color:#fff"' if np.isfinite(share) and share > 0.6 else ""
            kinds = ["same"] * (str(row_name) == str(column)) + ["zero"] * (not count)
            same = f' class="{" ".join(kinds)}"' if kinds else ""
            tip = f"{row_name} → {column}: {_int(count)} customers ({_pct(share)} of the row)"
            cells.append(
                f'<td{same} title="{_e(tip)}"><div style="background:{fill}"{ink}>'
                f"{_int(count)}<small>{_pct(share, 0) if count else ''}</small></div></td>"
            )
        rows.append(
            f'<tr data-segment="{_e(str(row_name))}"><th>{_e(str(row_name))}</th>'
            f"{''.join(cells)}<td>{_int(counts.sum())}</td></tr>"
        )
    note = (
        f"Where the customers of {before} (rows) are on {after} (columns): each cell counts "
        "customers and, below, the share of its row. (new) are customers who appeared, "
        "(gone) customers who disappeared; framed cells kept their segment."
    )
    parts = [
        _flow_svg(flow_layout(migration), colours or {}),
        f'<p class="note">{_e(note)}</p>',
        f'<div class="scroll"><table id="migration-matrix" class="matrix"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>",
        "<h3>Segment sizes then and now</h3>",
        _drift_table(migration.drift),
    ]
    matching = getattr(migration, "matching", None)
    if isinstance(matching, pd.DataFrame) and len(matching):
        parts.append(
            '<h3>Clusters matched across the refit</h3><p class="note">Cluster numbers mean '
            "nothing across refits; each earlier cluster is paired with the later one it "
            "shares most customers with.</p>"
        )
        parts.append(_plain_table(matching, "matching-table"))
    return "\n".join(parts)


def _flow_svg(flow: Flow, known: dict[str, str]) -> str:
    """The migration as bands from the earlier segments (left) to the later (right).

    Segments keep the colours the rest of the report gives them (``known``); a segment
    only the earlier run has takes the next free colour.
    """
    width, plot_h, top = 1060, 420.0, 26
    x_left, x_right, bar = 300, 700, 14
    scale = plot_h / max(flow.height, 1.0)
    colours = {"(new)": _NOISE_COLOUR, "(gone)": _NOISE_COLOUR, **known}
    spare = [c for c in _PALETTE if c not in set(known.values())] or list(_PALETTE)
    others = [n for n in dict.fromkeys([*flow.left, *flow.right]) if n not in colours]
    colours.update({name: spare[i % len(spare)] for i, name in enumerate(others)})
    parts, lowest = [], 0.0
    for band in flow.bands:
        y0, y1 = top + band.y0 * scale, top + band.y1 * scale
        size = max(band.customers * scale, 0.6)
        x0, x1 = x_left + bar, x_right
        mid = (x0 + x1) / 2
        path = (
            f"M{x0} {y0:.1f}C{mid} {y0:.1f} {mid} {y1:.1f} {x1} {y1:.1f}"
            f"L{x1} {y1 + size:.1f}C{mid} {y1 + size:.1f} {mid} {y0 + size:.1f} "
            f"{x0} {y0 + size:.1f}Z"
        )
        tip = f"{band.source} → {band.target}: {_int(band.customers)} customers"
        tip += " (kept their segment)" if band.stayed else ""
        parts.append(
            f'<path d="{path}" data-band="{_e(band.source)} -> {_e(band.target)}" '
            f'fill="{colours.get(band.source, _NOISE_COLOUR)}" '
            f'fill-opacity="{0.7 if band.stayed else 0.3}"><title>{_e(tip)}</title></path>'
        )
    for nodes, x, anchor in ((flow.left, x_left, "end"), (flow.right, x_right, "start")):
        last = -math.inf
        for name, (node_top, size) in nodes.items():
            if size <= 0:
                continue
            y, h = top + node_top * scale, max(size * scale, 1.0)
            fill = colours.get(name, _NOISE_COLOUR)
            # Thin segments' labels would overlap: each is pushed below the one before.
            label_y = max(y + h / 2 + 4, last + 15)
            last = label_y
            lowest = max(lowest, label_y)
            text_x = x - 6 if anchor == "end" else x + bar + 6
            parts.append(
                f'<g data-node="{_e(name)}"><title>{_e(name)}: {_int(size)} customers</title>'
                f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{fill}"/>'
                f'<text x="{text_x}" y="{label_y:.1f}" text-anchor="{anchor}" class="label">'
                f"{_e(_clip(name, 40))} · {_int(size)}</text></g>"
            )
    height = int(max(top + plot_h + 12, lowest + 10))
    parts.append(
        f'<text x="{x_left + bar / 2}" y="16" text-anchor="middle" class="axis-label">before'
        f'</text><text x="{x_right + bar / 2}" y="16" text-anchor="middle" '
        'class="axis-label">after</text>'
    )
    svg = _svg(width, height, "migration-flow", "Where each segment's customers went", parts)
    if flow.hidden:
        svg += (
            f'<p class="note">{_int(flow.hidden)} customers in moves under '
            f"{_pct(flow.min_share)} of all are counted in the table below, not drawn.</p>"
        )
    return svg


def _drift_table(drift: pd.DataFrame) -> str:
    columns: list[tuple[str, str, Callable[[Any], str]]] = [
        ("segment", "Segment", str),
        ("customers_before", "Customers before", _int),
        ("customers_after", "Customers after", _int),
        ("size_change", "Change", lambda v: _signed(v, _int)),
        ("size_change_pct", "Change %", lambda v: _signed(v, _pct)),
        ("revenue_before", "Revenue before", _money),
        ("revenue_after", "Revenue after", _money),
        ("revenue_change", "Revenue change", lambda v: _signed(v, _money)),
        ("largest_shift", "Largest profile shift", lambda v: "" if _missing(v) else str(v)),
        ("largest_shift_sd", "Shift (SD)", lambda v: _signed(v, _number)),
    ]
    shown = [c for c in columns if c[0] in drift.columns]
    head = "".join(f"<th>{_e(label)}</th>" for _, label, _ in shown)
    rows = []
    for record in drift.to_dict("records"):
        cells = []
        for key, _, fmt in shown:
            value = record[key]
            kind = ""
            if key in ("size_change", "size_change_pct", "revenue_change") and not _missing(value):
                kind = ' class="up"' if value > 0 else ' class="down"' if value < 0 else ""
            text_class = ' class="name"' if key == "segment" else kind
            cells.append(f"<td{text_class}>{_e(fmt(value))}</td>")
        rows.append(f'<tr data-segment="{_e(str(record["segment"]))}">{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table id="drift-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _analysis_section(analysis: Any) -> str:
    table = analysis.table
    control = getattr(analysis, "control", None)
    confidence = getattr(analysis, "confidence", None)
    if isinstance(confidence, float | int) and 0 < confidence < 1:
        level, alpha = f"{confidence:.0%}", 1 - float(confidence)
    else:
        level, alpha = "confidence", 0.05
    high = table["conversion_ci_high"].to_numpy(dtype=float)
    high = high[np.isfinite(high)]
    scale = float(high.max()) if high.size and high.max() > 0 else 1.0
    head = (
        "<tr><th>Segment</th><th>Arm</th><th>Customers</th><th>Conversions</th>"
        "<th>Conversion rate</th><th></th><th>Conversion lift</th>"
        "<th>Revenue per customer</th><th>Revenue lift</th><th>Verdict</th><th>Note</th></tr>"
    )
    rows = []
    previous = None
    for record in table.to_dict("records"):
        arm = str(record["arm"])
        is_control = control is not None and arm == str(control)
        # The segment is named once, on the first of its arms.
        segment = str(record["segment"])
        shown, previous = ("" if segment == previous else segment), segment
        verdict = '<span class="badge">control</span>' if is_control else _verdict(record, alpha)
        tag = "<small>control</small>" if is_control and arm != "control" else ""
        cells = [
            f'<td class="name">{_e(shown)}</td>',
            f'<td class="arm">{_e(arm)}{tag}</td>',
            f"<td>{_int(record['customers'])}</td>",
            f"<td>{_int(record['conversions'])}</td>",
            f"<td>{_pct(record['conversion_rate'])}<small>"
            f"{_interval(record['conversion_ci_low'], record['conversion_ci_high'], _pct)}"
            "</small></td>",
            f"<td>{_interval_svg(record, scale)}</td>",
            _lift_cell(record["conversion_lift"], record["conversion_p_value"]),
            f"<td>{_money(record['revenue_per_customer'])}<small>"
            f"{_interval(record['revenue_ci_low'], record['revenue_ci_high'], _money)}"
            "</small></td>",
            _lift_cell(record["revenue_lift"], record["revenue_p_value"]),
            f"<td>{verdict}</td>",
            f'<td class="text">{_e("" if _missing(record["note"]) else str(record["note"]))}</td>',
        ]
        first = ' class="first"' if shown else ""
        rows.append(
            f'<tr data-segment="{_e(segment)}" data-arm="{_e(arm)}"{first}>{"".join(cells)}</tr>'
        )
    note = (
        f"Each arm's conversion rate and revenue per customer, with {level} intervals "
        "below them (and drawn as a bar), and each arm's lift over the control arm"
        + (f" ({control})" if control is not None else "")
        + " of the same segment, with its p-value. A lift is called significant when its "
        f"p-value is below {alpha:.2g}; with too few customers or conversions in the arm "
        "or its control, no conclusion is drawn. With many segments and arms, some "
        "p-values fall below the threshold by chance."
    )
    return (
        f'<p class="note">{_e(note)}</p>\n<div class="scroll"><table id="test-table">'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _verdict(record: dict, alpha: float) -> str:
    # analyze_test's `conclusive` says the arm and its control are large enough to judge;
    # whether the difference is real is then the p-values' call.
    if _missing(record["conclusive"]) or not bool(record["conclusive"]):
        return '<span class="badge no">too little data</span>'
    significant = [
        record[lift]
        for lift, p in (
            ("conversion_lift", "conversion_p_value"),
            ("revenue_lift", "revenue_p_value"),
        )
        if not _missing(record[p]) and float(record[p]) < alpha and not _missing(record[lift])
    ]
    if not significant:
        return '<span class="badge">no clear difference</span>'
    if all(v > 0 for v in significant):
        return '<span class="badge yes">significantly better</span>'
    if all(v < 0 for v in significant):
        return '<span class="badge worse">significantly worse</span>'
    return '<span class="badge mixed">significant, mixed</span>'


def _lift_cell(lift: Any, p_value: Any) -> str:
    if _missing(lift):
        return "<td>—</td>"
    kind = ' class="up"' if lift > 0 else ' class="down"' if lift < 0 else ""
    return f"<td{kind}>{_signed(lift, _pct)}<small>p {_e(_p(p_value))}</small></td>"


def _interval_svg(record: dict, scale: float) -> str:
    width, height = 120, 14
    low, rate, high = (
        record["conversion_ci_low"],
        record["conversion_rate"],
        record["conversion_ci_high"],
    )
    if any(_missing(v) for v in (low, rate, high)):
        return ""

    def at(value: float) -> float:
        return 2 + min(max(float(value) / scale, 0.0), 1.0) * (width - 4)

    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" class="interval">'
        f'<line x1="2" x2="{width - 2}" y1="7" y2="7" stroke="#e0e0e0"/>'
        f'<line x1="{at(low):.1f}" x2="{at(high):.1f}" y1="7" y2="7" stroke="#4e79a7" '
        'stroke-width="3"/>'
        f'<circle cx="{at(rate):.1f}" cy="7" r="3.5" fill="#1f3b5a"/></svg>'
    )


def _snapshots_section(runs: list[Any], known: dict[str, str]) -> str:
    dates = [pd.Timestamp(run.as_of) for run in runs]
    sizes = pd.DataFrame(
        [
            run.catalog.groupby("segment", sort=False)["customers"].sum().rename(_date(date))
            for run, date in zip(runs, dates, strict=True)
        ]
    ).fillna(0)
    # Largest at the last date first: the legend reads like the catalog.
    sizes = sizes[sizes.iloc[-1].sort_values(ascending=False, kind="stable").index]
    sizes = sizes.loc[:, sizes.sum() > 0]
    names = [str(c) for c in sizes.columns]
    # The report's colour of a segment where it has one, so a segment looks the same
    # in every chart; the others take the unused colours.
    spare = iter([c for c in _PALETTE if c not in set(known.values())] * len(names))
    colours = {name: known.get(name) or next(spare) for name in names}
    width, height = 720, 340
    left, right, top, bottom = 58, 16, 16, 40
    seconds = np.array([d.value for d in dates], dtype=float)
    span = seconds[-1] - seconds[0] if len(seconds) > 1 else 1.0
    xs = left + ((seconds - seconds[0]) / span if len(seconds) > 1 else np.full(1, 0.5)) * (
        width - left - right
    )
    top_value = float(sizes.to_numpy().max(initial=0.0))
    ticks = _ticks(top_value)
    ceiling = ticks[-1] if ticks[-1] > 0 else 1.0

    def y(value: float) -> float:
        return height - bottom - value / ceiling * (height - top - bottom)

    parts = []
    for tick in ticks:
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_short(tick)}</text>'
        )
    step = max(1, math.ceil(len(dates) / 8))
    for i, label in enumerate(sizes.index):
        if i % step == 0 or i == len(dates) - 1:
            anchor = "start" if i == 0 else "end" if i == len(dates) - 1 else "middle"
            parts.append(
                f'<text x="{xs[i]:.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" '
                f'class="tick">{_e(label)}</text>'
            )
    for name in names:
        values = sizes[name].to_numpy(dtype=float)
        points = " ".join(f"{a:.1f},{y(v):.1f}" for a, v in zip(xs, values, strict=True))
        dots = "".join(
            f'<circle cx="{a:.1f}" cy="{y(v):.1f}" r="3"><title>{_e(name)}, {_e(d)}: '
            f"{_int(v)} customers</title></circle>"
            for a, v, d in zip(xs, values, sizes.index, strict=True)
        )
        parts.append(
            f'<g data-segment="{_e(name)}" fill="{colours[name]}" stroke="{colours[name]}">'
            f'<polyline points="{points}" fill="none" stroke-width="2"/>{dots}</g>'
        )
    chart = _svg(width, height, "snapshots-chart", "Segment sizes over time", parts)
    legend = "".join(
        f'<li><i style="background:{colours[name]}"></i>{_e(name)}</li>' for name in names
    )
    table = sizes.T.astype(np.int64)
    head = "<tr><th>Segment</th>" + "".join(f"<th>{_e(d)}</th>" for d in table.columns) + "</tr>"
    body = "".join(
        f'<tr data-segment="{_e(str(name))}"><td class="name">{_e(str(name))}</td>'
        + "".join(f"<td>{_int(v)}</td>" for v in row)
        + "</tr>"
        for name, row in table.iterrows()
    )
    note = f"Customers in each segment at each of the {len(runs)} runs, oldest first."
    return (
        f'<p class="note">{_e(note)}</p>\n<div class="chart-with-legend">{chart}'
        f'<ul class="legend">{legend}</ul></div>\n<div class="scroll"><table '
        f'id="snapshots-table"><thead>{head}</thead><tbody>{body}</tbody></table></div>'
    )


def _offers_section(offers: pd.DataFrame, colours: dict[str, str]) -> str:
    attribute = str(offers.attrs.get("attribute", "item"))
    head = (
        f"<tr><th>Segment</th><th>#</th><th>{_e(attribute.replace('_', ' ').capitalize())}"
        "</th><th>Buyers</th><th>Share of the segment</th><th>Share of all customers</th>"
        "<th>Lift</th></tr>"
    )
    rows = []
    for record in offers.to_dict("records"):
        name = str(record["segment"])
        first = int(record["rank"]) == 1
        label = (
            f'<i style="background:{colours.get(name, _NOISE_COLOUR)}"></i>{_e(name)}'
            if first
            else ""
        )
        cells = [
            f'<td class="name">{label}</td>',
            f"<td>{_int(record['rank'])}</td>",
            f'<td class="name">{_e(str(record["item"]))}</td>',
            f"<td>{_int(record['buyers'])}</td>",
            _share_cell(record["share"], "#4e79a7"),
            _share_cell(record["base_share"], "#b8b8b8"),
            f'<td style="background:{_ratio_colour(float(record["lift"]))}">'
            f"{_number(record['lift'])}×</td>",
        ]
        rows.append(
            f'<tr data-segment="{_e(name)}" data-rank="{_int(record["rank"])}">'
            f"{''.join(cells)}</tr>"
        )
    note = (
        f"Per segment, the {attribute.replace('_', ' ')} values its customers buy most "
        "distinctively: share of the segment's customers who bought it, the same share "
        "over all customers, and their ratio (lift). Promote them to the segment's "
        "customers who have not bought them yet."
    )
    if not rows:
        return f'<p class="note">{_e(note)}</p>\n<p>No item reaches the minimum of buyers.</p>'
    return (
        f'<p class="note">{_e(note)}</p>\n<div class="scroll"><table id="offers-table">'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _plain_table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{_e(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float | np.floating):
                cells.append(f"<td>{_number(value)}</td>")
            elif isinstance(value, int | np.integer):
                cells.append(f"<td>{_int(value)}</td>")
            else:
                cells.append(f'<td class="name">{_e(str(value))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


# --- backtest ------------------------------------------------------------------------

_UNIT_WORDS = {"D": "days", "W": "weeks", "M": "months"}
# The model's line and the baselines' in the tracking chart; actual is drawn in ink.
_LINE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
_METRIC_HEAD = (
    ("predicted_purchases", "Predicted purchases", "total over the cohort"),
    ("actual_purchases", "Actual purchases", "total over the cohort"),
    ("mae_purchases", "MAE", "mean absolute error of purchases per customer (lower is better)"),
    ("rmse_purchases", "RMSE", "root mean squared error of purchases (lower is better)"),
    ("bias_purchases", "Bias", "mean of predicted − actual purchases (0 is best)"),
    ("mae_spend", "Spend MAE", "mean absolute error of spend per customer (lower is better)"),
    ("bias_spend", "Spend bias", "mean of predicted − actual spend (0 is best)"),
    ("auc", "AUC", "how well P(buy) ranks buyers above non-buyers (higher is better)"),
    ("brier", "Brier", "mean squared error of P(buy) (lower is better)"),
    ("top_decile_lift", "Top-10% lift", "buyers' share in the top 10% by P(buy) ÷ overall"),
)
_BETTER = {
    "mae_purchases": "low",
    "rmse_purchases": "low",
    "bias_purchases": "zero",
    "mae_spend": "low",
    "bias_spend": "zero",
    "auc": "high",
    "brier": "low",
    "top_decile_lift": "high",
}


def _is_backtest(value: object) -> bool:
    # Imported on use: the models load scipy, which `import segmentkit` must not.
    from segmentkit.models._backtest import Backtest

    return isinstance(value, Backtest)


@validated(
    backtest=[Satisfies(_is_backtest, "a Backtest, e.g. from sk.backtest(model, tx, ...)")],
    path=[PATH],
    title=[InstanceOf((str,), "a str"), NONE],
)
def write_backtest_report(backtest: Any, path: PathLike, *, title: str | None = None) -> Path:
    """Write a backtest (from :func:`segmentkit.backtest`) as one self-contained HTML page.

    Parameters
    ----------
    backtest : Backtest
        The backtest to show.
    path : str or os.PathLike
        Destination, usually ``*.html``; its folder must exist.
    title : str, optional
        Heading; defaults to ``'Backtest of <model>'``.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, warnings
    >>> from pathlib import Path
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     bt = sk.backtest(sk.BetaGeoModel(), tx, calibration_end="2017-09-01",
    ...                      holdout_end="2017-12-01")
    >>> text = bt.report(Path(tempfile.mkdtemp()) / "backtest.html").read_text("utf-8")
    >>> 'id="tracking-chart"' in text, "<script" in text
    (True, False)
    """
    title = title or f"Backtest of {backtest.model}"
    counts = backtest.counts
    facts = [
        ("model", "Model", backtest.model),
        ("calibration-end", "Calibration end", _date(backtest.calibration_end)),
        ("holdout-end", "Holdout end", _date(backtest.holdout_end)),
        ("cohort", "Customers", _int(counts["cohort"])),
        ("bought", "Bought in holdout", _int(counts["bought_in_holdout"])),
    ]
    cards = "".join(
        f'<div class="fact" data-fact="{key}"><span>{_e(label)}</span><b>{_e(value)}</b></div>'
        for key, label, value in facts
    )
    header = (
        f'<header id="report-header">\n<h1 id="report-title">{_e(title)}</h1>\n'
        f'<div class="facts">{cards}</div>\n</header>'
    )
    document = _page(
        title, header, [("backtest", "Backtest", _backtest_section(backtest))], "aggregate"
    )
    return write_atomic(path, lambda tmp: tmp.write_text(document, encoding="utf-8"))


def _backtest_section(bt: Any) -> str:
    unit = _UNIT_WORDS.get(bt.time_unit, bt.time_unit)
    counts = bt.counts
    note = (
        f"{bt.model} was fitted on the purchases up to {_date(bt.calibration_end)} and "
        f"predicted the holdout that followed ({_number(round(bt.horizon, 2))} {unit}, to "
        f"{_date(bt.holdout_end)}) for the {_int(counts['cohort'])} customers who had "
        f"bought by then; {_int(counts['bought_in_holdout'])} of them bought again. A "
        "purchase is a day with a purchase. The baselines are fitted on the same "
        "calibration data: a model that does not beat them does not earn its place."
    )
    left = []
    if counts.get("no_purchase_by_calibration_end"):
        left.append(
            f"{_int(counts['no_purchase_by_calibration_end'])} customers without a purchase "
            "by the calibration end (returns only)"
        )
    if counts.get("new_in_holdout"):
        left.append(
            f"{_int(counts['new_in_holdout'])} customers whose first purchase is in the "
            f"holdout ({_int(counts['holdout_purchases_of_new'])} purchase days)"
        )
    out = [f'<p class="note">{_e(note)}</p>']
    if left:
        out.append(f'<p class="note" id="backtest-left-out">Left out: {_e("; ".join(left))}.</p>')
    out.append(_metrics_table(bt.metrics))
    described = "".join(
        f"<li><b>{_e(name)}</b>: {_e(text)}</li>" for name, text in bt.predictors.items()
    )
    out.append(f'<ul class="note" id="backtest-predictors">{described}</ul>')
    out.append("<h3>Tracking: cumulative repeat purchases</h3>")
    out.append(
        '<p class="note">The cohort\'s repeat purchases added up over time, actual against '
        "what the model expects for customers of their age (the classic BTYD tracking "
        "plot). Left of the dashed line the model saw the data; right of it, it did not.</p>"
    )
    out.append(_tracking_svg(bt))
    deciles = bt.deciles[bt.deciles["predictor"] == bt.model]
    if len(deciles):
        out.append("<h3>Calibration by decile</h3>")
        out.append(
            f'<p class="note">Customers in ten equal groups by the purchases {_e(bt.model)} '
            "predicted (1 = fewest): the mean predicted against the mean actual purchases in "
            "the holdout. Bars of equal height mean the model is calibrated.</p>"
        )
        out.append(_deciles_svg(deciles))
    return "\n".join(out)


def _metrics_table(metrics: pd.DataFrame) -> str:
    shown = [(c, label, tip) for c, label, tip in _METRIC_HEAD if c in metrics.columns]
    shown = [(c, label, tip) for c, label, tip in shown if metrics[c].notna().any()]
    head = "<tr><th>Predictor</th>" + "".join(
        f'<th title="{_e(tip)}">{_e(label)}</th>' for _, label, tip in shown
    )
    # Per column, which rows hold its best value (lowest error, highest AUC...).
    best: dict[str, np.ndarray] = {}
    for column, _, _ in shown:
        values = metrics[column].to_numpy(dtype=float)
        if column not in _BETTER or not np.isfinite(values).any():
            continue
        rule = _BETTER[column]
        score = {"low": values, "high": -values, "zero": np.abs(values)}[rule]
        best[column] = np.isfinite(score) & (score == np.nanmin(score))
    rows = []
    for i, (name, record) in enumerate(metrics.iterrows()):
        cells = [f'<td class="name">{_e(str(name))}</td>']
        for column, _, _ in shown:
            text = _metric(record[column], column)
            top = column in best and bool(best[column][i])
            cells.append(f"<td><b>{text}</b></td>" if top else f"<td>{text}</td>")
        kind = ' class="base"' if i > 0 and "-only" in str(name) else ""
        rows.append(f'<tr data-predictor="{_e(str(name))}"{kind}>{"".join(cells)}</tr>')
    return (
        '<div class="scroll"><table id="backtest-metrics">'
        f"<thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">Bold: the best value of each column. Hover a heading for its '
        "meaning.</p>"
    )


def _metric(value: Any, column: str) -> str:
    if _missing(value):
        return "—"
    if column in ("predicted_purchases", "actual_purchases"):
        return _int(value)
    return f"{float(value):,.3f}"


def _tracking_svg(bt: Any) -> str:
    tracking = bt.tracking
    expected = [c for c in tracking.columns if c.startswith("expected_")]
    names = {key: name for name, key in bt.keys.items()}
    series = [("Actual", tracking["actual"].to_numpy(dtype=float), "#1d2733", "")]
    for i, column in enumerate(expected):
        label = names.get(column.removeprefix("expected_"), column)
        series.append(
            (
                f"{label} (expected)",
                tracking[column].to_numpy(dtype=float),
                _LINE_COLOURS[i % len(_LINE_COLOURS)],
                ' stroke-dasharray="6 4"',
            )
        )
    width, height = 760, 340
    left, right, top, bottom = 64, 16, 30, 40
    periods = tracking["period"].to_numpy(dtype=float)
    low, high = float(periods.min()), float(periods.max())
    span = high - low if high > low else 1.0
    top_value = max(float(np.nanmax(s[1])) for s in series)
    ticks = _ticks(top_value)
    ceiling = ticks[-1] if ticks[-1] > 0 else 1.0

    def x(p: float) -> float:
        return left + (p - low) / span * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - v / ceiling * (height - top - bottom)

    parts = [_legend_svg([(label, colour) for label, _, colour, _ in series])]
    for tick in ticks:
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_short(tick)}</text>'
        )
    ends = tracking["end"].tolist()
    step = max(1, math.ceil(len(ends) / 7))
    for i in range(0, len(ends), step):
        parts.append(
            f'<text x="{x(periods[i]):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'class="tick">{_e(_date(ends[i]))}</text>'
        )
    split = x(0.0)
    parts.append(
        f'<line x1="{split:.1f}" x2="{split:.1f}" y1="{top}" y2="{height - bottom}" '
        'class="axis" stroke-dasharray="3 3"/>'
        f'<text x="{split + 4:.1f}" y="{top + 12}" class="tick">holdout →</text>'
    )
    for label, values, colour, dash in series:
        drawn = np.isfinite(values)
        points = " ".join(
            f"{x(p):.1f},{y(v):.1f}" for p, v in zip(periods[drawn], values[drawn], strict=True)
        )
        last = values[-1]
        parts.append(
            f'<g data-series="{_e(label)}"><title>{_e(label)}: {_int(last)} by '
            f"{_e(_date(ends[-1]))}</title>"
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
            "</g>"
        )
    unit = _UNIT_WORDS.get(bt.time_unit, bt.time_unit)
    parts.append(
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'class="axis-label">End of each period ({_e(unit[:-1])})</text>'
    )
    return _svg(width, height, "tracking-chart", "Cumulative repeat purchases", parts)


def _deciles_svg(deciles: pd.DataFrame) -> str:
    width, height = 640, 280
    left, right, top, bottom = 56, 12, 30, 40
    predicted = deciles["predicted"].to_numpy(dtype=float)
    actual = deciles["actual"].to_numpy(dtype=float)
    labels = deciles["decile"].astype(int).tolist()
    ticks = _ticks(float(np.nanmax(np.concatenate([predicted, actual]))))
    ceiling = ticks[-1] if ticks[-1] > 0 else 1.0
    slot = (width - left - right) / max(len(labels), 1)
    bar = slot * 0.36

    def y(v: float) -> float:
        return height - bottom - v / ceiling * (height - top - bottom)

    parts = [_legend_svg([("Predicted", "#d62728"), ("Actual", "#4e79a7")])]
    for tick in ticks:
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_short(tick)}</text>'
        )
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.14
        group = [
            f'<g data-decile="{label}"><title>Decile {label}: predicted '
            f"{predicted[i]:.2f}, actual {actual[i]:.2f} purchases per customer</title>"
        ]
        for j, (value, colour) in enumerate(((predicted[i], "#d62728"), (actual[i], "#4e79a7"))):
            if not np.isfinite(value):
                continue
            group.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{y(value):.1f}" width="{bar:.1f}" '
                f'height="{max(y(0) - y(value), 0.5):.1f}" fill="{colour}" rx="1.5"/>'
            )
        group.append(
            f'<text x="{x0 + bar:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'class="tick">{label}</text></g>'
        )
        parts.append("".join(group))
    parts.append(
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        'class="axis-label">Decile of predicted purchases (1 = fewest)</text>'
    )
    return _svg(width, height, "deciles-chart", "Predicted and actual purchases by decile", parts)


# --- drawing helpers -----------------------------------------------------------------


def _svg(
    width: int, height: int, svg_id: str, label: str, parts: list[str], *, grow: bool = True
) -> str:
    # The viewBox lets the chart shrink on a narrow screen; max-width keeps it crisp.
    size = f'style="max-width:{width}px"' if grow else f'style="width:{width}px;max-width:100%"'
    return (
        f'<svg id="{svg_id}" class="chart" viewBox="0 0 {width} {height}" {size} role="img" '
        f'aria-label="{_e(label)}">{"".join(parts)}</svg>'
    )


def _legend_svg(items: list[tuple[str, str]]) -> str:
    parts = []
    x = 0
    for label, colour in items:
        parts.append(
            f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}" rx="2"/>'
            f'<text x="{x + 17}" y="14" class="label">{_e(label)}</text>'
        )
        x += 24 + 8 * len(label)
    return f'<g class="legend" transform="translate(8 0)">{"".join(parts)}</g>'


def _share_cell(value: Any, colour: str) -> str:
    if _missing(value):
        return "<td>—</td>"
    width = min(max(float(value), 0.0), 1.0) * 100
    return (
        f'<td class="share"><span style="width:{width:.1f}%;background:{colour}"></span>'
        f"{_pct(value)}</td>"
    )


def _colours(segmentation: Segmentation) -> dict[str, str]:
    clusters = [s for s in segmentation.segments if s.id != NOISE]
    colours = {s.name: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(clusters)}
    colours.update({s.name: _NOISE_COLOUR for s in segmentation.segments if s.id == NOISE})
    return colours


def _blues(t: float) -> str:
    t = min(max(float(t), 0.0), 1.0)
    for (t0, c0), (t1, c1) in itertools.pairwise(_BLUES):
        if t <= t1:
            return _mix(c0, c1, (t - t0) / (t1 - t0))
    return _BLUES[-1][1]


#: Profile cells: better than the typical customer, worse, or just different.
_GOOD, _BAD, _NEUTRAL = "#3182bd", "#e6550d", "#8a94a3"


def _ratio_colour(ratio: float, direction: str = "neutral") -> str:
    if not np.isfinite(ratio) or ratio < 0:
        return "transparent"
    # Symmetric in the log: ×4 and ×0.25 get the same strength (and none at all, ×0,
    # the most). The hue says whether that is good news, by the feature's direction
    # (a short recency is good).
    strength = (min(abs(math.log2(ratio)) / 2, 1.0) if ratio > 0 else 1.0) * 0.75
    if direction == "neutral":
        hue = _NEUTRAL
    else:
        better = (ratio > 1) == (direction == "higher_is_better")
        hue = _GOOD if better else _BAD
    return _mix("#ffffff", hue, strength)


def _mix(a: str, b: str, t: float) -> str:
    first = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    second = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(x + (y - x) * t) for x, y in zip(first, second, strict=True)]
    return "#" + "".join(f"{v:02x}" for v in mixed)


def _ticks(top: float) -> list[float]:
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step) + 1)]


# --- data helpers --------------------------------------------------------------------


def _is_rfm(segmentation: Segmentation) -> bool:
    return {"r_score", "f_score"} <= set(segmentation.assignments.columns)


def _feature_definitions(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Label and definition of each feature, predicted columns included."""
    from segmentkit.features._catalog import column_definition

    out = {}
    for name in names:
        definition = column_definition(name)
        if definition is not None:
            text = definition.description
            out[name] = (
                definition.label,
                f"{text} ({definition.unit})" if definition.unit else text,
            )
    return out


def _label_line(label: str, name: str) -> str:
    # The readable label under the column name, when it says more than the name.
    if not label or label.lower().replace(" ", "_") == name:
        return ""
    return f'<small class="label">{_e(label)}</small>'


# --- formatting ----------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array is not "missing"
        return False


def _int(value: Any) -> str:
    return "—" if _missing(value) else f"{round(float(value)):,}"


def _pct(value: Any, digits: int = 1) -> str:
    return "—" if _missing(value) else f"{float(value):.{digits}%}"


def _money(value: Any) -> str:
    if _missing(value):
        return "—"
    return f"{float(value):,.2f}"


def _number(value: Any) -> str:
    if _missing(value):
        return "—"
    value = float(value)
    if value == round(value) and abs(value) < 1e15:
        return f"{round(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _short(value: float) -> str:
    # Short enough for a grid cell or an axis tick: 12.3, 456, 7,890, 123k, 4.5M.
    if not np.isfinite(value):
        return "–"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.1f}M"
    if abs(value) >= 100_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 100 or value == round(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _signed(value: Any, fmt: Any) -> str:
    if _missing(value):
        return "—"
    text = fmt(value)
    return f"+{text}" if float(value) > 0 else text


def _p(value: Any) -> str:
    if _missing(value):
        return "—"
    return "< 0.001" if float(value) < 0.001 else f"= {float(value):.3f}"


def _interval(low: Any, high: Any, fmt: Any) -> str:
    if _missing(low) or _missing(high):
        return ""
    return _e(f"[{fmt(low)}, {fmt(high)}]")


def _date(value: Any) -> str:
    if _missing(value):
        return "—"
    stamp = pd.Timestamp(value)
    if stamp == stamp.normalize():
        return f"{stamp:%Y-%m-%d}"
    return f"{stamp:%Y-%m-%d %H:%M}" + (" UTC" if str(stamp.tz) == "UTC" else "")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CSS = """
:root { --ink: #1d2733; --muted: #5b6877; --line: #dfe4ea; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
header, nav, main, footer { max-width: 1560px; margin: 0 auto; padding: 0 28px; }
header { padding-top: 28px; }
h1 { font-size: 26px; margin: 0 0 14px; }
h2 { font-size: 19px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 22px 0 6px; }
.facts { display: flex; flex-wrap: wrap; gap: 10px; }
.fact { background: var(--soft); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px; min-width: 130px; }
.fact span { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.fact b { font-size: 18px; }
nav { margin-top: 16px; display: flex; flex-wrap: wrap; gap: 6px 16px; padding-bottom: 10px;
  border-bottom: 1px solid var(--line); }
nav a { color: #2b6cb0; text-decoration: none; }
section { padding: 22px 0 10px; border-bottom: 1px solid var(--line); }
.note { color: var(--muted); margin: 0 0 12px; max-width: 860px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: right;
  vertical-align: middle; }
th { background: var(--soft); font-weight: 600; }
td.name, td.text, td.arm, th:first-child, th.text { text-align: left; }
td.arm { white-space: nowrap; }
td.name { font-weight: 600; min-width: 140px; }
td.text { color: var(--muted); min-width: 200px; max-width: 380px; }
td.name i, .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 7px; }
tr.empty td { color: #9aa5b1; }
tr.base td { font-style: italic; background: var(--soft); }
td.share { position: relative; min-width: 90px; }
td.share span { position: absolute; left: 0; bottom: 3px; height: 3px; opacity: .7; }
td small, th small.label { display: block; color: var(--muted); font-size: 11px; }
th small.label { font-weight: normal; }
.profile { margin-bottom: 14px; }
.profile td small { display: block; }
.profile th.feature { text-align: left; font-weight: 600; min-width: 170px; }
.profile th.segment { min-width: 96px; max-width: 150px; vertical-align: bottom; }
.profile td.base { font-style: italic; background: var(--soft); }
ul.legend.inline { display: flex; flex-wrap: wrap; gap: 4px 18px; }
.matrix td { padding: 2px; }
.matrix th { font-size: 12px; padding: 4px 5px; min-width: 48px; }
.matrix td div { padding: 4px 5px; border-radius: 3px; }
.matrix td.zero { color: #c3cad2; }
.matrix td.same div { outline: 2px solid #1d2733; outline-offset: -2px; }
.matrix td div small { color: inherit; opacity: .8; }
td.up { color: #1a7f37; } td.down { color: #b42318; }
#test-table td { border-bottom: 0; }
#test-table tr.first td { border-top: 1px solid var(--line); }
#test-table td.text { min-width: 150px; max-width: 300px; font-size: 12px; }
.badge { border-radius: 10px; padding: 1px 8px; font-size: 12px; white-space: nowrap; }
.badge.yes { background: #dcfce7; color: #166534; }
.badge { background: #eef2f6; color: #475569; }
.badge.no { background: #fff7e6; color: #8a5a00; }
.badge.worse { background: #fde8e8; color: #9b1c1c; }
.badge.mixed { background: #fef3c7; color: #92400e; }
svg.chart { width: 100%; height: auto; display: block; }
svg text { font-size: 12px; fill: var(--ink); }
svg .label { font-size: 12.5px; } svg .value, svg .tick { fill: var(--muted); font-size: 11px; }
svg .title { font-weight: 600; font-size: 13px; }
svg .axis-label { fill: var(--muted); font-size: 12px; }
svg .axis { stroke: #8894a1; } svg .grid { stroke: #eceff3; }
svg .frame { fill: #fbfcfd; stroke: var(--line); }
.charts { display: flex; flex-wrap: wrap; gap: 28px; }
.chart-with-legend { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.chart-with-legend svg { flex: 1 1 520px; }
ul.legend { list-style: none; padding: 0; margin: 8px 0; font-size: 13px; }
ul.legend li { margin: 3px 0; white-space: nowrap; }
footer { color: var(--muted); font-size: 12px; padding-top: 16px; padding-bottom: 28px; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  nav { display: none; }
  header, nav, main, footer { max-width: none; padding: 0; }
  .scroll { overflow: visible; }
  table { font-size: 10px; }
  th, td { padding: 3px 5px; }
  td.text { min-width: 0; }
  .matrix th { font-size: 10px; min-width: 0; }
  .matrix td div { padding: 2px 3px; }
  table, svg { break-inside: avoid; }
}
"""
