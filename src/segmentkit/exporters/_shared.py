"""Helpers the platform builders share: segment names, text columns, phones, body
sizes, customer-id checks and the export report."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segmentkit.errors import ContractError, ContractFailure, Reason
from segmentkit.exporters._audience import (
    AudienceExport,
    ExportReport,
    Request,
)
from segmentkit.exporters._identifiers import country as country_codes
from segmentkit.exporters._identifiers import phone_e164, unrecognised
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment, Segmentation

__all__ = [
    "NEXT_BEST_PREFIX",
    "PREDICTION_PROPERTIES",
    "check_external_ids",
    "countries",
    "find_segment",
    "json_size",
    "make_report",
    "phones",
    "prediction_properties",
    "property_text",
    "property_value",
    "segment_description",
    "segment_name",
    "text_column",
    "unique_by",
]


def find_segment(segmentation: Segmentation, segment: str | int) -> Segment | None:
    """The segment given by name or id, if the segmentation has it."""
    for s in segmentation.segments:
        if s.name == segment or (not isinstance(segment, str) and s.id == segment):
            return s
    return None


def segment_name(segmentation: Segmentation, segment: str | int) -> str:
    """The name of a segment given by name or id (raises like ``members`` if unknown)."""
    segmentation.members(segment)  # the library's own error for an unknown segment
    found = find_segment(segmentation, segment)
    return str(segment) if found is None else found.name


def segment_description(segmentation: Segmentation, segment: str | int) -> str:
    """The description of a segment given by name or id (``''`` when it has none)."""
    found = find_segment(segmentation, segment)
    return "" if found is None else str(found.description or "")


def text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A profile column as trimmed strings, ``<NA>`` where missing or blank."""
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    values = frame[column].astype("string").str.strip()
    return values.mask(values == "", pd.NA)


def countries(frame: pd.DataFrame) -> tuple[pd.Series, np.ndarray, dict[str, int]]:
    """The ``country`` column as uppercase ISO 3166-1 alpha-2 (``<NA>`` when missing or
    naming no country), the invalid mask, and the customers per unrecognised value."""
    raw = text_column(frame, "country")
    codes, invalid = country_codes(raw)
    return codes.str.upper().astype("string"), invalid, unrecognised(raw, invalid)


def phones(frame: pd.DataFrame, default_region: str) -> tuple[pd.Series, np.ndarray]:
    """The ``phone`` column in E.164 (``<NA>`` if missing or invalid) and the invalid mask.

    Only present values are normalised (each read in the row's ``country`` when known),
    so a missing phone is never counted as invalid.
    """
    values = text_column(frame, "phone")
    present = values.notna().to_numpy()
    out = pd.Series(pd.NA, index=frame.index, dtype="string")
    invalid = np.zeros(len(frame), dtype=bool)
    if present.any():
        countries = text_column(frame, "country")[present].reset_index(drop=True)
        normalised, bad = phone_e164(
            values[present].reset_index(drop=True),
            countries=countries,
            default_region=default_region,
        )
        out[present] = normalised.to_numpy()
        invalid[present] = bad
    return out, invalid


def json_size(body: Any) -> int:
    """Bytes of ``body`` as JSON, an upper bound for any client's encoding.

    Default separators (``", "``, ``": "``) and ASCII escapes are never shorter than
    compact UTF-8, so a body within this size is within the limit however it is sent.
    """
    return len(json.dumps(body).encode("utf-8"))


def make_report(
    platform: str,
    segment: str,
    operation: str,
    members: int,
    excluded: dict[str, int],
    exported: int,
    identifiers: Mapping[str, int],
    invalid_values: Mapping[str, int],
    requests: Sequence[Request],
    unknown_countries: Mapping[str, int] | None = None,
    *,
    description: str = "",
) -> AudienceExport:
    """Number the requests by ``batch`` and wrap them with their report."""
    numbered = tuple(
        Request(
            platform=r.platform,
            method=r.method,
            path=r.path,
            body=r.body,
            headers=r.headers,
            n_customers=r.n_customers,
            batch=i,
        )
        for i, r in enumerate(requests)
    )
    report = ExportReport(
        platform=platform,
        segment=segment,
        operation=operation,
        members=members,
        exported=exported,
        excluded=dict(excluded),
        identifiers=dict(identifiers),
        invalid_values=dict(invalid_values),
        batches=len(numbered),
        unknown_countries=dict(unknown_countries or {}),
        description=description,
    )
    return AudienceExport(requests=numbered, report=report)


#: The builder option that allows customer ids that look like personal data.
PERSONAL_ID_OPTION = "allow_personal_external_id"

