"""Product attributes the user maps beyond ``category`` and ``brand``.

``attributes={"department": "DEPARTMENT"}`` (or a list of column names, kept under their
own names) adds categorical columns to the transactions or events contract for one
validation: they are read, trimmed and coded like ``category`` on every engine.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from segmentkit.contracts._schema import ColumnSpec, Contract
from segmentkit.errors import InvalidParameterError

__all__ = [
    "ATTRIBUTES",
    "Attributes",
    "blank_is_missing",
    "blanks_missing",
    "product_attributes",
    "with_attributes",
]

Attributes = Mapping[str, str] | Sequence[str] | str | None
#: The canonical product attributes, first in :func:`product_attributes`.
ATTRIBUTES = ("category", "brand")
#: Columns the validated tables add themselves.
_DERIVED = ("is_return", "order_key", "day")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_DESCRIPTION = "Product attribute (user-mapped)."


def with_attributes(
    contract: Contract, attributes: Attributes, columns: Mapping[str, str]
) -> tuple[Contract, dict[str, str]]:
    """The contract with one optional categorical column per attribute, and the mapping
    of canonical names to source columns with the attributes added."""
    if attributes is None:
        return contract, dict(columns)
    if isinstance(attributes, str):
        # "department,product_type" on a command line or in a config file.
        attributes = [a.strip() for a in attributes.split(",") if a.strip()]
    if isinstance(attributes, Mapping):
        pairs = list(attributes.items())
    elif isinstance(attributes, Sequence):
        pairs = [(name, name) for name in attributes]
    else:
        msg = (
            "attributes= takes a dict of attribute names to your columns, e.g. "
            "{'department': 'DEPARTMENT'}, or a list of column names kept under their "
            f"own names; got {type(attributes).__name__}."
        )
        raise InvalidParameterError(msg)
    mapping = dict(columns)
    specs = []
    for name, source in pairs:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            msg = (
                f"Attribute name {name!r} must start with a letter and hold only letters, "
                "digits and underscores, e.g. 'department' or 'product_type'."
            )
            raise InvalidParameterError(msg)
        if not isinstance(source, str):
            msg = f"Attribute {name!r} must name a column of your data; got {source!r}."
            raise InvalidParameterError(msg)
        if name in contract.names:
            msg = (
                f"Attribute name {name!r} is a canonical column of the {contract.table} "
                f"contract, not an extra product attribute. Map it as {name}={source!r} "
                "instead."
            )
            raise InvalidParameterError(msg)
        if name in _DERIVED:
            msg = (
                f"Attribute name {name!r} is a column segmentkit derives for the "
                f"{contract.table}; choose another name."
            )
            raise InvalidParameterError(msg)
        if name in mapping:
            msg = f"Attribute {name!r} is given twice (in attributes= and as a column)."
            raise InvalidParameterError(msg)
        mapping[name] = source
        specs.append(ColumnSpec(name, "category", False, _DESCRIPTION))
    extended = dataclasses.replace(contract, columns=(*contract.columns, *specs))
    return extended, mapping


def product_attributes(contract: Contract, columns: Sequence[str]) -> tuple[str, ...]:
    """``category``, ``brand`` and the user's attributes, those present, in that order."""
    known = set(contract.names) | set(_DERIVED)
    canonical = [name for name in ATTRIBUTES if name in columns]
    extra = [name for name in columns if name not in known and not name.startswith("_")]
    return (*canonical, *extra)


def blank_is_missing(contract: Contract) -> tuple[str, ...]:
    """Columns where a blank or whitespace-only value means "none": the promo code (an
    export writes "" for no code) and the user's attributes."""
    names = [c.name for c in contract.columns if c.description == _DESCRIPTION]
    return ("promo_code", *names) if "promo_code" in contract.names else tuple(names)


def blanks_missing(values: pd.Series) -> pd.Series:
    """A categorical with blank categories made missing (the categories, not each row)."""
    categories = values.cat.categories
    blank = [c for c in categories if not str(c).strip()]
    return values.cat.remove_categories(blank) if blank else values
