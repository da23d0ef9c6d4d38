"""What both feature paths share: the result object, ``as_of`` and the parameter checks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit.errors import InvalidParameterError
from segmentkit.features._catalog import column_definition
from segmentkit.features._definitions import FeatureDef

__all__ = [
    "NO_LINES_KEPT",
    "CustomerFeatures",
    "as_utc_timestamp",
    "checked_params",
    "checked_windows",
    "nothing_by_as_of",
]


class CustomerFeatures:
    """Features of every customer at one observation date, with their definitions.

    Returned by :func:`extract_features`; engines take it as input. Wrap a frame of
    your own features with :meth:`from_frame`.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per customer, indexed by ``customer_id``.
    as_of : pandas.Timestamp
        End of the observation window (UTC).
    definitions : dict of str to FeatureDef, optional
        Definitions of the columns; columns without one are described as user-supplied.
    excluded : dict of str to int, optional
        Input rows that the features did not use, by reason (e.g. rows after ``as_of``).

    Attributes
    ----------
    frame : pandas.DataFrame
        The features.
    as_of : pandas.Timestamp
        Observation end.
    catalog : pandas.DataFrame
        Definition of each column: ``name, description, unit, source, kind``.
    excluded : dict of str to int
        Rows not used, by reason.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> own = pd.DataFrame({"customer_id": ["a", "b"], "recency_days": [3.0, 40.0],
    ...                     "frequency": [5, 1], "monetary": [250.0, 20.0]})
    >>> features = sk.CustomerFeatures.from_frame(own, as_of="2024-06-30")
    >>> len(features), features.as_of
    (2, Timestamp('2024-06-30 00:00:00+0000', tz='UTC'))
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        as_of: pd.Timestamp,
        definitions: Mapping[str, FeatureDef] | None = None,
        excluded: Mapping[str, int] | None = None,
    ) -> None:
        self.frame = frame
        self.as_of = as_of
        definitions = dict(definitions or {})
        self.catalog = pd.DataFrame(
            [
                definitions[c].catalog_row()
                if c in definitions
                else {
                    "name": c,
                    "description": "User-supplied column.",
                    "unit": "",
                    "source": "user",
                    "kind": _kind_of(frame[c]),
                }
                for c in frame.columns
            ],
            columns=["name", "description", "unit", "source", "kind"],
        )
        self.excluded = dict(excluded or {})

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, *, as_of: Any = None, customer_id: str = "customer_id"
    ) -> Self:
        """Wrap a frame of features computed elsewhere.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per customer; the id is the column ``customer_id`` or the index.
        as_of : str or datetime-like, optional
            Observation end the features refer to; defaults to now.
        customer_id : str, default='customer_id'
            Name of the id column.

        Returns
        -------
        CustomerFeatures
            The wrapped features.

        Raises
        ------
        ValueError
            If ids are missing or repeated.
        """
        if customer_id in frame.columns:
            frame = frame.set_index(customer_id)
        frame = frame.copy()
        frame.index = pd.Index(frame.index.astype(str), dtype=str, name="customer_id")
        if frame.index.has_duplicates:
            repeated = frame.index[frame.index.duplicated()].unique()[:5].tolist()
            msg = (
                f"Features must be one row per customer; ids repeat, e.g. {repeated}. "
                "Aggregate them first."
            )
            raise ValueError(msg)
        stamp = as_utc_timestamp(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC")
        known = {c: column_definition(c) for c in frame.columns}
        return cls(frame, stamp, {c: d for c, d in known.items() if d is not None})

    @property
    def customer_ids(self) -> pd.Index:
        """Customer ids, in row order."""
        return self.frame.index

    @property
    def columns(self) -> list[str]:
        """Feature names."""
        return list(self.frame.columns)

    def to_frame(self) -> pd.DataFrame:
        """The features as a plain frame with ``customer_id`` as the first column.

        Returns
        -------
        pandas.DataFrame
            A copy; changing it does not change the features.
        """
        return self.frame.reset_index()

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"<CustomerFeatures: {len(self)} customers × {self.frame.shape[1]} features, "
            f"as_of={self.as_of.isoformat()}>"
        )

    def _repr_html_(self) -> str:
        head = f"<p>{self!r}</p>".replace("<C", "&lt;C").replace(">,", "&gt;,")
        return head + self.frame.head(10).to_html()