_EMAIL_LIKE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE_CHARACTERS = r"^\+?[\d\s().\-/]+$"
_PHONE_SEPARATORS = r"[\s().\-/]"


def check_external_ids(
    ids: pd.Series,
    profiles: pd.DataFrame,
    *,
    platform: str,
    field: str,
    allowed: bool,
) -> None:
    """Refuse customer ids that look like an e-mail or a phone, sent in clear as ``field``.

    An id looks personal when it is shaped like an address (``x@y.z``), is written like
    a phone number (7 to 15 digits with a ``+`` or separators), or ends with the same 7
    digits as the customer's own phone. Bare numeric ids (``1234567``, a shop
    system's ids) pass unless they are the customer's phone. The error counts the ids
    and never shows one.

    Parameters
    ----------
    ids : pandas.Series
        The ids to send, aligned by position with ``profiles``.
    profiles : pandas.DataFrame
        The exported customers' profiles (``email`` and ``phone`` columns if known).
    platform, field : str
        Where the ids would go, for the message.
    allowed : bool
        The builder's ``allow_personal_external_id``: skip the check.
    """
    if allowed or len(ids) == 0:
        return
    text = pd.Series(ids.to_numpy(), dtype="string").str.strip()
    digits = text.str.replace(r"\D", "", regex=True)
    n_digits = digits.str.len().fillna(0).to_numpy()
    email_like = text.str.match(_EMAIL_LIKE).fillna(False).to_numpy(dtype=bool)
    phone_shaped = text.str.match(_PHONE_CHARACTERS).fillna(False).to_numpy(dtype=bool) & (
        (n_digits >= 7) & (n_digits <= 15)
    )
    written_as_phone = text.str.startswith("+").fillna(False).to_numpy(
        dtype=bool
    ) | text.str.contains(_PHONE_SEPARATORS, regex=True).fillna(False).to_numpy(dtype=bool)
    phone_like = phone_shaped & written_as_phone
    if "email" in profiles.columns:
        own_email = pd.Series(profiles["email"].to_numpy(), dtype="string").str.strip().str.lower()
        email_like |= (text.str.lower() == own_email).fillna(False).to_numpy(dtype=bool)
    if "phone" in profiles.columns:
        own_digits = pd.Series(profiles["phone"].to_numpy(), dtype="string").str.replace(
            r"\D", "", regex=True
        )
        same_line = (digits.str[-7:] == own_digits.str[-7:]).fillna(False).to_numpy(dtype=bool)
        phone_like |= phone_shaped & same_line
    phone_like &= ~email_like
    n_email, n_phone = int(email_like.sum()), int(phone_like.sum())
    if not n_email + n_phone:
        return
    message = (
        f"{n_email + n_phone} customer id(s) among the exported customers look like personal "
        f"data ({n_email} like an e-mail address, {n_phone} like a phone number), and "
        f"{platform} would receive them in clear as {field!r}; the ids are not shown. Use "
        "customer ids that are not personal data, or pass "
        f"{PERSONAL_ID_OPTION}=True (CLI: --param {PERSONAL_ID_OPTION}=true) if sending "
        "them is intended."
    )
    failure = ContractFailure(
        column="customer_id",
        check="external_id_is_personal",
        reason=Reason.INVALID_POLICY,
        message=message,
        n_failed=n_email + n_phone,
    )
    raise ContractError([failure], table="customers")


