"""The ``Events`` contract: browsing events (views, carts, checkouts, purchases)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._frame import is_pandas
from segmentkit.contracts._attributes import (
    Attributes,
    blank_is_missing,
    blanks_missing,
    product_attributes,
    with_attributes,
)
from segmentkit.contracts._dates import check_date_options
from segmentkit.contracts._policies import EVENT_OPTIONS
from segmentkit.contracts._schema import (
    ColumnSpec,
    Contract,
    category_codes,
    null_mask,
)
from segmentkit.contracts._table import _Table, exclude_rows, missing_ids
from segmentkit.contracts._validation import ValidationReport

if TYPE_CHECKING:
    # polars, pyarrow, DuckDB, PySpark or Dask: validated there, returned as the same
    # contract class (its narwhals subclass, whose rows stay in that library).
    from narwhals.typing import IntoFrame

__all__ = ["EVENT_TYPES", "Events", "EventsContract"]

EventsContract = Contract(
    table="events",
    columns=(
        ColumnSpec("customer_id", "id", True, "Who browsed (a known customer id)."),
        ColumnSpec("timestamp", "datetime", True, "When; normalised to UTC."),
        ColumnSpec("event_type", "category", True, "view, add_to_cart, checkout, purchase..."),
        ColumnSpec("product_id", "id", False, "Product concerned."),
        ColumnSpec("category", "category", False, "Category of that product."),
        ColumnSpec("brand", "category", False, "Brand of that product."),
        ColumnSpec("session_id", "id", False, "Visit the event belongs to."),
        ColumnSpec("duration_s", "float", False, "Seconds spent on the page or event."),
    ),
)

#: Event types the feature layer understands; other types are kept and counted.
EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "checkout", "purchase")

_ALIASES = {
    "page_view": "view",
    "pageview": "view",
    "product_view": "view",
    "view_item": "view",
    "addtocart": "add_to_cart",
    "add-to-cart": "add_to_cart",
    "add_to_basket": "add_to_cart",
    "cart": "add_to_cart",
    "removefromcart": "remove_from_cart",
    "begin_checkout": "checkout",
    "transaction": "purchase",
    "order": "purchase",
}

_POLICY_KEYS = [
    "missing_customer",
    "event_map",
    "timezone",
    "date_format",
    "dayfirst",
    "attributes",
]


class Events(_Table):
    """Validated browsing events in canonical columns.

    ``event_type`` is lower-cased and common spellings are mapped to the canonical
    types in :data:`EVENT_TYPES` (``addtocart`` → ``add_to_cart``, ``page_view`` →
    ``view``...). Other types are kept, and the report notes how many.

    Parameters
    ----------
    data : pandas.DataFrame
        Already validated rows in canonical columns (use :meth:`from_frame` to build one).
    report : ValidationReport
        The account of the input rows.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> raw = pd.DataFrame({
    ...     "visitor": ["a", "a", None],
    ...     "ts": ["2024-03-01 10:00", "2024-03-01 10:02", "2024-03-01 11:00"],
    ...     "event": ["view", "AddToCart", "view"],
    ... })
    >>> ev = sk.Events.from_frame(raw, customer_id="visitor", timestamp="ts", event_type="event")
    >>> print(ev.report)
    events: 3 rows read, 2 kept (66.7%), 1 excluded
      - missing_customer_id: 1
    >>> list(ev.data["event_type"])
    ['view', 'add_to_cart']
    """

    contract = EventsContract
    _options = EVENT_OPTIONS

    @property
    def product_attributes(self) -> tuple[str, ...]:
        """The product attribute columns present: ``category``, ``brand``, then the
        ``attributes=`` mapped, in that order."""
        return product_attributes(self.contract, self.columns)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame | IntoFrame,
        /,
        *,
        missing_customer: Literal["exclude", "raise"] = "exclude",
        event_map: Mapping[str, str] | None = None,
        timezone: str = "UTC",
        date_format: str | None = None,
        dayfirst: bool | None = None,
        attributes: Attributes = None,
        **columns: str,
    ) -> Self:
        """Validate a frame of browsing events against the events contract.

        Parameters
        ----------
        frame : pandas.DataFrame or a polars, pyarrow, DuckDB, PySpark or Dask frame
            Raw events with the user's column names.
        missing_customer : {'exclude', 'raise'}, default='exclude'
            Events of anonymous visitors cannot be attributed: exclude them (counted)
            or raise.
        event_map : dict of str to str, optional
            Your event names to canonical ones, e.g. ``{"basket_add": "add_to_cart"}``;
            applied after lower-casing, on top of the built-in aliases.
        timezone : str, default='UTC'
            Time zone of timestamps that carry none.
        date_format : str, optional
            How text dates are written, as a ``strftime`` pattern such as
            ``'%d.%m.%Y %H:%M'``; or ``'epoch'`` / ``'epoch_ms'`` for numbers of seconds /
            milliseconds since 1970-01-01 UTC. Without it, ISO 8601 is read as such and
            numeric day/month dates use ``dayfirst`` or the order the data settles.
        dayfirst : bool, optional
            For numeric dates such as ``01.02.2024``: ``True`` reads day first, ``False``
            month first. Left out, the data must settle it (a value like ``13.02.2024``
            fits only day first; the report notes the choice), else it is refused.
        attributes : dict of str to str, or list of str, optional
            Extra product attributes of the viewed products beside ``category`` and
            ``brand``, as for :meth:`Transactions.from_frame`.
        **columns : str
            Column mapping from canonical names (``customer_id``, ``timestamp``,
            ``event_type``, ``product_id``, ``category``, ``session_id``, ``duration_s``)
            to the frame's names.

        Returns
        -------
        Events
            The validated events and the report of what was kept.
            For a frame of another library, an Events whose rows stay there (``.native``,
            ``.to_pandas()``); ``.data`` then refuses to collect them.

        Raises
        ------
        segmentkit.errors.ContractError
            On missing or unmappable columns, empty input or unparseable values.
        """
        cls._check_options(missing_customer=missing_customer)
        contract, columns = with_attributes(cls.contract, attributes, columns)
        if not is_pandas(frame):  # polars, pyarrow, DuckDB, Spark, Dask: validated there
            return cls._from_native(
                contract,
                frame,
                missing_customer=missing_customer,
                event_map=event_map,
                timezone=timezone,
                aliases=_ALIASES,
                known_types=EVENT_TYPES,
                policy_keys=_POLICY_KEYS,
                columns=columns,
                dates=check_date_options(date_format, dayfirst),
            )
        table = cls.contract.table
        notes: list[str] = []
        data = cls._canonical(
            frame, columns, timezone=timezone, extra_keys=_POLICY_KEYS,
            dates=check_date_options(date_format, dayfirst), notes=notes, contract=contract,
        )  # fmt: skip
        for name in blank_is_missing(contract):
            if name in data:
                data[name] = blanks_missing(data[name])
        rows_read = len(data)
        missing_id = missing_ids(data, missing_customer, table)

        data["event_type"] = _canonical_event_types(data["event_type"], event_map or {})
        excluded: dict[str, int] = {}
        keep = np.ones(rows_read, dtype=bool)
        exclude_rows(keep, missing_id, "missing_customer_id", excluded)
        exclude_rows(keep, data["timestamp"].isna().to_numpy(), "missing_timestamp", excluded)
        exclude_rows(keep, null_mask(data["event_type"]), "missing_event_type", excluded)
        if "duration_s" in data:
            negative = data["duration_s"].to_numpy() < 0
            exclude_rows(keep, negative, "negative_duration", excluded)
        kept = data[keep].reset_index(drop=True)
        coded = ("customer_id", "event_type", "product_id", "session_id")
        for name in (*coded, *product_attributes(contract, list(kept.columns))):
            if name in kept:
                kept[name] = kept[name].cat.remove_unused_categories()
        other = kept["event_type"].value_counts()
        other = other[(other > 0) & ~other.index.isin(EVENT_TYPES)]
        if len(other):
            listed = ", ".join(f"{name!r}: {n}" for name, n in other.items())
            notes.append(f"event types kept but not used by the features: {listed}")
        report = ValidationReport(table, rows_read, len(kept), excluded, notes)
        return cls(kept, report)


def _canonical_event_types(values: pd.Series, event_map: Mapping[str, str]) -> pd.Series:
    # Renaming categories touches each distinct name once, not each of millions of rows.
    lookup = {**_ALIASES, **{k.strip().lower(): v for k, v in event_map.items()}}
    names = [str(c).strip().lower() for c in values.cat.categories]
    renamed = [lookup.get(name, name) for name in names]
    codes = category_codes(values)
    uniques = pd.Index(renamed).unique()
    remap = uniques.get_indexer(renamed)
    new_codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    return pd.Series(pd.Categorical.from_codes(new_codes, categories=uniques), index=values.index)
