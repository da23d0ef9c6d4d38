"""The result every engine returns: who is in which segment, and what each segment is."""

from __future__ import annotations

import html
import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmentkit._common._csv import read_csv, write_csv
from segmentkit._common._files import PathLike, write_atomic
from segmentkit._common._hooks import writer
from segmentkit._common._params import (
    NONE,
    PATH,
    InstanceOf,
    ListLike,
    OneOf,
    Satisfies,
    validated,
)
from segmentkit._common._terminal import TERMINAL_WIDTH
from segmentkit.errors import UnknownSegmentError
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._text import SegmentSummary, segment_lines

__all__ = ["NOISE", "Segment", "Segmentation"]

#: Label of customers an engine explicitly leaves unassigned (e.g. HDBSCAN noise).
NOISE = -1

_KEY_FEATURES = ("recency_days", "frequency", "monetary")
Table = Literal["assignments", "catalog"]

_SEGMENT = [InstanceOf((str, numbers.Integral), "a segment name (str) or id (int)")]
_TABLES = ("assignments", "catalog")


def _is_migration(value: object) -> bool:
    return all(hasattr(value, a) for a in ("matrix", "shares", "drift"))


def _is_analysis(value: object) -> bool:
    return isinstance(getattr(value, "table", None), pd.DataFrame)


def _is_backtest(value: object) -> bool:
    # Duck-typed: the models sit above results on the data path.
    return all(
        isinstance(getattr(value, a, None), pd.DataFrame)
        for a in ("metrics", "tracking", "deciles")
    )


def _is_segmentation(value: object) -> bool:
    return isinstance(value, Segmentation)


def _is_frame(value: object) -> bool:
    return isinstance(value, pd.DataFrame)


def _is_segmenter(value: object) -> bool:
    # Duck-typed: the engines sit above results on the data path.
    return callable(getattr(value, "fit", None)) and callable(getattr(value, "get_params", None))


#: The parameters of the HTML report, declared once for Segmentation.report and
#: segmentkit.report.write_report (which adds ``segmentation``).
REPORT_PARAMETERS: dict[str, list[Any]] = {
    "path": [PATH],
    "migration": [
        Satisfies(_is_migration, "a Migration (from sk.migration(before, after))"),
        NONE,
    ],
    "analysis": [
        Satisfies(_is_analysis, "an ExperimentAnalysis (from sk.analyze_test(groups, outcomes))"),
        NONE,
    ],
    "snapshots": [
        ListLike(
            "a sequence of Segmentation (e.g. from sk.snapshots(...))",
            item=Satisfies(_is_segmentation, "a Segmentation"),
        ),
        NONE,
    ],
    "title": [InstanceOf((str,), "a str"), NONE],
    "segmenter": [Satisfies(_is_segmenter, "a fitted Segmenter"), NONE],
    "backtest": [Satisfies(_is_backtest, "a Backtest (from sk.backtest(...))"), NONE],
    "offers": [
        Satisfies(_is_frame, "a DataFrame of items to promote (from sk.segment_items(...))"),
        NONE,
    ],
}


@dataclass(frozen=True)
class Segment:
    """One segment of a segmentation.

    Parameters
    ----------
    id : int
        Label used in the assignments (``NOISE`` = -1 for explicit "unassigned").
    name : str
        Human-readable name, unique within the segmentation.
    description : str, default=''
        One sentence saying who is in it.
    rule : str, default=''
        The condition that defines it, where the engine has one.
    """

    id: int
    name: str
    description: str = ""
    rule: str = ""