def unique_by(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first row of each distinct key, and how many rows share it."""
    codes, uniques = pd.factorize(keys)
    counts = np.bincount(codes, minlength=len(uniques))
    first = np.full(len(uniques), len(keys), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(keys)))
    return first, counts


# --- Klaviyo ------------------------------------------------------------------------------


#: Profile properties of the predictions, with their decimals: the predicted CLV in
#: money to the cent, the churn risk (1 - p_alive) as a probability to 3 decimals.
PREDICTION_PROPERTIES = {"segmentkit_predicted_clv": 2, "segmentkit_churn_risk": 3}
#: Next-best items (``next_best_1`` … from ``NextBestItems.transform``) are sent as text
#: properties ``segmentkit_next_best_1`` …
NEXT_BEST_PREFIX = "segmentkit_"
_NEXT_BEST = re.compile(r"next_best_([1-9][0-9]*)")


def prediction_properties(predictions: Any, customer_ids: pd.Series) -> dict[str, pd.Series]:
    """Per-customer predicted values as profile property values.

    Recognised columns: a ``predicted_clv_<h>`` column and ``churn_risk`` or
    ``p_alive`` (numbers), and ``next_best_1`` … ``next_best_<k>`` (text, the items of
    :meth:`segmentkit.NextBestItems.transform`). A frame may hold any of them; other
    columns are ignored.

    Parameters
    ----------
    predictions : CustomerFeatures or pandas.DataFrame or None
        Per customer (index or ``customer_id`` column): predictions (from
        :func:`segmentkit.add_predictions`, or the file of ``segmentkit predict``)
        and/or next-best items (from :func:`segmentkit.next_best_items`), or both
        joined.
    customer_ids : pandas.Series
        The exported rows' customer ids.

    Returns
    -------
    dict of str to pandas.Series
        Property name to values aligned with ``customer_ids`` (positionally): rounded
        floats for the numbers, text (``string`` dtype) for the items; missing where a
        customer has none (to be left out, never sent as "nan"). Empty without
        ``predictions``.
    """
    if predictions is None:
        return {}
    frame = predictions.frame if isinstance(predictions, CustomerFeatures) else predictions
    if not isinstance(frame, pd.DataFrame):
        msg = (
            "predictions must be CustomerFeatures from sk.add_predictions or a DataFrame of "
            f"predictions or next-best items by customer id; got {type(predictions).__name__}."
        )
        raise TypeError(msg)
    if "customer_id" in frame.columns:
        frame = frame.set_index("customer_id")
    repeated = frame.index[frame.index.duplicated()]
    if len(repeated):
        msg = (
            f"predictions has {len(repeated)} repeated customer id(s), e.g. "
            f"{list(map(str, repeated[:3]))}; give one row per customer (the output of "
            "sk.add_predictions, 'segmentkit predict' or sk.next_best_items has one)."
        )
        raise ValueError(msg)
    clv = sorted(c for c in frame.columns if str(c).startswith("predicted_clv_"))
    if len(clv) > 1:
        msg = f"predictions has several predicted CLV columns {clv}; keep one."
        raise ValueError(msg)
    risk = "churn_risk" if "churn_risk" in frame.columns else None
    items = sorted(
        (c for c in frame.columns if _NEXT_BEST.fullmatch(str(c))),
        key=lambda c: int(str(c).rsplit("_", 1)[1]),
    )
    if not clv and risk is None and "p_alive" not in frame.columns and not items:
        msg = (
            "predictions has no 'predicted_clv_<h>', 'churn_risk', 'p_alive' or "
            "'next_best_<n>' column; make them with sk.add_predictions(features), "
            "'segmentkit predict' or sk.next_best_items(transactions)."
        )
        raise ValueError(msg)
    index = pd.Index(frame.index.astype(str))
    rows = index.get_indexer(customer_ids.astype(str).to_numpy())
    out: dict[str, pd.Series] = {}
    sources: dict[str, np.ndarray] = {}
    if clv:
        sources["segmentkit_predicted_clv"] = _numbers(frame[clv[0]], clv[0])
    if risk is not None:
        sources["segmentkit_churn_risk"] = _numbers(frame[risk], risk)
    elif "p_alive" in frame.columns:
        sources["segmentkit_churn_risk"] = 1.0 - _numbers(frame["p_alive"], "p_alive")
    for name, numbers in sources.items():
        if numbers.size == 0:
            numbers = np.full(1, np.nan)
        taken = np.where(rows >= 0, numbers[np.maximum(rows, 0)], np.nan)
        taken[~np.isfinite(taken)] = np.nan
        out[name] = pd.Series(np.round(taken, PREDICTION_PROPERTIES[name]))
    for column in items:
        text = frame[column].astype("string").str.strip()
        text = text.mask(text == "", pd.NA).to_numpy(dtype=object, na_value=None)
        picked = np.full(len(rows), None, dtype=object)
        found = rows >= 0
        picked[found] = text[rows[found]]
        out[f"{NEXT_BEST_PREFIX}{column}"] = pd.Series(picked, dtype="string")
    return out


def property_value(name: str, values: pd.Series, i: int | np.integer) -> float | str | None:
    """Row ``i`` of a property from :func:`prediction_properties` as sent in JSON.

    A number for the predictions, text for the next-best items, ``None`` when missing.
    """
    value = values.iat[i]
    if pd.isna(value):
        return None
    return float(value) if name in PREDICTION_PROPERTIES else str(value)


def property_text(name: str, value: float | str) -> str:
    """A property value as text (HubSpot's form): numbers with their decimals."""
    if name in PREDICTION_PROPERTIES:
        return f"{value:.{PREDICTION_PROPERTIES[name]}f}"
    return str(value)


def _numbers(values: pd.Series, column: str) -> np.ndarray:
    try:
        return pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        msg = f"predictions column {column!r} must hold numbers."
        raise ValueError(msg) from None
