"""Who moved where between two segmentations, how segments drifted, and what to push.

A store re-segments every week or month. :func:`migration` compares two runs: the
transition matrix (customers who appeared and disappeared included), the customers
who moved, a drift summary per segment, and the per-segment additions and removals a
destination needs (:class:`SegmentChanges`).

Segment identity: named rules and RFM grid cells mean the same thing in every run,
so segments are compared by name. Clusters do not (cluster 2 of one fit can be
cluster 0 of the next), so for clustering engines the segments of the two runs are
matched first, by customer overlap or by centroid, and the matching is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from segmentkit._common._csv import write_csv
from segmentkit._common._files import PathLike
from segmentkit._common._params import PATH, InstanceOf, OneOf, Satisfies, validated
from segmentkit.errors import InvalidParameterError, UnknownSegmentError
from segmentkit.results._segmentation import Segmentation

__all__ = ["GONE", "NEW", "Migration", "SegmentChanges", "migration"]

#: Row label of customers who are only in the later segmentation.
NEW = "(new)"
#: Column label of customers who are only in the earlier segmentation.
GONE = "(gone)"

Match = Literal["auto", "name", "overlap", "centroid"]
# Features that grow with the observation date for a customer who does nothing: between
# two snapshots they shift in every segment, which says nothing about the segment.
_CLOCK_FEATURES = frozenset(
    {"recency_days", "tenure_days", "days_since_last_visit", "days_since_signup", "age"}
)
_MATCHES = ("auto", "name", "overlap", "centroid")
_SEGMENTATION = [
    InstanceOf(
        (Segmentation,), "a Segmentation (read a file with Segmentation.from_assignments())"
    )
]
_SEGMENT_KEY = [InstanceOf((str,), "a segment name (str)")]


def _is_current(value: object) -> bool:
    return isinstance(value, Segmentation | Mapping)


@validated(before=_SEGMENTATION, after=_SEGMENTATION, match=[OneOf(*_MATCHES)])
def migration(before: Segmentation, after: Segmentation, *, match: Match = "auto") -> Migration:
    """Compare two segmentations of the same customer base.

    Parameters
    ----------
    before, after : Segmentation
        The earlier and the later run (e.g. last month's and this month's).
    match : {'auto', 'name', 'overlap', 'centroid'}, default='auto'
        How a segment of ``before`` is identified with one of ``after``:

        * ``'name'`` – same name, same segment (rules, RFM, a model fitted once);
        * ``'overlap'`` – one-to-one matching that maximises the customers the
          matched pairs share (Hungarian algorithm on the transition counts);
        * ``'centroid'`` – one-to-one matching of the nearest segment centres in the
          numeric features both runs have (signed log, standardised);
        * ``'auto'`` – ``'name'`` when both engines' segments keep their meaning
          across refits (``tags.stable_segments``), else ``'overlap'``.

    Returns
    -------
    Migration
        Transition matrix, moves, drift, matching and the changes to push.

    Raises
    ------
    InvalidParameterError
        If ``match`` is not one of the options or an input is not a Segmentation.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> model = sk.RFMSegmenter().fit(sk.extract_features(tx, as_of="2017-09-01"))
    >>> june = model.predict(sk.extract_features(tx, as_of="2017-06-01"))
    >>> september = model.predict(sk.extract_features(tx, as_of="2017-09-01"))
    >>> moved = sk.migration(june, september)
    >>> int(moved.matrix.drop(index="(new)").to_numpy().sum()) == len(june)
    True
    >>> moved.matrix.loc["Champions", "Champions"] > 0
    np.True_
    """
    return Migration(before, after, _resolve_match(match, before, after))


class Migration:
    """The comparison of two segmentations (build it with :func:`migration`).

    Parameters
    ----------
    before, after : Segmentation
        The earlier and the later run.
    match : {'name', 'overlap', 'centroid'}
        How segments are identified across the two (already resolved from ``'auto'``).

    Attributes
    ----------
    matrix : pandas.DataFrame
        Customer counts. Rows: the segments of ``before`` in id order, then
        ``'(new)'`` for customers only in ``after``. Columns: the segments of
        ``after``, then ``'(gone)'`` for customers only in ``before``. Row sums of the
        ``before`` segments add up to the customers of ``before``.
    shares : pandas.DataFrame
        ``matrix`` divided by its row sums (a row of zeros stays zero).
    moves : pandas.DataFrame
        One row per customer whose segment changed (under the matching), appeared or
        disappeared: ``customer_id, from_segment, to_segment``.
    drift : pandas.DataFrame
        One row per segment: ``segment, segment_before, customers_before,
        customers_after, size_change, size_change_pct, revenue_before, revenue_after,
        revenue_change, largest_shift, largest_shift_sd``.
    profile_shift : pandas.DataFrame
        One row per segment and numeric feature: ``segment, feature, median_before,
        median_after, mean_shift_sd`` (change of the mean in pooled standard
        deviations) and ``clock_driven`` (the feature grows with the date alone, like
        ``recency_days`` and ``tenure_days``; ``largest_shift`` in ``drift`` skips
        those). Empty when the segmentations carry no features (read from files).
    matching : pandas.DataFrame or None
        For ``match`` other than ``'name'``: ``before, after, overlap, jaccard`` (and
        ``distance`` for ``'centroid'``), one row per matched pair.
    match : str
        The matching used (``'auto'`` resolved).
    before_as_of, after_as_of : pandas.Timestamp
        Observation dates of the two runs.
    """

    def __init__(self, before: Segmentation, after: Segmentation, match: str) -> None:
        self.before = before
        self.after = after
        self.match = match
        self.before_as_of = before.as_of
        self.after_as_of = after.as_of
        names_before = [s.name for s in before.segments]
        names_after = [s.name for s in after.segments]
        joined = _join(before, after)
        self._joined = joined
        self.matrix = _matrix(joined, names_before, names_after)
        totals = self.matrix.sum(axis=1).to_numpy(dtype=float)
        self.shares = self.matrix.div(np.where(totals == 0, 1.0, totals), axis=0)
        self.matching, self._pairs = _matching(match, self.matrix, before, after)
        self.moves = _moves(joined, self._pairs)
        self.profile_shift = _profile_shift(before, after, self._pairs)
        self.drift = _drift(before, after, self._pairs, self.profile_shift)

    @property
    def pairs(self) -> dict[str, str]:
        """Segment of ``before`` → its counterpart in ``after`` (matched segments only)."""
        return dict(self._pairs)

    def counts(self) -> dict[str, int]:
        """Customers who stayed, moved, are new or are gone.

        Returns
        -------
        dict
            ``stayed + moved + gone`` is the size of ``before``; ``stayed + moved +
            new`` that of ``after``.
        """
        new = int((self.moves["from_segment"] == NEW).sum())
        gone = int((self.moves["to_segment"] == GONE).sum())
        moved = len(self.moves) - new - gone
        stayed = len(self.before) - moved - gone
        return {"stayed": stayed, "moved": moved, "new": new, "gone": gone}

    def changes(self) -> SegmentChanges:
        """The customers to add to and remove from each segment's audience.

        Returns
        -------
        SegmentChanges
            Keyed by the segment names of ``after`` (segments that vanished keep their
            ``before`` name, with only removals).
        """
        return SegmentChanges(self.before, self.after, self._pairs)

    @validated(folder=[PATH])
    def to_csv(self, folder: PathLike) -> dict[str, object]:
        """Write ``matrix.csv``, ``shares.csv``, ``moves.csv``, ``drift.csv`` and ``changes.csv``.

        Parameters
        ----------
        folder : str or os.PathLike
            Created if missing.

        Returns
        -------
        dict
            Table name → path written.
        """
        from pathlib import Path

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tables = {
            "matrix": self.matrix.rename_axis("from_segment"),
            "shares": self.shares.rename_axis("from_segment"),
            "moves": self.moves,
            "drift": self.drift,
            "changes": self.changes().table,
        }
        written: dict[str, object] = {}
        for name, frame in tables.items():
            path = out / f"{name}.csv"
            keep_index = name in ("matrix", "shares")
            write_csv(path, frame, index=keep_index)
            written[name] = path
        return written

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"Migration({self.before_as_of:%Y-%m-%d} → {self.after_as_of:%Y-%m-%d}, "
            f"match={self.match!r}: {c['stayed']} stayed, {c['moved']} moved, "
            f"{c['new']} new, {c['gone']} gone)"
        )


class SegmentChanges:
    """Per-segment customers to add and to remove, so a destination gets only the difference.

    Built by :meth:`Migration.changes`. The key of a segment is its name in the later
    segmentation (the audience it feeds); a segment that vanished keeps its earlier
    name and has only removals.

    Parameters
    ----------
    before, after : Segmentation
        The earlier and the later run.
    pairs : mapping of str to str
        Segment of ``before`` → its counterpart in ``after`` (:attr:`Migration.pairs`).

    Attributes
    ----------
    table : pandas.DataFrame
        ``customer_id, segment, action`` with ``action`` ``'add'`` or ``'remove'``.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> model = sk.RFMSegmenter().fit(sk.extract_features(tx, as_of="2017-09-01"))
    >>> june = model.predict(sk.extract_features(tx, as_of="2017-06-01"))
    >>> september = model.predict(sk.extract_features(tx, as_of="2017-09-01"))
    >>> changes = sk.migration(june, september).changes()
    >>> updated = changes.apply(june)
    >>> set(updated["Champions"]) == set(september.members("Champions"))
    True
    """

    def __init__(
        self, before: Segmentation, after: Segmentation, pairs: Mapping[str, str]
    ) -> None:
        from segmentkit.timeline._diff import membership_changes

        self._before = before
        self._after = after
        self._key_of_before = dict(pairs)
        matched_after = set(pairs.values())
        after_names = [s.name for s in after.segments]
        vanished = [s.name for s in before.segments if s.name not in pairs]
        # A vanished segment keeps its name, unless an unrelated later segment took it.
        for name in vanished:
            self._key_of_before[name] = name if name not in after_names else f"{name} {GONE}"
        self._keys = after_names + [self._key_of_before[n] for n in vanished]
        self._unmatched_after = [n for n in after_names if n not in matched_after]
        before_members = _members_by_key(before, self._key_of_before)
        after_members = _members_by_key(after, {n: n for n in after_names})
        rows = []
        self._add: dict[str, pd.Index] = {}
        self._remove: dict[str, pd.Index] = {}
        empty = pd.Index([], dtype=object, name="customer_id")
        for key in self._keys:
            old = before_members.get(key, empty)
            new = after_members.get(key, empty)
            self._add[key], self._remove[key] = membership_changes(old, new)
            rows.append(pd.DataFrame({"customer_id": self._add[key], "segment": key}))
            rows[-1]["action"] = "add"
            rows.append(pd.DataFrame({"customer_id": self._remove[key], "segment": key}))
            rows[-1]["action"] = "remove"
        self.table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()

    @property
    def segments(self) -> list[str]:
        """Keys of the segments, in the later segmentation's order."""
        return list(self._keys)

    def _key(self, segment: str) -> str:
        if segment not in self._add:
            msg = f"No segment named {segment!r} in these changes. Segments: {self._keys}."
            raise UnknownSegmentError(msg)
        return segment

    @validated(segment=_SEGMENT_KEY)
    def to_add(self, segment: str) -> pd.Index:
        """Ids of the customers who joined ``segment``.

        Parameters
        ----------
        segment : str
            Segment key (its name in the later segmentation).

        Returns
        -------
        pandas.Index
            Customer ids, in the later segmentation's order.
        """
        return self._add[self._key(segment)]

    @validated(segment=_SEGMENT_KEY)
    def to_remove(self, segment: str) -> pd.Index:
        """Ids of the customers who left ``segment``.

        Parameters
        ----------
        segment : str
            Segment key (its name in the later segmentation).

        Returns
        -------
        pandas.Index
            Customer ids, in the earlier segmentation's order.
        """
        return self._remove[self._key(segment)]

    @validated(segment=_SEGMENT_KEY)
    def additions(self, segment: str) -> Segmentation:
        """The joiners as a segmentation with the one segment, ready for an exporter.

        Parameters
        ----------
        segment : str
            Segment key (its name in the later segmentation).

        Returns
        -------
        Segmentation
            Pass it with the same ``segment`` to ``build_meta`` (``operation='add'``),
            ``build_klaviyo``...
        """
        return self._as_segmentation(self.to_add(segment), segment, self._after)

    @validated(segment=_SEGMENT_KEY)
    def removals(self, segment: str) -> Segmentation:
        """The leavers as a segmentation with the one segment, ready for an exporter.

        Parameters
        ----------
        segment : str
            Segment key (its name in the later segmentation).

        Returns
        -------
        Segmentation
            Pass it with the same ``segment`` to ``build_meta`` (``operation='remove'``),
            ``build_google_ads`` (``operation='remove'``)...
        """
        return self._as_segmentation(self.to_remove(segment), segment, self._before)

    def _as_segmentation(self, ids: pd.Index, segment: str, side: Segmentation) -> Segmentation:
        # Labelled with the key even when the earlier run called the segment otherwise
        # (matched clusters): the destination's audience is the key.
        table = pd.DataFrame(
            {"customer_id": ids.to_numpy(dtype=object), "segment_id": 0, "segment": segment}
        )
        table["as_of"] = side.as_of
        return Segmentation.from_assignments(table, engine=side.engine)

    @validated(
        current=[
            Satisfies(_is_current, "a Segmentation or a mapping of segment key to member ids")
        ]
    )
    def apply(self, current: Segmentation | Mapping[str, Iterable[str]]) -> dict[str, pd.Index]:
        """Apply the changes to the audiences as they are now.

        Parameters
        ----------
        current : Segmentation or mapping of str to ids
            The earlier segmentation (its segments are keyed through the matching), or
            each audience's member ids as the destination holds them.

        Returns
        -------
        dict of str to pandas.Index
            Members of every segment key after removing and adding; with the earlier
            segmentation as ``current`` this is exactly the later membership.
        """
        if isinstance(current, Segmentation):
            members = _members_by_key(current, self._key_of_before)
        else:
            members = {k: pd.Index([str(i) for i in v], dtype=object) for k, v in current.items()}
        out: dict[str, pd.Index] = {}
        empty = pd.Index([], dtype=object, name="customer_id")
        for key in self._keys:
            held = members.get(key, empty)
            kept = held[~held.isin(self._remove[key])]
            out[key] = kept.append(self._add[key][~self._add[key].isin(kept)]).rename(
                "customer_id"
            )
        return out

    def summary(self) -> pd.DataFrame:
        """Additions and removals per segment.

        Returns
        -------
        pandas.DataFrame
            Indexed by segment key: ``add, remove``.
        """
        return pd.DataFrame(
            {
                "add": [len(self._add[k]) for k in self._keys],
                "remove": [len(self._remove[k]) for k in self._keys],
            },
            index=pd.Index(self._keys, name="segment"),
        )

    def __repr__(self) -> str:
        adds = sum(len(v) for v in self._add.values())
        removes = sum(len(v) for v in self._remove.values())
        return f"SegmentChanges({len(self._keys)} segments: {adds} to add, {removes} to remove)"


