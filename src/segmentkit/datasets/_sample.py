"""Loaders for the real sample data bundled with segmentkit.

The files in ``segmentkit/datasets/data`` are a slice of the 84.51° Complete
Journey grocery receipts (CC0); ``data/README.md`` says how they were built and
what their quirks are. Nothing here touches the network.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TypedDict

import pandas as pd

__all__ = ["load_sample", "load_sample_customers"]

_TRANSACTIONS_FILE = "transactions.csv.gz"
_CUSTOMERS_FILE = "customers.csv.gz"

_TEXT_COLUMNS = [
    "household_id",
    "basket_id",
    "product_id",
    "department",
    "product_category",
    "store_id",
]


class _TransactionsMapping(TypedDict):
    # The keys are named so that `Transactions.from_frame(raw, **mapping)` type-checks:
    # a plain dict[str, str] could also hold `returns=` or another policy keyword.
    customer_id: str
    timestamp: str
    amount: str
    order_id: str
    product_id: str
    category: str
    quantity: str
    discount: str


class _CustomersMapping(TypedDict):
    customer_id: str
    age_band: str


# Canonical segmentkit name -> column of the bundled transactions file.
_TRANSACTIONS_MAPPING: _TransactionsMapping = {
    "customer_id": "household_id",
    "timestamp": "transaction_timestamp",
    "amount": "sales_value",
    "order_id": "basket_id",
    "product_id": "product_id",
    "category": "department",
    "quantity": "quantity",
    "discount": "discount",
}

# Canonical segmentkit name -> column of the bundled customers file.
_CUSTOMERS_MAPPING: _CustomersMapping = {
    "customer_id": "household_id",
    "age_band": "age",
}


def _read_csv(name: str, **kwargs: object) -> pd.DataFrame:
    resource = files("segmentkit.datasets") / "data" / name
    with resource.open("rb") as handle:
        return pd.read_csv(handle, compression="gzip", **kwargs)


def load_sample() -> tuple[pd.DataFrame, _TransactionsMapping]:
    """Load the bundled grocery receipts and their mapping to canonical columns.

    The sample holds every line of 800 households in the 75,000-line random
    sample of the 84.51° Complete Journey study (one row = one product on one
    receipt, calendar year 2017, USD). Because the study's lines were sampled,
    per-household frequency and monetary value are under-counted; use the data to
    try the library, not to judge segment sizes. See ``data/README.md``.

    Returns
    -------
    raw : pandas.DataFrame
        One row per receipt line, with the file's original column names:
        ``household_id``, ``basket_id``, ``product_id``, ``department``,
        ``product_category``, ``store_id`` (strings; ``department`` and
        ``product_category`` are missing for products not in the catalogue),
        ``quantity`` (int64; zero on some lines, gallons for fuel), ``sales_value``
        and ``discount`` (float64, USD, discount >= 0) and
        ``transaction_timestamp`` (naive ``datetime64[ns]``, local store time).
        Rows are sorted by time, then basket.
    mapping : dict of str to str
        Canonical segmentkit column name -> column of ``raw``, ready to pass as
        keyword arguments: ``Transactions.from_frame(raw, **mapping)``.

    See Also
    --------
    load_sample_customers : Demographics of the same households.

    Examples
    --------
    >>> from segmentkit.datasets import load_sample
    >>> raw, mapping = load_sample()
    >>> raw.shape
    (29902, 10)
    >>> print(*sorted(mapping))
    amount category customer_id discount order_id product_id quantity timestamp
    >>> mapping["customer_id"], mapping["amount"]
    ('household_id', 'sales_value')
    >>> raw["household_id"].nunique()
    800
    >>> str(raw["transaction_timestamp"].dtype)
    'datetime64[ns]'
    """
    raw = _read_csv(
        _TRANSACTIONS_FILE,
        dtype={**dict.fromkeys(_TEXT_COLUMNS, str), "quantity": "int64"},
        keep_default_na=False,
        na_values={"department": [""], "product_category": [""]},
    )
    raw["sales_value"] = raw["sales_value"].astype("float64")
    raw["discount"] = raw["discount"].astype("float64")
    raw["transaction_timestamp"] = pd.to_datetime(
        raw["transaction_timestamp"], format="%Y-%m-%d %H:%M:%S"
    ).astype("datetime64[ns]")
    return raw, _TRANSACTIONS_MAPPING.copy()


def load_sample_customers() -> tuple[pd.DataFrame, _CustomersMapping]:
    """Load the demographics of the sample households that have them.

    400 of the 800 households in :func:`load_sample` have demographics. Every
    field is a binned category stored as text (``age`` like ``"45-54"``,
    ``income`` like ``"50-74K"``, ``household_size`` ``"1"`` .. ``"5+"``);
    ``home_ownership`` and ``marital_status`` have missing values.

    Returns
    -------
    raw : pandas.DataFrame
        One row per household with the original columns ``household_id``,
        ``age``, ``income``, ``home_ownership``, ``marital_status``,
        ``household_size``, ``household_comp`` and ``kids_count``, all strings.
    mapping : dict of str to str
        Canonical segmentkit column name -> column of ``raw``:
        ``{"customer_id": "household_id", "age_band": "age"}``. The other columns
        are extra profile columns and keep their names.

    See Also
    --------
    load_sample : The receipts of the same households.

    Examples
    --------
    >>> from segmentkit.datasets import load_sample_customers
    >>> customers, mapping = load_sample_customers()
    >>> customers.shape
    (400, 8)
    >>> mapping
    {'customer_id': 'household_id', 'age_band': 'age'}
    >>> sorted(customers["age"].unique())
    ['19-24', '25-34', '35-44', '45-54', '55-64', '65+']
    """
    raw = _read_csv(_CUSTOMERS_FILE, dtype=str, keep_default_na=False, na_values=[""])
    return raw, _CUSTOMERS_MAPPING.copy()