class Segmentation:
    """Customers' segment assignments plus the catalog of segments.

    Every customer of the input features is in exactly one segment.

    Parameters
    ----------
    assignments : pandas.DataFrame
        Columns ``customer_id, segment_id, segment`` and engine-specific scores.
    segments : sequence of Segment
        Every segment the engine can assign, in id order.
    features : CustomerFeatures
        The features the segmentation was computed from (for the catalog figures).
    engine : str
        Name of the engine that produced it.

    Attributes
    ----------
    assignments : pandas.DataFrame
        One row per customer.
    segments : list of Segment
        The segment definitions.
    catalog : pandas.DataFrame
        One row per segment, most valuable first (revenue, then customers, then id):
        ``segment_id, segment, description, customers, share, revenue,
        revenue_share`` and the median of key features.
    as_of : pandas.Timestamp
        Observation end of the features.
    """

    def __init__(
        self,
        assignments: pd.DataFrame,
        segments: Sequence[Segment],
        features: CustomerFeatures,
        engine: str,
    ) -> None:
        self.assignments = assignments
        self.segments = list(segments)
        self.engine = engine
        self.as_of = features.as_of
        self.catalog = _value_order(_catalog(assignments, self.segments, features.frame))
        # Kept for profile(): the features the segments were built from.
        self._features = features

    @classmethod
    @validated(
        assignments=[InstanceOf((pd.DataFrame,), "a pandas DataFrame"), PATH],
        engine=[InstanceOf((str,), "a str")],
    )
    def from_assignments(
        cls, assignments: pd.DataFrame | PathLike, *, engine: str = "file"
    ) -> Segmentation:
        """Rebuild a segmentation from an assignments table or file written by ``to_csv``.

        Only what the file holds comes back: customers, segment ids and names, and
        ``as_of`` when the file has that column. Segments that had no customers, the
        descriptions and the feature medians are not in an assignments file.

        Parameters
        ----------
        assignments : pandas.DataFrame or path
            Columns ``customer_id``, ``segment_id`` and ``segment`` (a ``.csv``,
            ``.parquet`` or ``.json`` file from :meth:`to_csv` and friends).
        engine : str, default='file'
            Name recorded as the engine.

        Returns
        -------
        Segmentation
            With a catalog of the segments present.

        Raises
        ------
        ValueError
            If a required column is missing or a segment id has two names.

        Examples
        --------
        >>> import pandas as pd
        >>> table = pd.DataFrame({"customer_id": ["a", "b"], "segment_id": [0, 1],
        ...                       "segment": ["VIP", "Other"]})
        >>> list(Segmentation.from_assignments(table).members("VIP"))
        ['a']
        """
        frame = _read_assignments(assignments)
        missing = [c for c in ("customer_id", "segment_id", "segment") if c not in frame]
        if missing:
            msg = (
                f"An assignments table needs the columns customer_id, segment_id and segment; "
                f"{missing} missing. Use a file written by Segmentation.to_csv."
            )
            raise ValueError(msg)
        frame = frame.assign(customer_id=frame["customer_id"].astype(str))
        pairs = frame[["segment_id", "segment"]].drop_duplicates()
        if pairs["segment_id"].duplicated().any():
            msg = "An assignments table gives one segment id two names; it cannot be read back."
            raise ValueError(msg)
        pairs = pairs.sort_values("segment_id")
        segments = [Segment(int(i), str(n)) for i, n in pairs.itertuples(index=False)]
        as_of = frame["as_of"].iloc[0] if "as_of" in frame and len(frame) else None
        features = CustomerFeatures.from_frame(
            pd.DataFrame(index=pd.Index(frame["customer_id"], name="customer_id")),
            as_of=as_of,
        )
        kept = frame.drop(columns=[c for c in ("as_of",) if c in frame])
        return cls(kept.reset_index(drop=True), segments, features, engine)

    @validated(order_by=[OneOf("revenue", "customers", "id")])
    def summary(self, *, order_by: str = "revenue") -> pd.DataFrame:
        """One row per segment, most valuable first, indexed by segment name.

        Numbers come first and the description last; money is rounded to the cent.
        Printed, the table fits 100 columns: the figures (as many as fit, thousands
        separated, shares in percent), then each description wrapped under its
        segment's name. It is a :class:`pandas.DataFrame` in every other respect.

        Parameters
        ----------
        order_by : {'revenue', 'customers', 'id'}, default='revenue'
            Segments by revenue (then customers; without revenue figures, by
            customers), by customers, or in id order.

        Returns
        -------
        pandas.DataFrame
            Customers, share, revenue, revenue share, key feature medians, description.

        Examples
        --------
        >>> import segmentkit as sk
        >>> raw, mapping = sk.datasets.load_sample()
        >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
        >>> summary = sk.RFMSegmenter().fit_predict(features).summary()
        >>> int(summary["customers"].sum()) == len(features)
        True
        >>> bool(summary["revenue"].is_monotonic_decreasing)
        True
        >>> list(summary.columns[:4]), summary.columns[-1]
        (['customers', 'share', 'revenue', 'revenue_share'], 'description')
        >>> str(summary).splitlines()[1].split()
        ['Champions', '183', '22.9%', '45,724.37', '48.8%', '1.5', '44', '226.81']
        """
        ordered = {
            "revenue": self.catalog,
            "customers": self.catalog.sort_values(
                ["customers", "segment_id"], ascending=[False, True], kind="stable"
            ),
            "id": self.catalog.sort_values("segment_id", kind="stable"),
        }[order_by]
        figures = [c for c in ordered.columns if c not in ("segment_id", "segment", "description")]
        table = ordered.set_index("segment")[[*figures, "description"]]
        return SegmentSummary(_money_to_cents(table))

    @validated(
        features=[
            InstanceOf((CustomerFeatures, pd.DataFrame), "CustomerFeatures, a pandas DataFrame"),
            NONE,
        ],
        columns=[
            ListLike("a sequence of feature names (str)", item=InstanceOf((str,), "a str")),
            NONE,
        ],
    )
    def profile(
        self,
        features: CustomerFeatures | pd.DataFrame | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """What sets each segment apart: its median of every numeric feature vs the base.

        Parameters
        ----------
        features : CustomerFeatures or pandas.DataFrame, optional
            Features to describe the segments with, one row per customer (a frame is
            indexed by ``customer_id`` or has it as a column). Every segmented customer
            must be in it; extra customers are ignored. Defaults to the features the
            segmentation was computed from.
        columns : sequence of str, optional
            Numeric features to show, in this order; defaults to every numeric
            feature (booleans, dates and text are left out).

        Returns
        -------
        pandas.DataFrame
            One row per segment, most valuable first as in :attr:`catalog`, empty
            segments included, indexed by segment name. Columns are a two-level index
            ``(feature, statistic)``:

            * ``segment_id``, ``customers``, ``share``, ``revenue_share`` (second
              level ``''``, so ``profile["share"]`` is a plain column), as in
              :attr:`catalog`;
            * for each feature, ``(feature, 'median')``, the segment's median (missing
              values skipped; NaN for an empty segment), and ``(feature, 'ratio')``,
              that median divided by the median over all segmented customers (the
              base). A ratio of 2 reads "twice the typical customer"; it is NaN
              where the base median is 0 or missing.

            ``profile.xs("ratio", axis=1, level="statistic")`` gives a segment ×
            feature table of ratios; ``profile.attrs["base_median"]`` holds the base
            medians (a dict by feature). For a long table, one row per segment and
            feature, use ``profile.drop(columns=["segment_id", "customers", "share",
            "revenue_share"], level="feature").stack("feature", future_stack=True)``.

        Raises
        ------
        ValueError
            If ``features`` lacks segmented customers, or a requested column is
            missing or not numeric.

        Examples
        --------
        >>> import segmentkit as sk
        >>> raw, mapping = sk.datasets.load_sample()
        >>> tx = sk.Transactions.from_frame(raw, **mapping)
        >>> features = sk.extract_features(tx)
        >>> seg = sk.RFMSegmenter().fit_predict(features)
        >>> profile = seg.profile()
        >>> int(profile.loc["Champions", "customers"]), float(profile.loc["Champions", "share"])
        (183, 0.22875)
        >>> profile.loc["Champions", "monetary"].round(2)
        statistic
        median    226.81
        ratio       2.74
        Name: Champions, dtype: float64

        Champions spend 2.7 times what the typical customer spends. The ratios of a few
        features side by side:

        >>> ratios = profile.xs("ratio", axis=1, level="statistic")
        >>> ratios[["recency_days", "frequency"]].head(3).round(2)
        feature          recency_days  frequency
        segment
        Champions                0.11       2.44
        Loyal customers          0.70       1.50
        At risk                  2.43       1.00
        """
        if features is None:
            frame = self._features.frame
        elif isinstance(features, CustomerFeatures):
            frame = features.frame
        else:
            frame = CustomerFeatures.from_frame(features).frame
        if columns is None:
            numeric = [c for c in frame.columns if _is_plain_numeric(frame[c])]
        else:
            numeric = list(columns)
            absent = [c for c in numeric if c not in frame.columns]
            if absent:
                msg = f"profile: no features {absent}. Available features: {list(frame.columns)}."
                raise ValueError(msg)
            not_numeric = [c for c in numeric if not _is_plain_numeric(frame[c])]
            if not_numeric:
                msg = f"profile describes numeric features only; {not_numeric} are not numeric."
                raise ValueError(msg)
        rows = feature_rows(frame, self.assignments, "profile")
        values = pd.DataFrame(
            frame[numeric].to_numpy(dtype=float, na_value=np.nan)[rows], columns=numeric
        )
        segment_ids = [s.id for s in self.segments]
        position = pd.Index(segment_ids).get_indexer(self.assignments["segment_id"].to_numpy())
        medians = values.groupby(position).median().reindex(range(len(segment_ids)))
        base = values.median()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = medians / base.where(base != 0)
        # Built in the segments' (id) order, like the medians; shown in the catalog's.
        ids = [s.id for s in self.segments]
        head = self.catalog.set_index("segment_id").loc[ids].reset_index()
        head = head[["segment_id", "customers", "share", "revenue_share"]]
        blocks = [head.set_axis(pd.MultiIndex.from_product([head.columns, [""]]), axis=1)]
        for name in numeric:
            blocks.append(
                pd.DataFrame(
                    {(name, "median"): medians[name].to_numpy(), (name, "ratio"): ratios[name]}
                )
            )
        result = pd.concat(blocks, axis=1)
        result.columns = pd.MultiIndex.from_tuples(result.columns, names=["feature", "statistic"])
        result.index = pd.Index([s.name for s in self.segments], name="segment")
        result = result.iloc[pd.Index(ids).get_indexer(self.catalog["segment_id"])]
        result.attrs["base_median"] = base.to_dict()
        return result

    def to_frame(self) -> pd.DataFrame:
        """The assignments: one row per customer.

        Returns
        -------
        pandas.DataFrame
            A copy of :attr:`assignments`.
        """
        return self.assignments.copy()

    @validated(segment=_SEGMENT)
    def members(self, segment: str | int) -> pd.Index:
        """Ids of the customers in one segment, given by name or id.

        Parameters
        ----------
        segment : str or int
            Segment name or id.

        Returns
        -------
        pandas.Index
            Customer ids.

        Raises
        ------
        segmentkit.errors.UnknownSegmentError
            If no segment has that name or id (a ``KeyError``).
        """
        by_name = {s.name: s.id for s in self.segments}
        ids = {s.id for s in self.segments}
        if isinstance(segment, str):
            if segment not in by_name:
                msg = f"No segment named {segment!r}. Segments: {sorted(by_name)}."
                raise UnknownSegmentError(msg)
            label = by_name[segment]
        elif segment in ids:
            label = int(segment)
        else:
            msg = f"No segment with id {segment!r}. Ids: {sorted(ids)}."
            raise UnknownSegmentError(msg)
        chosen = self.assignments["segment_id"].to_numpy() == label
        return pd.Index(self.assignments["customer_id"].to_numpy()[chosen], name="customer_id")

    @validated(path=[PATH], table=[OneOf(*_TABLES)])
    def to_csv(self, path: PathLike, *, table: Table = "assignments") -> Path:
        """Write the assignments (or the catalog) to a CSV file, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; its folder must exist. Replaced only once fully written.
        table : {'assignments', 'catalog'}, default='assignments'
            What to write.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        frame = self._table(table)
        # 15 significant digits print sums as 45724.37, not 45724.369999999995.
        return write_csv(path, frame, index=False, float_format="%.15g")

    @validated(path=[PATH], table=[OneOf(*_TABLES)])
    def to_parquet(self, path: PathLike, *, table: Table = "assignments") -> Path:
        """Write the assignments (or the catalog) to a Parquet file, atomically.

        Needs ``pyarrow`` (``pip install "segmentkit[parquet]"``).

        Parameters
        ----------
        path : str or os.PathLike
            Destination; its folder must exist.
        table : {'assignments', 'catalog'}, default='assignments'
            What to write.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        from segmentkit.contracts._table import require_pyarrow

        require_pyarrow()
        frame = self._table(table)
        return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))

    @validated(path=[PATH], table=[OneOf("all", *_TABLES)])
    def to_json(self, path: PathLike, *, table: Table | Literal["all"] = "all") -> Path:
        """Write the segmentation to a JSON file, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; its folder must exist.
        table : {'all', 'assignments', 'catalog'}, default='all'
            ``'all'`` writes one document with ``engine``, ``as_of``, ``segments``
            (the catalog) and ``assignments``; the others write a list of records.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        document: dict[str, Any] | list[dict[str, Any]]
        if table == "all":
            document = {
                "engine": self.engine,
                "as_of": self.as_of.isoformat(),
                "segments": _records(self.catalog),
                "assignments": _records(self.assignments),
            }
        else:
            document = _records(self._table(table).drop(columns="as_of"))
        text = json.dumps(document, indent=1, allow_nan=False, default=str)
        return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @validated(**REPORT_PARAMETERS)
    def report(
        self,
        path: PathLike,
        *,
        migration: object = None,
        analysis: object = None,
        snapshots: Sequence[Segmentation] | None = None,
        title: str | None = None,
        segmenter: object = None,
        backtest: object = None,
        offers: pd.DataFrame | None = None,
    ) -> Path:
        """Write a self-contained HTML report for people who do not read code.

        One file, atomically written, that opens offline in any browser: inline style
        and SVG charts, no script, no fonts or images fetched. It shows the segment
        sizes and revenue, the catalog, the segment profiles, the RFM grid (RFM
        segmentations) or a 2-D map of the customers (others), and, when given, the
        migration since an earlier run, the results of a test and the segment sizes
        over time. It holds segment-level figures only, never a customer id.

        Parameters
        ----------
        path : str or os.PathLike
            Destination, usually ``*.html``; its folder must exist.
        migration : Migration, optional
            From :func:`segmentkit.migration`: adds the moves between two runs.
        analysis : ExperimentAnalysis, optional
            From :func:`segmentkit.analyze_test`: adds the test results.
        snapshots : sequence of Segmentation, optional
            Runs at successive dates, oldest first (e.g. :func:`segmentkit.snapshots`):
            adds segment sizes over time.
        title : str, optional
            Heading of the report; defaults to ``'Customer segments'``.
        segmenter : Segmenter, optional
            The fitted clustering engine: the 2-D map is then drawn in the space it
            clusters in, as :func:`segmentkit.plots.projection` does.
        backtest : Backtest, optional
            From :func:`segmentkit.backtest`: adds how well the purchase model
            predicted a holdout, next to the baselines.
        offers : pandas.DataFrame, optional
            From :func:`segmentkit.segment_items`: adds "What to offer", the items
            each segment buys more often than the whole base (share and lift).

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        segmentkit.errors.InvalidParameterError
            If an argument has the wrong type.
        ValueError
            If ``snapshots`` is empty or not in date order, or a table of
            ``migration``/``analysis`` lacks columns.
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
        >>> path = seg.report(Path(tempfile.mkdtemp()) / "segments.html", title="Q4")
        >>> text = path.read_text(encoding="utf-8")
        >>> text.startswith("<!DOCTYPE html>"), '<h1 id="report-title">Q4</h1>' in text
        (True, True)
        """
        # The report sits above results on the data path: the root plugs it in.
        return writer("segmentation")(
            self,
            path,
            migration=migration,
            analysis=analysis,
            snapshots=snapshots,
            title=title,
            segmenter=segmenter,
            backtest=backtest,
            offers=offers,
        )

    def _table(self, table: str) -> pd.DataFrame:
        # Files carry their observation date: a segment file without it cannot be
        # reproduced or compared with next month's.
        # `table` was checked by the public writer's declaration.
        chosen = self.assignments if table == "assignments" else _money_to_cents(self.catalog)
        return chosen.assign(as_of=self.as_of.isoformat())

    def __len__(self) -> int:
        return len(self.assignments)

    def __repr__(self) -> str:
        lines = [
            f"<Segmentation by {self.engine}: {len(self)} customers in "
            f"{int((self.catalog['customers'] > 0).sum())} of {len(self.segments)} segments, "
            f"as_of={self.as_of.isoformat()}>"
        ]
        summary = self.summary()
        shown = ["customers", "share", "revenue_share"]
        lines += ["  " + line for line in segment_lines(summary[shown], width=TERMINAL_WIDTH - 2)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        title = html.escape(repr(self).splitlines()[0])
        shown = self.summary()[["customers", "share", "revenue", "revenue_share", "description"]]
        return f"<p><b>{title}</b></p>" + shown.to_html(
            formatters={"share": "{:.1%}".format, "revenue_share": "{:.1%}".format},
            float_format="{:,.2f}".format,
        )


def _catalog(
    assignments: pd.DataFrame, segments: Sequence[Segment], features: pd.DataFrame
) -> pd.DataFrame:
    labels = assignments["segment_id"].to_numpy()
    ids = np.array([s.id for s in segments], dtype=np.int64)
    position = label_positions(ids, labels)
    customers = np.bincount(position, minlength=len(ids))
    total = max(len(labels), 1)
    catalog = pd.DataFrame(
        {
            "segment_id": ids,
            "segment": [s.name for s in segments],
            "description": [s.description for s in segments],
            "customers": customers.astype(np.int64),
            "share": customers / total,
        }
    )
    aligned = features.reindex(assignments["customer_id"])
    if "monetary" in aligned:
        money = np.nan_to_num(aligned["monetary"].to_numpy(dtype=float))
        revenue = np.bincount(position, weights=money, minlength=len(ids))
        catalog["revenue"] = revenue
        total_revenue = money.sum()
        catalog["revenue_share"] = revenue / total_revenue if total_revenue else 0.0
    else:
        catalog["revenue"] = np.nan
        catalog["revenue_share"] = np.nan
    key = [
        n
        for n in _KEY_FEATURES
        if n in aligned and pd.api.types.is_numeric_dtype(aligned[n].dtype)
    ]
    if key:
        # Customers ordered by segment once, then every feature's medians from slices.
        small = position.astype(np.int16) if len(ids) < 1 << 15 else position
        order = np.argsort(small, kind="stable")  # radix sort for 16-bit keys
        ends = np.cumsum(customers)
        for name in key:
            by_segment = aligned[name].to_numpy(dtype=float)[order]
            catalog[f"median_{name}"] = _slice_medians(by_segment, ends)
    return catalog


#: Catalog columns in money: written and shown to the cent.
_MONEY_COLUMNS = ("revenue", "median_monetary")


def _value_order(catalog: pd.DataFrame) -> pd.DataFrame:
    """Segments most valuable first: revenue, then customers, then id (NaN revenue
    counts as none, so segments without revenue figures go by size)."""
    revenue = catalog["revenue"].fillna(-np.inf).to_numpy(dtype=float)
    order = np.lexsort(
        (catalog["segment_id"].to_numpy(), -catalog["customers"].to_numpy(), -revenue)
    )
    return catalog.iloc[order].reset_index(drop=True)


def _money_to_cents(table: pd.DataFrame) -> pd.DataFrame:
    money = [c for c in _MONEY_COLUMNS if c in table]
    return table.assign(**{c: table[c].round(2) for c in money}) if money else table


def label_positions(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Position of each label in ``ids`` (unique integers), -1 where absent.

    As ``pandas.Index(ids).get_indexer(labels)``; segment ids span a small range, so
    a lookup table indexed by label replaces hashing every customer's label.
    """
    labels = np.asarray(labels)
    if len(ids) and len(labels) and labels.dtype.kind == "i":
        low = min(int(ids.min()), int(labels.min()))
        high = max(int(ids.max()), int(labels.max()))
        if high - low < 1 << 20:
            slot = np.full(high - low + 1, -1, dtype=np.intp)
            slot[ids - low] = np.arange(len(ids))
            return slot[labels - low]
    return pd.Index(ids).get_indexer(labels)


