"""Membership changes of a segment between two segmentations, to push only the difference.

A destination that already holds a segment needs only the customers who joined it and
those who left it. :func:`membership_changes` gives both sets of customer ids;
:func:`restrict` cuts a segmentation down to some customers so the usual builders make
the add and remove exports from it::

    to_add, to_remove = membership_changes(last_month, this_month, "Champions")
    adds = build_meta(restrict(this_month, to_add), "Champions", customers,
                      audience_id=aud, operation="add")
    removes = build_meta(restrict(last_month, to_remove), "Champions", customers,
                         audience_id=aud, operation="remove")
    push(adds, journal="champions.jsonl")
    push(removes, journal="champions.jsonl")

Restricting the *segmentation* (not the customers table) keeps the export report right:
every id passed is a member of the segment, so only the real exclusions (suppressed, no
consent, no identifier) are counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, InstanceOf, ListLike, validated
from segmentkit.errors import UnknownSegmentError
from segmentkit.results._segmentation import Segmentation

__all__ = ["membership_changes", "restrict"]

_IDS = ListLike("a sequence of customer ids")
_SIDE = [InstanceOf((Segmentation,), "a Segmentation"), _IDS, NONE]


def _members(side: Segmentation | pd.Index | Iterable[str] | None, segment: str | int | None):
    """Member ids of one side as strings, or ``None`` when the segment is not in it."""
    if side is None:
        return pd.Index([], dtype=object, name="customer_id")
    if isinstance(side, Segmentation):
        if segment is None:
            msg = "Pass segment= (a name or id) to compare segmentations."
            raise ValueError(msg)
        try:
            ids = side.members(segment)
        except UnknownSegmentError:
            return None
    else:
        ids = pd.Index(list(side))
    return pd.Index(ids.astype(str), name="customer_id").unique()


@validated(
    before=_SIDE,
    after=_SIDE,
    segment=[InstanceOf((str, int, np.integer), "a segment name (str) or id (int)"), NONE],
)
def membership_changes(
    before: Segmentation | pd.Index | Iterable[str] | None,
    after: Segmentation | pd.Index | Iterable[str] | None,
    segment: str | int | None = None,
) -> tuple[pd.Index, pd.Index]:
    """Customers who joined and who left a segment between two states.

    Parameters
    ----------
    before, after : Segmentation, pandas.Index of customer ids, or None
        The earlier and later state: a segmentation (the members of ``segment`` are
        taken) or the member ids themselves. ``None`` means an empty segment (a first
        push adds everyone). A segmentation without ``segment`` counts as empty on that
        side (a segment that appeared or disappeared), unless neither side has it.
    segment : str or int, optional
        Segment name or id; needed when a side is a segmentation.

    Returns
    -------
    to_add : pandas.Index
        Ids in ``after`` but not in ``before``, in ``after``'s order.
    to_remove : pandas.Index
        Ids in ``before`` but not in ``after``, in ``before``'s order.

    Raises
    ------
    segmentkit.errors.UnknownSegmentError
        If neither segmentation has ``segment``.

    Notes
    -----
    Ids are compared as strings, as the exporters send them. Applying the changes to
    ``before`` (drop ``to_remove``, add ``to_add``) gives exactly the set ``after``.
    """
    old = _members(before, segment)
    new = _members(after, segment)
    if old is None and new is None:
        msg = f"No segment {segment!r} in either segmentation."
        raise UnknownSegmentError(msg)
    empty = pd.Index([], dtype=object, name="customer_id")
    old = empty if old is None else old
    new = empty if new is None else new
    to_add = new[~new.isin(old)]
    to_remove = old[~old.isin(new)]
    return to_add, to_remove


@validated(segmentation=[InstanceOf((Segmentation,), "a Segmentation")], customer_ids=[_IDS])
def restrict(segmentation: Segmentation, customer_ids: Iterable[str]) -> Segmentation:
    """The segmentation cut down to some customers (e.g. those of a membership change).

    Parameters
    ----------
    segmentation : Segmentation
        Full segmentation.
    customer_ids : iterable of str
        Customers to keep; ids are compared as strings.

    Returns
    -------
    Segmentation
        Rebuilt with :meth:`Segmentation.from_assignments`: same segment ids and names
        and engine, only the kept customers (the catalog covers only segments present).
    """
    keep = pd.Index([str(c) for c in customer_ids])
    table = segmentation.assignments
    kept = table[table["customer_id"].astype(str).isin(keep)]
    return Segmentation.from_assignments(kept.reset_index(drop=True), engine=segmentation.engine)
