"""The result every engine returns: who is in which segment, and what each segment is."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from segmentkit._features import CustomerFeatures
from segmentkit._io import PathLike, write_atomic
from segmentkit.errors import InvalidParameterError, UnknownSegmentError

__all__ = ["NOISE", "Segment", "Segmentation"]

#: Label of customers an engine explicitly leaves unassigned (e.g. HDBSCAN noise).
NOISE = -1

_KEY_FEATURES = ("recency_days", "frequency", "monetary")
Table = Literal["assignments", "catalog"]


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
        One row per segment: ``segment_id, segment, description, customers, share,
        revenue, revenue_share`` and the median of key features.
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
        self.catalog = _catalog(assignments, self.segments, features.frame)
        # Kept for profile(): the features the segments were built from.
        self._features = features

    @classmethod
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

    def summary(self) -> pd.DataFrame:
        """One row per segment, largest first, indexed by segment name.

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
        """
        return (
            self.catalog.sort_values(["customers", "segment_id"], ascending=[False, True])
            .set_index("segment")
            .drop(columns=["segment_id"])
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
            One row per segment, in id order, empty segments included, indexed by
            segment name. Columns are a two-level index ``(feature, statistic)``:

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
        feature              recency_days  frequency
        segment
        Champions                    0.11       2.44
        Loyal customers              0.70       1.50
        Potential loyalists          0.15       0.67
        """
        if features is None:
            frame = self._features.frame
        elif isinstance(features, CustomerFeatures):
            frame = features.frame
        elif isinstance(features, pd.DataFrame):
            frame = CustomerFeatures.from_frame(features).frame
        else:
            msg = (
                "The 'features' parameter must be CustomerFeatures, a pandas DataFrame or "
                f"None. Got {type(features).__name__} instead."
            )
            raise InvalidParameterError(msg)
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
        head = self.catalog[["segment_id", "customers", "share", "revenue_share"]]
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
        return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.15g"))

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
        from segmentkit._table import require_pyarrow

        require_pyarrow()
        frame = self._table(table)
        return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))

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
        if table not in ("all", "assignments", "catalog"):
            msg = (
                "The 'table' parameter must be 'all', 'assignments' or 'catalog'. "
                f"Got {table!r} instead."
            )
            raise InvalidParameterError(msg)
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

    def report(
        self,
        path: PathLike,
        *,
        migration: object = None,
        analysis: object = None,
        snapshots: Sequence[Segmentation] | None = None,
        title: str | None = None,
        segmenter: object = None,
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
        from segmentkit._html_report import write_report

        return write_report(
            self,
            path,
            migration=migration,
            analysis=analysis,
            snapshots=snapshots,
            title=title,
            segmenter=segmenter,
        )

    def _table(self, table: str) -> pd.DataFrame:
        # Files carry their observation date: a segment file without it cannot be
        # reproduced or compared with next month's.
        if table == "assignments":
            return self.assignments.assign(as_of=self.as_of.isoformat())
        if table == "catalog":
            return self.catalog.assign(as_of=self.as_of.isoformat())
        msg = f"The 'table' parameter must be 'assignments' or 'catalog'. Got {table!r} instead."
        raise InvalidParameterError(msg)

    def __len__(self) -> int:
        return len(self.assignments)

    def __repr__(self) -> str:
        lines = [
            f"<Segmentation by {self.engine}: {len(self)} customers in "
            f"{int((self.catalog['customers'] > 0).sum())} of {len(self.segments)} segments, "
            f"as_of={self.as_of.isoformat()}>"
        ]
        for row in self.summary().itertuples():
            revenue = "" if np.isnan(row.revenue_share) else f"  revenue {row.revenue_share:6.1%}"
            lines.append(
                f"  {row.Index:<22} {row.customers:>8} customers  {row.share:6.1%}{revenue}"
            )
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
    position = pd.Index(ids).get_indexer(labels)
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
    for name in _KEY_FEATURES:
        if name in aligned and pd.api.types.is_numeric_dtype(aligned[name].dtype):
            medians = (
                pd.Series(aligned[name].to_numpy(dtype=float))
                .groupby(position)
                .median()
                .reindex(range(len(ids)))
            )
            catalog[f"median_{name}"] = medians.to_numpy()
    return catalog


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
    return pd.read_csv(path, dtype={"customer_id": str, "segment": str})


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
