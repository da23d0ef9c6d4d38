"""The ``Customers`` contract: one profile row per customer, with consent flags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._frame import is_pandas
from segmentkit.contracts._customer_columns import (
    PII_COLUMNS,
    CustomersContract,
    extra_columns_of,
)
from segmentkit.contracts._dates import check_date_options
from segmentkit.contracts._policies import CUSTOMER_OPTIONS
from segmentkit.contracts._schema import (
    examples,
    raise_if,
)
from segmentkit.contracts._table import _Table, exclude_rows, missing_ids
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import ContractFailure, Reason

if TYPE_CHECKING:
    # polars, pyarrow, DuckDB, PySpark or Dask: validated there, returned as the same
    # contract class (its narwhals subclass, whose rows stay in that library).
    from narwhals.typing import IntoFrame

__all__ = ["PII_COLUMNS", "Customers", "CustomersContract"]

_POLICY_KEYS = [
    "missing_customer",
    "duplicates",
    "extra_columns",
    "timezone",
    "date_format",
    "dayfirst",
]


class Customers(_Table):
    """Validated customer profiles: one row per customer.

    Personal data (:data:`PII_COLUMNS`) is kept for the exporters but never joined
    into features and never shown by ``repr``.

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
    ...     "id": ["a", "b"], "mail": ["a@example.com", "b@example.com"],
    ...     "opt_in": ["yes", "no"], "tier": ["gold", "silver"],
    ... })
    >>> customers = sk.Customers.from_frame(
    ...     raw, customer_id="id", email="mail", consent_email="opt_in", extra_columns=["tier"]
    ... )
    >>> customers
    <Customers: 2 rows, 2 customers, columns=['customer_id', 'email', 'consent_email', 'tier']>
    >>> customers.data["consent_email"].tolist()
    [True, False]
    """

    contract = CustomersContract
    _options = CUSTOMER_OPTIONS

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame | IntoFrame,
        /,
        *,
        missing_customer: Literal["exclude", "raise"] = "exclude",
        duplicates: Literal["raise", "keep_first", "keep_last"] = "raise",
        extra_columns: Sequence[str] | Literal["all"] = (),
        timezone: str = "UTC",
        date_format: str | None = None,
        dayfirst: bool | None = None,
        **columns: str,
    ) -> Self:
        """Validate a frame of customer profiles against the customers contract.

        Parameters
        ----------
        frame : pandas.DataFrame or a polars, pyarrow, DuckDB, PySpark or Dask frame
            Raw profiles with the user's column names.
        missing_customer : {'exclude', 'raise'}, default='exclude'
            Profiles without an id cannot be joined: exclude them (counted) or raise.
        duplicates : {'raise', 'keep_first', 'keep_last'}, default='raise'
            A customer id on several rows. CRM exports that append updates want
            ``'keep_last'``; the other rows are then counted as excluded.
        extra_columns : list of str or 'all', default=()
            Other columns to keep as profile attributes (income, tier...), joined into
            the features as they are. ``'all'`` keeps every unmapped column except
            those whose names suggest personal data (e-mail, phone, name, address,
            postal code, birth date, card...); list such a column by name to keep it.
        timezone : str, default='UTC'
            Time zone of ``signup_date`` values that carry none.
        date_format : str, optional
            How text dates (``signup_date``, ``birth_date``) are written, as a
            ``strftime`` pattern such as ``'%d.%m.%Y %H:%M'``; or ``'epoch'`` /
            ``'epoch_ms'`` for numbers of seconds / milliseconds since 1970-01-01 UTC.
            Without it, ISO 8601 is read as such and numeric day/month dates use
            ``dayfirst`` or the order the data settles.
        dayfirst : bool, optional
            For numeric dates such as ``01.02.2024``: ``True`` reads day first, ``False``
            month first. Left out, the data must settle it (a value like ``13.02.2024``
            fits only day first; the report notes the choice), else it is refused.
        **columns : str
            Column mapping from canonical names (``customer_id``, ``email``, ``phone``,
            ``first_name``, ``last_name``, ``city``, ``region``, ``postal_code``,
            ``country``, ``birth_date``, ``age``, ``age_band``, ``gender``,
            ``signup_date``, ``consent_email``, ``consent_sms``, ``consent_ads``) to the
            frame's names.

        Returns
        -------
        Customers
            The validated profiles and the report of what was kept.
            For a frame of another library, a Customers whose rows stay there (``.native``,
            ``.to_pandas()``); ``.data`` then refuses to collect them.

        Raises
        ------
        segmentkit.errors.ContractError
            On missing or unmappable columns, empty input, unparseable values or
            duplicate ids with ``duplicates='raise'``.
        """
        cls._check_options(missing_customer=missing_customer, duplicates=duplicates)
        if not is_pandas(frame):  # polars, DuckDB, Spark...: validated and kept there
            return cls._from_native(
                cls.contract, frame, missing_customer=missing_customer, duplicates=duplicates,
                extra_columns=extra_columns, timezone=timezone, policy_keys=_POLICY_KEYS,
                columns=columns, dates=check_date_options(date_format, dayfirst),
            )  # fmt: skip
        table = cls.contract.table
        notes: list[str] = []
        data = cls._canonical(
            frame, columns, timezone=timezone, extra_keys=_POLICY_KEYS,
            dates=check_date_options(date_format, dayfirst), notes=notes,
        )  # fmt: skip
        extras = extra_columns_of(frame, columns, extra_columns)
        for name in extras:
            data[name] = frame[name].to_numpy()
        rows_read = len(data)
        missing_id = missing_ids(data, missing_customer, table)

        if "age" in data:
            implausible = ((data["age"] < 0) | (data["age"] > 120)).to_numpy()
            if implausible.any():
                data.loc[implausible, "age"] = np.nan
                notes.append(f"{int(implausible.sum())} ages outside 0-120 set to missing")

        excluded: dict[str, int] = {}
        keep = np.ones(rows_read, dtype=bool)
        exclude_rows(keep, missing_id, "missing_customer_id", excluded)
        ids = data["customer_id"].astype(object).where(keep, None)
        if duplicates == "raise":
            repeated = ids.duplicated(keep=False).to_numpy() & keep
            if repeated.any():
                raise_if([_duplicate_ids(data, repeated)], table)
        else:
            which = "first" if duplicates == "keep_first" else "last"
            repeated = ids.duplicated(keep=which).to_numpy() & keep
            exclude_rows(keep, repeated, "duplicate_customer_id", excluded)
        kept = data[keep].reset_index(drop=True)
        kept["customer_id"] = kept["customer_id"].cat.remove_unused_categories()
        report = ValidationReport(table, rows_read, len(kept), excluded, notes)
        return cls(kept, report)


def _duplicate_ids(data: pd.DataFrame, repeated: np.ndarray) -> ContractFailure:
    n_ids = data["customer_id"][repeated].nunique()
    return ContractFailure(
        column="customer_id",
        check="unique",
        reason=Reason.DUPLICATES,
        message=(
            f"{n_ids} customer ids appear on more than one row ({int(repeated.sum())} rows). "
            "Profiles must be one row per customer: deduplicate them, or pass "
            "duplicates='keep_last' (or 'keep_first')."
        ),
        failure_cases=examples(repeated, data["customer_id"].astype(object)),
        n_failed=int(repeated.sum()),
    )