def _resolve_match(match: str, before: Segmentation, after: Segmentation) -> str:
    if match != "auto":
        return match
    stable = all(_stable_segments(s.engine) for s in (before, after))
    return "name" if stable else "overlap"


def _stable_segments(engine: str) -> bool:
    from segmentkit.engines._registry import _resolve
    from segmentkit.errors import UnknownEngineError

    try:
        factory = _resolve(engine)
    except UnknownEngineError:
        # Segmentations read from files or made by unregistered engines: names are all
        # there is to go by.
        return True
    tags = getattr(factory, "tags", None)
    return bool(getattr(tags, "stable_segments", True))


def _join(before: Segmentation, after: Segmentation) -> pd.DataFrame:
    left = pd.DataFrame(
        {
            "customer_id": before.assignments["customer_id"].astype(str).to_numpy(),
            "from_segment": before.assignments["segment"].astype(str).to_numpy(),
        }
    )
    right = pd.DataFrame(
        {
            "customer_id": after.assignments["customer_id"].astype(str).to_numpy(),
            "to_segment": after.assignments["segment"].astype(str).to_numpy(),
        }
    )
    joined = left.merge(right, on="customer_id", how="outer", sort=True)
    joined["from_segment"] = joined["from_segment"].fillna(NEW)
    joined["to_segment"] = joined["to_segment"].fillna(GONE)
    return joined