def _slice_medians(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Median of each slice ``values[ends[i - 1]:ends[i]]``, NaN skipped.

    As pandas' groupby median: the middle value, or half the sum of the two middle
    values; NaN for a slice with no value.
    """
    medians = np.full(len(ends), np.nan)
    has_nan = bool(np.isnan(values).any())
    start = 0
    for i, end in enumerate(ends.tolist()):
        chunk = values[start:end]
        start = end
        if has_nan:
            chunk = chunk[~np.isnan(chunk)]
        k = len(chunk)
        if k == 0:
            continue
        low, high = sorted_at(chunk, [(k - 1) // 2, k // 2])
        medians[i] = high if k % 2 else (low + high) / 2
    return medians


def sorted_at(values: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    """``numpy.sort(values)[positions]``, exactly, without sorting all of ``values``.

    A sorted strided sample brackets each cluster of positions with a narrow value
    range; counting the values below it and partially sorting the few inside gives
    the exact values. Runs of the range's end values are counted, not copied, so
    heavy ties stay cheap. Should a bracket miss the positions (adversarial orders;
    never wrong, only slower), ``numpy.partition`` of all values answers.

    Parameters
    ----------
    values : numpy.ndarray
        One-dimensional floats without NaN.
    positions : sequence of int
        Sorted positions, ascending, each in ``range(len(values))``.

    Returns
    -------
    numpy.ndarray
        The values at those positions of the sorted ``values``.
    """
    positions = list(positions)
    n = len(values)
    if n >= 1 << 16:
        sample = np.sort(values[:: n // min(n // 64, 16384)])
        m = len(sample)
        # A sample rank spreads about sqrt(m) / 2 around its expectation: 6 sigma.
        margin = 3 * int(np.sqrt(m)) + 1
        clusters: list[list[int]] = []
        for k in positions:
            if clusters and (k - clusters[-1][-1]) * m // n <= 2 * margin:
                clusters[-1].append(k)
            else:
                clusters.append([k])
        found: dict[int, Any] = {}
        for cluster in clusters:
            within = _within_bracket(values, cluster, sample, margin)
            if within is None:
                break
            found.update(within)
        else:
            return np.array([found[k] for k in positions], dtype=values.dtype)
    return np.partition(values, positions)[positions]


def _within_bracket(
    values: np.ndarray, cluster: list[int], sample: np.ndarray, margin: int
) -> dict[int, Any] | None:
    # The dict holds scalars of values.dtype (numbers or datetimes) by position.
    # Sorted, the values from position `below` on are `low` repeated, the values
    # strictly between the bounds, then `high` repeated (None bounds are open).
    n, m = len(values), len(sample)
    low_at, high_at = cluster[0] * m // n - margin, cluster[-1] * m // n + margin
    low = sample[low_at] if low_at > 0 else None
    high = sample[high_at] if high_at < m - 1 else None
    below = 0 if low is None else int(np.count_nonzero(values < low))
    n_low = 0 if low is None else int(np.count_nonzero(values == low))
    if low is not None and low == high:
        middle, n_high = values[:0], 0
    else:
        if low is None and high is None:
            middle = values
        else:
            inside = values < high if high is not None else values > low
            if low is not None and high is not None:
                inside &= values > low
            middle = values[inside]
        n_high = 0 if high is None else int(np.count_nonzero(values == high))
    offsets = [k - below for k in cluster]
    if offsets[0] < 0 or offsets[-1] >= n_low + len(middle) + n_high:
        return None
    inner = sorted({q - n_low for q in offsets if n_low <= q < n_low + len(middle)})
    part = np.partition(middle, inner) if inner else middle
    return {
        k: low if q < n_low else part[q - n_low] if q < n_low + len(middle) else high
        for k, q in zip(cluster, offsets, strict=True)
    }


def _is_plain_numeric(values: pd.Series) -> bool:
    # Booleans are numeric to pandas, but their median (0 or 1) says little.
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    # pandas writes NaN as null and timestamps as ISO 8601 in one vectorised pass.
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))


def _read_assignments(source: pd.DataFrame | PathLike) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            frame = pd.DataFrame(document["assignments"])
            return frame.assign(as_of=document.get("as_of"))
        return pd.DataFrame(document)
    # Ids and names come back exactly, without the prefix that kept them from running as
    # spreadsheet formulas (see segmentkit._common._csv).
    return read_csv(path, ["customer_id", "segment"])


def feature_rows(frame: pd.DataFrame, assignments: pd.DataFrame, user: str) -> np.ndarray:
    """Position in ``frame`` of each segmented customer; refuses if any is missing."""
    ids = assignments["customer_id"].to_numpy()
    rows = frame.index.get_indexer(ids)
    if (rows < 0).any():
        lacking = ids[rows < 0]
        msg = (
            f"The features lack {len(lacking)} of the {len(ids)} segmented customers, "
            f"e.g. {lacking[:3].tolist()}; {user} needs features of every one."
        )
        raise ValueError(msg)
    return rows
