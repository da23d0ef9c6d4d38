"""Names and descriptions for clusters, backed by how each differs from the rest.

A cluster's name lists what sets it apart, e.g. ``"Recent · Frequent · High spend"``. A
word is used only when the difference is both *consistent* and *material*:

- consistent: Cliff's delta of the cluster against every other customer (the chance that
  a member has the higher value minus the chance that it has the lower one) is at least
  0.33 in size, a "medium" effect. Rank-based, so a few extreme customers cannot make it,
  and a feature most customers have at 0 (returns) cannot either;
- material: the cluster's median lies on that side of the base median by at least a
  quarter of the base's interquartile range (its standard deviation when that is 0),
  and by at least a tenth of the base median itself.

Words come from the feature catalog in the direction that matters ("Recent", not "Low
recency"), appear in the catalog's order whatever their strength, and a name is unique
as a set of words: a cluster that would repeat another's words gets the next material
difference, or else a comparison with that cluster ("higher basket size"). A cluster
that differs in nothing material is "Typical customers". Descriptions say the same in
words and units: "Net spend 505.90, 1.7× the typical 291.90; 11 orders (typical 2)".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segmentkit.features._catalog import column_definition

__all__ = ["TYPICAL", "Difference", "cluster_differences", "describe_clusters", "phrase"]

#: Smallest Cliff's delta (cluster against the rest) for a word: a "medium" effect.
MIN_EFFECT = 0.33
#: Smallest gap between the cluster's and the base's median, in base spreads.
MIN_GAP = 0.25
#: Smallest gap between the medians relative to the base median (when that is not 0).
MIN_RELATIVE = 0.1
_MAX_WORDS = 3
#: Further material words allowed to tell a cluster from one with the same words.
_MAX_EXTRA_WORDS = 2
#: Most comparisons with a same-named cluster tried, alone and together.
_MAX_COMPARED = 4
#: The name of a cluster that differs from the base in nothing material.
TYPICAL = "Typical customers"


@dataclass(frozen=True)
class Difference:
    """How one cluster differs from the base in one feature.

    ``effect`` is Cliff's delta of the cluster against every other customer (positive:
    members tend to have the higher value); ``gap`` the median gap in base spreads.
    """

    feature: str
    effect: float
    gap: float
    median: float
    base_median: float

    @property
    def higher(self) -> bool:
        return self.effect > 0

    @property
    def material(self) -> bool:
        """Consistent and material, in the same direction (see the module notes)."""
        same_side = (self.median > self.base_median) == self.higher
        differs = self.median != self.base_median
        strong = abs(self.effect) >= MIN_EFFECT and abs(self.gap) >= MIN_GAP
        # A few percent of a large typical value is not worth a word (481 days of tenure
        # against 502), however consistent.
        relative = self.base_median == 0 or abs(
            self.median - self.base_median
        ) >= MIN_RELATIVE * abs(self.base_median)
        return strong and relative and same_side and differs

    @property
    def word(self) -> str:
        return word_for(self.feature, higher=self.higher)


def word_for(feature: str, *, higher: bool) -> str:
    """The catalog's word for a higher (or lower) value of ``feature`` than the base."""
    definition = column_definition(feature)
    if definition is not None and definition.words is not None:
        return definition.words[0 if higher else 1]
    return f"{'High' if higher else 'Low'} {_label(feature).lower()}"


def _label(feature: str) -> str:
    definition = column_definition(feature)
    if definition is not None and definition.label:
        return definition.label
    return feature.replace("_", " ").capitalize()


