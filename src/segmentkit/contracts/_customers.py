"""The ``Customers`` contract: one profile row per customer, with consent flags."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit.contracts._dates import check_date_options
from segmentkit.contracts._schema import (
    ColumnSpec,
    Contract,
    check_option,
    examples,
    raise_if,
    suggest,
)
from segmentkit.contracts._table import _Table, exclude_rows, missing_ids
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import ContractFailure, InvalidParameterError, Reason

__all__ = ["PII_COLUMNS", "Customers", "CustomersContract"]

CustomersContract = Contract(
    table="customers",
    columns=(
        ColumnSpec("customer_id", "id", True, "The id used in transactions and events."),
        ColumnSpec("email", "string", False, "E-mail address (personal data)."),
        ColumnSpec("phone", "string", False, "Phone number (personal data)."),
        ColumnSpec("first_name", "string", False, "First name (personal data)."),
        ColumnSpec("last_name", "string", False, "Last name (personal data)."),
        ColumnSpec("city", "category", False, "City."),
        ColumnSpec("region", "category", False, "State, province or region."),
        ColumnSpec("postal_code", "string", False, "Postal code (personal data)."),
        ColumnSpec("country", "category", False, "Country: ISO 3166-1 code or name."),
        ColumnSpec("birth_date", "date", False, "Date of birth (personal data)."),
        ColumnSpec("age", "float", False, "Age in years, when no birth date is known."),
        ColumnSpec("age_band", "category", False, "Age band such as '25-34'."),
        ColumnSpec("gender", "category", False, "Gender as recorded."),
        ColumnSpec("signup_date", "datetime", False, "When the customer registered."),
        ColumnSpec("consent_email", "bool", False, "May be e-mailed for marketing."),
        ColumnSpec("consent_sms", "bool", False, "May be texted for marketing."),
        ColumnSpec("consent_ads", "bool", False, "May be targeted in ad platforms."),
    ),
)

#: Columns holding personal data: never joined into features, never printed.
PII_COLUMNS = ("email", "phone", "first_name", "last_name", "postal_code", "birth_date")

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

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
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
        frame : pandas.DataFrame
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

        Raises
        ------
        segmentkit.errors.ContractError
            On missing or unmappable columns, empty input, unparseable values or
            duplicate ids with ``duplicates='raise'``.
        """
        if not isinstance(frame, pd.DataFrame):  # polars, DuckDB, Spark...: stays there
            from segmentkit.contracts._native_customers import customers_from_native

            return customers_from_native(  # type: ignore[return-value]
                cls.contract, frame, missing_customer=missing_customer, duplicates=duplicates,
                extra_columns=extra_columns, timezone=timezone, policy_keys=_POLICY_KEYS,
                columns=columns, dates=check_date_options(date_format, dayfirst),
            )  # fmt: skip
        table = cls.contract.table
        check_option(missing_customer, "missing_customer", ["exclude", "raise"], table)
        check_option(duplicates, "duplicates", ["raise", "keep_first", "keep_last"], table)
        notes: list[str] = []
        data = cls._canonical(
            frame, columns, timezone=timezone, extra_keys=_POLICY_KEYS,
            dates=check_date_options(date_format, dayfirst), notes=notes,
        )  # fmt: skip
        extras = _extra_columns(frame, columns, extra_columns)
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


def _extra_columns(
    frame: pd.DataFrame, mapping: dict[str, str], extra: Sequence[str] | str
) -> list[str]:
    mapped = set(mapping.values()) | set(CustomersContract.names)
    if extra == "all":
        # Personal data must never reach the features by accident: 'all' leaves out
        # columns whose names look like it. Name them explicitly to keep them.
        return [str(c) for c in frame.columns if c not in mapped and not _looks_personal(str(c))]
    missing = [name for name in extra if name not in frame.columns]
    if missing:
        available = [str(c) for c in frame.columns]
        failures = [
            ContractFailure(
                column=name,
                check="extra_column",
                reason=Reason.MISSING_COLUMN,
                message=(
                    f"Extra column {name!r} is not in the customers data."
                    f"{suggest(name, available)} Available columns: {available}."
                ),
            )
            for name in missing
        ]
        raise_if(failures, "customers")
    clashing = [name for name in extra if name in CustomersContract.names]
    if clashing:
        msg = f"Extra columns {clashing} are canonical names: map them as keywords instead."
        raise InvalidParameterError(msg)
    return list(extra)


_PERSONAL_HINTS = re.compile(
    r"mail|phone|mobile|tel|name|address|street|zip|postal|postcode|birth|dob|ssn|passport"
    r"|iban|card|ip_?addr",
    re.IGNORECASE,
)


def _looks_personal(column: str) -> bool:
    return bool(_PERSONAL_HINTS.search(column))


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
