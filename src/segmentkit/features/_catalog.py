"""The one place where every customer feature is defined in words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

FeatureKind = Literal["numeric", "categorical", "datetime", "bool"]


@dataclass(frozen=True)
class FeatureDef:
    """Definition of one customer feature."""

    name: str
    description: str
    unit: str
    source: Literal["transactions", "events", "customers"]
    kind: FeatureKind = "numeric"


_PURCHASE = [
    FeatureDef(
        "first_purchase",
        "Time of the first purchase line.",
        "UTC time",
        "transactions",
        "datetime",
    ),
    FeatureDef(
        "last_purchase", "Time of the last purchase line.", "UTC time", "transactions", "datetime"
    ),
    FeatureDef(
        "recency_days",
        "Days from the last purchase to as_of (missing: never bought).",
        "days",
        "transactions",
    ),
    FeatureDef(
        "frequency", "Distinct orders with at least one purchase line.", "orders", "transactions"
    ),
    FeatureDef("monetary", "Net spend: purchases minus returns.", "currency", "transactions"),
    FeatureDef(
        "gross_spend", "Spend on purchase lines, before returns.", "currency", "transactions"
    ),
    FeatureDef("avg_order_value", "gross_spend / frequency.", "currency", "transactions"),
    FeatureDef("tenure_days", "Days from the first purchase to as_of.", "days", "transactions"),
    FeatureDef(
        "mean_days_between_orders",
        "(last - first purchase) / (frequency - 1); missing with one order.",
        "days",
        "transactions",
    ),
    FeatureDef(
        "return_rate", "Returned value / gross_spend (0 without returns).", "share", "transactions"
    ),
    FeatureDef(
        "discount_share",
        "Discount / (gross_spend + discount): share of list price given as discount "
        "(0 when both are 0).",
        "share",
        "transactions",
    ),
    FeatureDef("n_products", "Distinct products bought.", "products", "transactions"),
    FeatureDef("n_categories", "Distinct categories bought.", "categories", "transactions"),
    FeatureDef(
        "top_category",
        "Category with the most spend (ties: alphabetical).",
        "",
        "transactions",
        "categorical",
    ),
    FeatureDef(
        "top_category_share",
        "Spend in top_category / spend in all categories.",
        "share",
        "transactions",
    ),
    FeatureDef(
        "avg_basket_size",
        "Units per order (sum of quantity / frequency).",
        "units",
        "transactions",
    ),
]

_BROWSING_WINDOWED = [
    ("views", "Product or page views in the last {w} days.", "events"),
    ("add_to_carts", "Add-to-cart events in the last {w} days.", "events"),
    ("sessions", "Visits that started in the last {w} days.", "sessions"),
    (
        "time_on_site",
        "Minutes on site in the last {w} days (durations, else visit spans).",
        "minutes",
    ),
    (
        "abandoned_carts",
        "Visits in the last {w} days with an add-to-cart and no purchase within "
        "abandon_hours after it.",
        "carts",
    ),
]

_BROWSING = [
    FeatureDef(
        "days_since_last_visit", "Days from the last browsing event to as_of.", "days", "events"
    ),
]

_PROFILE = [
    FeatureDef(
        "age",
        "Age in whole years at as_of (from birth_date, else the age given).",
        "years",
        "customers",
    ),
    FeatureDef("age_band", "Age band as given.", "", "customers", "categorical"),
    FeatureDef("gender", "Gender as given.", "", "customers", "categorical"),
    FeatureDef("city", "City.", "", "customers", "categorical"),
    FeatureDef("region", "Region or state.", "", "customers", "categorical"),
    FeatureDef("country", "Country.", "", "customers", "categorical"),
    FeatureDef("days_since_signup", "Days from signup_date to as_of.", "days", "customers"),
    FeatureDef("consent_email", "May be e-mailed for marketing.", "", "customers", "bool"),
    FeatureDef("consent_sms", "May be texted for marketing.", "", "customers", "bool"),
    FeatureDef("consent_ads", "May be targeted in ad platforms.", "", "customers", "bool"),
]


def windowed_definitions(windows: tuple[int, ...]) -> list[FeatureDef]:
    return [
        FeatureDef(f"{stem}_{w}d", text.format(w=w), unit, "events")
        for w in windows
        for stem, text, unit in _BROWSING_WINDOWED
    ]


def feature_catalog(windows: tuple[int, ...] = (7, 30, 90)) -> pd.DataFrame:
    """Every feature segmentkit can compute, with its definition.

    Parameters
    ----------
    windows : tuple of int, default=(7, 30, 90)
        Browsing windows in days, as passed to :func:`extract_features`.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, description, unit, source, kind``, one row per feature.

    Examples
    --------
    >>> import segmentkit as sk
    >>> catalog = sk.feature_catalog()
    >>> catalog.set_index("name").loc["frequency", "description"]
    'Distinct orders with at least one purchase line.'
    """
    definitions = _PURCHASE + _BROWSING + windowed_definitions(windows) + _PROFILE
    return pd.DataFrame([vars(d) for d in definitions])


def definitions_by_name(windows: tuple[int, ...]) -> dict[str, FeatureDef]:
    return {d.name: d for d in _PURCHASE + _BROWSING + windowed_definitions(windows) + _PROFILE}