def cluster_differences(
    frame: pd.DataFrame, labels: np.ndarray, cluster_ids: Sequence[int]
) -> dict[int, list[Difference]]:
    """Every numeric feature's difference per cluster, strongest effect first.

    Parameters
    ----------
    frame : pandas.DataFrame
        Features in their original units, one row per customer.
    labels : numpy.ndarray
        Cluster id of each row (other ids, e.g. noise, count as "the rest").
    cluster_ids : sequence of int
        The clusters to measure.

    Returns
    -------
    dict of int to list of Difference
        Per cluster id; features a cluster has no value of are left out.

    Examples
    --------
    >>> frame = pd.DataFrame({"frequency": [1, 1, 2, 9, 12, 10]})
    >>> diff = cluster_differences(frame, np.array([0, 0, 0, 1, 1, 1]), [1])[1][0]
    >>> diff.feature, round(diff.effect, 2), diff.material
    ('frequency', 1.0, True)
    """
    numeric = frame.select_dtypes("number")
    ids, codes = np.unique(np.asarray(labels), return_inverse=True)
    codes = codes.reshape(-1)
    out: dict[int, list[Difference]] = {int(c): [] for c in cluster_ids}
    measured = [(cluster, int(np.searchsorted(ids, cluster))) for cluster in out]
    measured = [(c, i) for c, i in measured if i < len(ids) and ids[i] == c]
    for feature in numeric.columns:
        values = numeric[feature].to_numpy(dtype=float, na_value=np.nan)
        known = ~np.isnan(values)
        if known.sum() < 2:
            continue
        # One sort per feature gives everything: the base quantiles, the average ranks
        # (ties share one) whose sums per cluster are the Mann-Whitney U, and, grouped
        # by cluster with a stable sort of the ids, each cluster's values in order.
        order = np.argsort(values[known])
        ordered = values[known][order]
        owners = codes[known][order]
        n = len(ordered)
        base_median = float(np.median(ordered))
        q1, q3 = np.quantile(ordered, [0.25, 0.75])
        spread = float(q3 - q1) or float(ordered.std())
        sizes = np.bincount(owners, minlength=len(ids))
        rank_sums = np.bincount(owners, weights=_average_ranks(ordered), minlength=len(ids))
        grouped = ordered[np.argsort(owners, kind="stable")]
        starts = np.cumsum(sizes) - sizes
        for cluster, code in measured:
            n_in = int(sizes[code])
            if n_in == 0:
                continue
            first = starts[code]
            median = float((grouped[first + (n_in - 1) // 2] + grouped[first + n_in // 2]) / 2)
            n_out = n - n_in
            if n_out == 0:
                effect = 0.0
            else:
                u = float(rank_sums[code]) - n_in * (n_in + 1) / 2
                effect = 2 * u / (n_in * n_out) - 1
            gap = (median - base_median) / spread if spread > 0 else 0.0
            out[cluster].append(Difference(feature, effect, gap, median, base_median))
    for differences in out.values():
        differences.sort(key=lambda d: -abs(d.effect))
    return out


def _average_ranks(ordered: np.ndarray) -> np.ndarray:
    """1-based ranks of sorted ``ordered``, tied values sharing their average rank."""
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    # A run of ties covering positions s+1 .. s+size has the average rank s + (size+1)/2.
    return np.repeat(starts + (sizes + 1) / 2, sizes)


def describe_clusters(
    frame: pd.DataFrame, labels: np.ndarray, cluster_ids: Sequence[int]
) -> list[tuple[str, str]]:
    """A ``(name, description)`` per cluster id, deterministic and unique.

    Parameters
    ----------
    frame : pandas.DataFrame
        Numeric features in their original units, one row per customer.
    labels : numpy.ndarray
        Cluster id of each row.
    cluster_ids : sequence of int
        Ids to describe, in order (the first ones keep the plain names when two would
        share their words: pass them most valuable first).

    Returns
    -------
    list of tuple of (str, str)
        Name and description per id. Names are unique as sets of words.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"monetary": [10, 12, 11, 500, 600, 550.0],
    ...                       "frequency": [1, 1, 2, 9, 12, 10]})
    >>> for name, text in describe_clusters(frame, np.array([0, 0, 0, 1, 1, 1]), [1, 0]):
    ...     print(name)
    ...     print(text)
    Frequent · High spend
    3 customers; 10 orders (typical 5.5); Net spend 550.00, 2.1× the typical 256.00.
    Infrequent · Low spend
    3 customers; 1 order (typical 5.5); Net spend 11.00, 4% of the typical 256.00.
    """
    order = _catalog_order(list(frame.columns))
    differences = cluster_differences(frame, labels, cluster_ids)
    names: dict[frozenset[str], int] = {}
    described = []
    for cluster in cluster_ids:
        found = differences[int(cluster)]
        n_members = int((np.asarray(labels) == cluster).sum())
        if n_members == 0:
            described.append((f"Cluster {cluster}", "No customers."))
            continue
        material = _one_per_word([d for d in found if d.material])
        chosen = material[:_MAX_WORDS]
        words = frozenset(d.word for d in chosen)
        extra = material[_MAX_WORDS : _MAX_WORDS + _MAX_EXTRA_WORDS]
        # The same words as a more valuable cluster: the next material difference...
        while words in names and extra:
            chosen.append(extra.pop(0))
            words = frozenset(d.word for d in chosen)
        base = [d.word for d in sorted(chosen, key=lambda d: order[d.feature])] or [TYPICAL]
        tokens = base
        if frozenset(base) in names:
            # ...else how it differs from the first cluster with those words: its
            # strongest difference that no other cluster's name has taken.
            first = names[frozenset(base)]
            comparisons = _compared(frame, labels, cluster, first)[:_MAX_COMPARED]
            told_apart = (
                [*base, *picked]
                for size in range(1, len(comparisons) + 1)
                for picked in itertools.combinations(comparisons, size)
                if frozenset([*base, *picked]) not in names
            )
            taken = sum(frozenset(base) <= key for key in names)
            tokens = next(told_apart, [*base, f"({taken + 1})"])
        else:
            names[frozenset(base)] = int(cluster)
        name = " · ".join(tokens)
        names.setdefault(frozenset(tokens), int(cluster))
        told = chosen or found[:_MAX_WORDS]
        told = sorted(told, key=lambda d: order[d.feature])
        parts = [phrase(d.feature, d.median, d.base_median) for d in told]
        count = f"{n_members:,} customer{'' if n_members == 1 else 's'}"
        text = count + "".join(f"; {part}" for part in parts) + "."
        described.append((name, text))
    return described


def _one_per_word(differences: list[Difference]) -> list[Difference]:
    """The strongest difference of each word (net and gross spend are both "High spend")."""
    seen: set[str] = set()
    kept = []
    for difference in differences:
        if difference.word not in seen:
            seen.add(difference.word)
            kept.append(difference)
    return kept


def _compared(frame: pd.DataFrame, labels: np.ndarray, cluster: int, other: int) -> list[str]:
    """ "higher <label>" or "lower <label>" for each feature, the ones that tell
    ``cluster`` from ``other`` most first (Cliff's delta between their members only)."""
    labels = np.asarray(labels)
    pair = (labels == cluster) | (labels == other)
    numeric = frame.loc[pair].select_dtypes("number")
    differences = cluster_differences(numeric, labels[pair], [cluster])[int(cluster)]
    return [
        f"{'higher' if d.higher else 'lower'} {_label(d.feature).lower()}"
        for d in differences
        if d.effect != 0
    ]


def phrase(feature: str, value: float, typical: float) -> str:
    """``feature``'s value in words and units, beside the typical (median) customer's.

    Examples
    --------
    >>> phrase("monetary", 505.9, 291.9)
    'Net spend 505.90, 1.7× the typical 291.90'
    >>> phrase("recency_days", 9.0, 30.0)
    'last order 9 days ago (typical 30)'
    >>> phrase("return_rate", 0.005, 0.0)
    'Return rate 0.5% (typical 0.0%)'
    """
    definition = column_definition(feature)
    unit = definition.unit if definition is not None else ""
    label = _label(feature)
    if feature == "recency_days":
        return f"last order {_number(value)} days ago (typical {_number(typical)})"
    if feature == "frequency":
        orders = "order" if value == 1 else "orders"
        return f"{_number(value)} {orders} (typical {_number(typical)})"
    if unit == "currency":
        if value > 0 and typical > 0:
            ratio = value / typical
            relative = _times(ratio) if ratio >= 1 else f"{ratio:.0%} of"
            return f"{label} {value:,.2f}, {relative} the typical {typical:,.2f}"
        return f"{label} {value:,.2f} (typical {typical:,.2f})"
    if unit == "share":
        return f"{label} {value:.1%} (typical {typical:.1%})"
    if unit == "ratio":
        return f"{label} {value:,.2f} (typical {typical:,.2f})"
    if unit in ("days", "years", "minutes"):
        return f"{label} {_number(value)} {unit} (typical {_number(typical)})"
    return f"{label}: {_number(value)} (typical {_number(typical)})"


def _number(value: float) -> str:
    """Whole numbers as such, others to one decimal (3 significant digits below 1)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.2g}"
    return f"{value:,.1f}"


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:,.0f}×"


def _catalog_order(columns: Sequence[str]) -> dict[str, int]:
    """Each column's place in the canonical word order: the catalog's, then the rest."""
    from segmentkit.features._definitions import definitions

    known = {d.name: i for i, d in enumerate(definitions())}
    return {c: known.get(c, len(known) + i) for i, c in enumerate(columns)}
