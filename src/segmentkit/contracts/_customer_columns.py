"""The customers contract's columns, and which other profile columns are kept.

Shared by the pandas and the narwhals paths of :class:`~segmentkit.Customers`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from segmentkit.contracts._schema import ColumnSpec, Contract, raise_if, suggest
from segmentkit.errors import ContractFailure, InvalidParameterError, Reason

__all__ = ["PII_COLUMNS", "CustomersContract", "extra_columns_of"]

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


def extra_columns_of(
    frame: pd.DataFrame, mapping: dict[str, str], extra: Sequence[str] | str
) -> list[str]:
    """The extra profile columns to keep: ``extra`` checked, or every column that does
    not look personal for ``'all'``."""
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
