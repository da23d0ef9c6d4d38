"""Choosing the features to compute: ``extract_features(..., features=[...])``.

A store that segments on recency, spend and a brand rule need not pay for the price
medians or the browsing windows. Entries are feature names or shell-style patterns
(``"orders_*d"``, ``"top_*"``); each must select something, so that a typo is an error
rather than a quietly missing column.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from segmentkit.features._definitions import (
    DERIVED,
    ROW_COLUMNS,
    FeatureDef,
    Kernel,
    aggregations,
    definition_of,
)

__all__ = ["FeatureSelection", "is_catalog_feature"]


class FeatureSelection:
    """The feature names or patterns a caller asked for.

    Parameters
    ----------
    entries : sequence of str
        Names (``"recency_days"``) or patterns (``"spend_*d"``).
    catalog : list of FeatureDef
        Every feature these windows can give, to catch names that exist nowhere.
    open_ended : bool
        Whether columns outside the catalog can exist (extra profile columns).
    """

    def __init__(
        self, entries: Sequence[str], catalog: list[FeatureDef], *, open_ended: bool
    ) -> None:
        if isinstance(entries, str) or not all(isinstance(e, str) and e for e in entries):
            msg = (
                f"features= takes a list of feature names or patterns such as "
                f"['recency_days', 'orders_*d']; got {entries!r}."
            )
            raise ValueError(msg)
        if not entries:
            msg = "features= is empty: list at least one feature, or leave it out for all."
            raise ValueError(msg)
        self.entries = tuple(dict.fromkeys(entries))
        names = [d.name for d in catalog]
        for entry in self.entries:
            if not open_ended and not any(fnmatchcase(name, entry) for name in names):
                raise ValueError(_unknown(entry, names))

    def __call__(self, name: str) -> bool:
        return any(fnmatchcase(name, entry) for entry in self.entries)

    def check(
        self,
        produced: Iterable[str],
        catalog: list[FeatureDef],
        inputs: dict[str, set[str] | None],
    ) -> None:
        """Raise for an entry that selected none of the ``produced`` columns.

        ``inputs`` maps each source (``'transactions'``, ``'events'``, ``'customers'``)
        to the columns it was given with, ``None`` for a table not passed.
        """
        produced = list(produced)
        for entry in self.entries:
            if any(fnmatchcase(name, entry) for name in produced):
                continue
            wanted = [d for d in catalog if fnmatchcase(d.name, entry)]
            if not wanted:
                raise ValueError(_unknown(entry, [d.name for d in catalog]))
            raise ValueError(_cannot_give(entry, wanted, inputs))


def _cannot_give(entry: str, wanted: list[FeatureDef], inputs: dict[str, set[str] | None]) -> str:
    names = [d.name for d in wanted][:5]
    source = wanted[0].source
    given = inputs.get(source)
    if given is None:
        table = {"events": "Events", "customers": "Customers"}.get(source, "Transactions")
        return (
            f"features={entry!r} selects {names}, which come from {source}: pass "
            f"{source}=sk.{table}.from_frame(...) to extract_features, or drop the entry."
        )
    missing = sorted({c for d in wanted for c in _inputs(d)} - given)
    return (
        f"features={entry!r} selects {names}, which read the columns {missing} that the "
        f"{source} do not have: map them when validating (e.g. "
        f"{'Transactions' if source == 'transactions' else source.title()}.from_frame(..., "
        f"{missing[0] if missing else 'brand'}=<your column>)), or drop the entry."
    )


def _unknown(entry: str, names: list[str]) -> str:
    close = difflib.get_close_matches(entry, names, n=3)
    hint = f" Did you mean {close}?" if close else ""
    return (
        f"features={entry!r} names no feature.{hint} The features are listed by "
        "sk.feature_catalog() (name column); patterns such as 'orders_*d' are allowed."
    )


def _inputs(definition: FeatureDef) -> set[str]:
    """The input columns a definition reads (a derived column: its sources)."""
    if isinstance(definition.compute, Kernel):
        return {definition.name}
    found: set[str] = set()
    for agg in aggregations(definition.compute):
        for column in (agg.column, agg.weight, ROW_COLUMNS.get(agg.rows)):
            if column is None or column in ("timestamp", "day"):
                continue
            sources = DERIVED.get(column)
            found |= set(sources[:1]) if sources else {column}
    return found


def is_catalog_feature(name: str) -> bool:
    """Whether ``name`` is a feature of the catalog (any window), not an extra column."""
    return definition_of(name) is not None