def _matrix(joined: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    row_labels = [*rows, NEW]
    column_labels = [*columns, GONE]
    r = pd.Index(row_labels).get_indexer(joined["from_segment"])
    c = pd.Index(column_labels).get_indexer(joined["to_segment"])
    counts = np.bincount(
        r * len(column_labels) + c, minlength=len(row_labels) * len(column_labels)
    )
    return pd.DataFrame(
        counts.reshape(len(row_labels), len(column_labels)).astype(np.int64),
        index=pd.Index(row_labels, name="before"),
        columns=pd.Index(column_labels, name="after"),
    )


def _matching(
    match: str, matrix: pd.DataFrame, before: Segmentation, after: Segmentation
) -> tuple[pd.DataFrame | None, dict[str, str]]:
    rows = list(matrix.index[:-1])
    columns = list(matrix.columns[:-1])
    if match == "name":
        return None, {name: name for name in rows if name in set(columns)}
    from scipy.optimize import linear_sum_assignment

    overlap = matrix.iloc[:-1, :-1].to_numpy(dtype=float)
    if match == "overlap":
        r, c = linear_sum_assignment(overlap, maximize=True)
        keep = overlap[r, c] > 0
        r, c = r[keep], c[keep]
        distance = None
    else:
        centres_before = _centres(before)
        centres_after = _centres(after)
        # A feature without a value in either segmentation (a 365-day trend on less than
        # two years of history) says nothing about where a segment sits.
        common = [
            f
            for f in centres_before.columns
            if f in centres_after.columns
            and centres_before[f].notna().any()
            and centres_after[f].notna().any()
        ]
        if not common:
            msg = (
                "match='centroid' needs numeric features in both segmentations; these have "
                "none in common (read from files?). Use match='overlap'."
            )
            raise InvalidParameterError(msg)
        a = centres_before.reindex(rows)[common].to_numpy(dtype=float)
        b = centres_after.reindex(columns)[common].to_numpy(dtype=float)
        # Empty segments have no centre; they can't be matched. A feature one segment has
        # no value for (days between orders of one-time buyers) is left out of that pair.
        squared = (a[:, None, :] - b[None, :, :]) ** 2
        compared = ~np.isnan(squared)
        cost = np.sqrt(np.where(compared, squared, 0.0).sum(axis=2))
        cost = np.where(compared.any(axis=2), cost, 1e12)
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < 1e12
        r, c = r[keep], c[keep]
        distance = cost[r, c]
    sizes_before = matrix.iloc[:-1, :].sum(axis=1).to_numpy()
    sizes_after = matrix.iloc[:, :-1].sum(axis=0).to_numpy()
    shared = overlap[r, c]
    union = sizes_before[r] + sizes_after[c] - shared
    table = pd.DataFrame(
        {
            "before": [rows[i] for i in r],
            "after": [columns[j] for j in c],
            "overlap": shared.astype(np.int64),
            "jaccard": np.divide(shared, union, out=np.zeros(len(r)), where=union > 0),
        }
    )
    if distance is not None:
        table["distance"] = distance
    return table, dict(zip(table["before"], table["after"], strict=True))


def _numeric_features(segmentation: Segmentation) -> pd.DataFrame:
    frame = segmentation._features.frame
    numeric = [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    return frame[numeric].reindex(segmentation.assignments["customer_id"].astype(str))


def _centres(segmentation: Segmentation) -> pd.DataFrame:
    values = _numeric_features(segmentation).astype(float)
    # Signed log and one pooled scale keep spend from outweighing every count.
    logged = np.sign(values) * np.log1p(values.abs())
    scale = logged.std(ddof=0).replace(0, 1.0)
    standard = (logged - logged.mean()) / scale
    standard["segment"] = segmentation.assignments["segment"].astype(str).to_numpy()
    return standard.groupby("segment", sort=False).mean()


def _moves(joined: pd.DataFrame, pairs: Mapping[str, str]) -> pd.DataFrame:
    counterpart = joined["from_segment"].map(pairs)
    stayed = counterpart.to_numpy(dtype=object) == joined["to_segment"].to_numpy(dtype=object)
    return joined[~stayed].reset_index(drop=True)


def _sizes_and_revenue(segmentation: Segmentation) -> pd.DataFrame:
    catalog = segmentation.catalog.set_index("segment")
    return catalog[["customers", "revenue"]]


def _profile_shift(
    before: Segmentation, after: Segmentation, pairs: Mapping[str, str]
) -> pd.DataFrame:
    columns = [
        "segment",
        "feature",
        "median_before",
        "median_after",
        "mean_shift_sd",
        "clock_driven",
    ]
    old = _numeric_features(before)
    new = _numeric_features(after)
    common = [c for c in old.columns if c in new.columns]
    if not common or not pairs:
        return pd.DataFrame(columns=columns)
    old = old[common].astype(float)
    new = new[common].astype(float)
    old["segment"] = before.assignments["segment"].astype(str).to_numpy()
    new["segment"] = after.assignments["segment"].astype(str).to_numpy()
    # One pooled scale per feature, so a shift reads the same in every segment.
    scale = pd.concat([old[common], new[common]]).std(ddof=0).replace(0, np.nan)
    old_by = old.groupby("segment", sort=False)
    new_by = new.groupby("segment", sort=False)
    medians_old, medians_new = old_by.median(), new_by.median()
    means_old, means_new = old_by.mean(), new_by.mean()
    frames = []
    for name_before, name_after in pairs.items():
        if name_before not in means_old.index or name_after not in means_new.index:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "segment": name_after,
                    "feature": common,
                    "median_before": medians_old.loc[name_before, common].to_numpy(),
                    "median_after": medians_new.loc[name_after, common].to_numpy(),
                    "mean_shift_sd": (
                        (means_new.loc[name_after, common] - means_old.loc[name_before, common])
                        / scale
                    ).to_numpy(),
                    "clock_driven": [feature in _CLOCK_FEATURES for feature in common],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _drift(
    before: Segmentation,
    after: Segmentation,
    pairs: Mapping[str, str],
    shift: pd.DataFrame,
) -> pd.DataFrame:
    old = _sizes_and_revenue(before)
    new = _sizes_and_revenue(after)
    by_after = {v: k for k, v in pairs.items()}
    rows = []
    for name in new.index:
        source = by_after.get(name)
        rows.append((name, source))
    for name in old.index:
        if name not in pairs:
            # Same key as SegmentChanges gives a vanished segment.
            rows.append((name, name) if name not in new.index else (f"{name} {GONE}", name))
    records = []
    for segment, source in rows:
        in_after = segment in new.index
        size_before = int(old.at[source, "customers"]) if source in old.index else 0
        size_after = int(new.at[segment, "customers"]) if in_after else 0
        revenue_before = float(old.at[source, "revenue"]) if source in old.index else 0.0
        revenue_after = float(new.at[segment, "revenue"]) if in_after else 0.0
        records.append(
            {
                "segment": segment,
                "segment_before": source if source is not None else NEW,
                "customers_before": size_before,
                "customers_after": size_after,
                "size_change": size_after - size_before,
                "size_change_pct": (
                    (size_after - size_before) / size_before if size_before else np.nan
                ),
                "revenue_before": revenue_before,
                "revenue_after": revenue_after,
                "revenue_change": revenue_after - revenue_before,
            }
        )
    drift = pd.DataFrame(records)
    if len(shift):
        usable = shift[~shift["clock_driven"].astype(bool)].dropna(subset=["mean_shift_sd"])
        strongest = usable.loc[usable["mean_shift_sd"].abs().groupby(usable["segment"]).idxmax()]
        strongest = strongest.set_index("segment")
        drift["largest_shift"] = drift["segment"].map(strongest["feature"])
        drift["largest_shift_sd"] = drift["segment"].map(strongest["mean_shift_sd"])
    else:
        drift["largest_shift"] = None
        drift["largest_shift_sd"] = np.nan
    return drift


def _members_by_key(segmentation: Segmentation, key_of: Mapping[str, str]) -> dict[str, pd.Index]:
    table = segmentation.assignments
    ids = table["customer_id"].astype(str).to_numpy(dtype=object)
    names = table["segment"].astype(str).to_numpy(dtype=object)
    out: dict[str, pd.Index] = {}
    for name, key in key_of.items():
        out[key] = pd.Index(ids[names == name], dtype=object, name="customer_id")
    return out
