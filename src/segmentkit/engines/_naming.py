"""Readable names and descriptions for clusters, from how they differ from the whole base.

A cluster's name lists what sets it apart most, e.g. ``"High spend · Frequent · Recent"``.
Differences are measured on the same scale for every feature: the gap between the
cluster's median and the base median, in units of the base's interquartile range (or
standard deviation when the IQR is zero), so "a lot more orders" and "a lot more spend"
compare fairly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segmentkit.features._catalog import column_definition

__all__ = ["describe_clusters"]

_MIN_EFFECT = 0.25
_MAX_WORDS = 3


def _word(feature: str, higher: bool) -> str:
    # The definition's words: (higher than the base, lower than the base).
    definition = column_definition(feature)
    if definition is not None and definition.words is not None:
        return definition.words[0 if higher else 1]
    return f"{'High' if higher else 'Low'} {feature.replace('_', ' ')}"


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
        Ids to describe, in order.

    Returns
    -------
    list of tuple of (str, str)
        Name and one-sentence description per id; names repeat-free (``" (2)"`` suffix).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"monetary": [10, 12, 11, 500, 600, 550.0],
    ...                       "frequency": [1, 1, 2, 9, 12, 10]})
    >>> [name for name, _ in describe_clusters(frame, np.array([0, 0, 0, 1, 1, 1]), [0, 1])]
    ['Infrequent · Low spend', 'High spend · Frequent']
    """
    numeric = frame.select_dtypes("number").astype(float)
    base_median = numeric.median()
    q1, q3 = numeric.quantile(0.25), numeric.quantile(0.75)
    spread = (q3 - q1).where(q3 > q1, numeric.std()).replace(0, np.nan)
    described = []
    used: dict[frozenset[str], int] = {}
    used_sets: set[frozenset[str]] = set()
    for cluster in cluster_ids:
        members = numeric[labels == cluster]
        if members.empty:
            described.append((f"Cluster {cluster}", "No customers."))
            continue
        median = members.median()
        effect = ((median - base_median) / spread).fillna(0.0)
        ranked = effect.abs().sort_values(ascending=False, kind="stable")
        strong = [f for f in ranked.index if ranked[f] >= _MIN_EFFECT]
        words: list[str] = []
        for feature in strong:
            word = _word(feature, effect[feature] > 0)
            if word not in words:
                words.append(word)
            # Past three words, go on only while the same words in another order
            # already name a cluster: the next difference then tells them apart.
            if len(words) >= _MAX_WORDS and frozenset(words) not in used_sets:
                break
        name = " · ".join(words) if words else "Typical customers"
        # Names with the same words, in any order, are numbered: "(2)", "(3)"...
        key = frozenset(words) or frozenset({name})
        used[key] = used.get(key, 0) + 1
        used_sets.add(key)
        if used[key] > 1:
            name = f"{name} ({used[key]})"
        shown = strong[:_MAX_WORDS] or list(ranked.index[:_MAX_WORDS])
        parts = [f"median {f} {median[f]:,.4g} vs {base_median[f]:,.4g} overall" for f in shown]
        described.append((name, f"{len(members)} customers; " + "; ".join(parts) + "."))
    return described