def _kind_of(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return "datetime"
    return "categorical"


#: Numeric day/month text (01.04.2024, 4/1/24): one value cannot say which is which.
_DAY_MONTH_TEXT = re.compile(r"\s*\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?:\D.*)?")


def as_utc_timestamp(value: Any) -> pd.Timestamp:
    if isinstance(value, bool):
        _refuse_as_of(value, "is not a date or time")
    if isinstance(value, int | np.integer) and 10_000_101 <= value <= 99_991_231:
        # 19970115 is a date written as a number (as in CDNOW), not nanoseconds.
        value = str(value)
    elif isinstance(value, int | float | np.integer | np.floating):
        # pandas would read a bare number as nanoseconds since 1970: never what is meant.
        _refuse_as_of(
            value,
            "is a number, which could be seconds, milliseconds or nanoseconds since 1970; "
            "for epoch seconds pass pd.Timestamp(value, unit='s')",
        )
    if isinstance(value, str) and _DAY_MONTH_TEXT.fullmatch(value):
        # Never guessed: '01.04.2024' is 1 April in Helsinki and 4 January in New York.
        _refuse_as_of(value, "is written day/month or month/day, which as_of never guesses")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as error:
        _refuse_as_of(value, "is not a date or time")
        raise AssertionError from error  # unreachable: _refuse_as_of raises
    if stamp is pd.NaT:
        _refuse_as_of(value, "is not a date or time")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    try:
        # Features count in nanoseconds: 9999-12-31 (an 'open end' placeholder) parses,
        # but lies beyond what they can hold.
        return stamp.as_unit("ns")
    except (OverflowError, ValueError):
        _refuse_as_of(value, "is outside the range segmentkit can hold (1677-09-21 to 2262-04-11)")
        raise


def _refuse_as_of(value: Any, problem: str) -> None:
    from segmentkit.errors import ContractError, ContractFailure, Reason

    failure = ContractFailure(
        column="as_of",
        check="as_of",
        reason=Reason.OUT_OF_RANGE if "range" in problem else Reason.WRONG_DTYPE,
        message=(
            f"as_of={value!r} {problem}. Use an ISO 8601 date or time, e.g. '2024-06-30' "
            "(command line: --as-of 2024-06-30)."
        ),
    )
    raise ContractError([failure], table="as_of")


def nothing_by_as_of(as_of: pd.Timestamp, earliest: pd.Timestamp) -> str:
    """The message of both paths when no line is on or before ``as_of``."""
    return (
        f"No transaction is on or before as_of={as_of.isoformat()}; the earliest is "
        f"{earliest.isoformat()}. Choose a later as_of."
    )


#: Raised by both paths when validation excluded every line.
NO_LINES_KEPT = (
    "Validation kept no transaction line (see the transactions' report): there is "
    "nothing to compute features from."
)


def checked_windows(windows: Sequence[int], name: str) -> tuple[int, ...]:
    """Look-back windows as ints, refused unless whole positive day counts."""
    try:
        given = tuple(windows)
        days = tuple(int(w) for w in given)
    except (TypeError, ValueError, OverflowError):
        given, days, exact = (), (), False
    else:
        exact = all(not isinstance(w, bool) and w == d for w, d in zip(given, days, strict=True))
    if not exact or any(w <= 0 for w in days):
        msg = (
            f"The {name!r} parameter must hold positive whole day counts, e.g. (30, 90). "
            f"Got {windows!r} instead."
        )
        raise ValueError(msg)
    return days


def checked_params(
    windows: Sequence[int], abandon_hours: float, session_gap_minutes: float, output: str
) -> tuple[int, ...]:
    """The look-back windows as ints, after refusing bad parameters of either path."""
    if output not in {"native", "pandas"}:
        msg = f"The 'output' parameter must be one of ['native', 'pandas']. Got {output!r}."
        raise InvalidParameterError(msg)
    windows = checked_windows(windows, "windows")
    if abandon_hours <= 0 or session_gap_minutes <= 0:
        msg = "The 'abandon_hours' and 'session_gap_minutes' parameters must be positive."
        raise ValueError(msg)
    return windows
