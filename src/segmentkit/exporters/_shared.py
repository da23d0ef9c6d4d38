"""Helpers the platform builders share: segment names, text columns, phones, body
sizes, argument checks and the export report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._segmentation import Segmentation
from segmentkit.exporters._audience import (
    AudienceExport,
    ExportReport,
    Request,
)
from segmentkit.exporters._identifiers import country as country_codes
from segmentkit.exporters._identifiers import phone_e164, unrecognised

__all__ = [
    "check_batch_size",
    "check_operation",
    "countries",
    "json_size",
    "make_report",
    "phones",
    "segment_name",
    "text_column",
    "unique_by",
]


def segment_name(segmentation: Segmentation, segment: str | int) -> str:
    """The name of a segment given by name or id (raises like ``members`` if unknown)."""
    segmentation.members(segment)  # the library's own error for an unknown segment
    for s in segmentation.segments:
        if s.name == segment or (not isinstance(segment, str) and s.id == segment):
            return s.name
    return str(segment)


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


def check_batch_size(batch_size: int, limit: int, platform: str) -> None:
    """Refuse batch sizes the platform does not accept."""
    if not 1 <= batch_size <= limit:
        msg = f"batch_size must be between 1 and {limit} for {platform}; got {batch_size}."
        raise ValueError(msg)


def check_operation(operation: str, allowed: Sequence[str], platform: str) -> None:
    """Refuse operations the builder does not implement."""
    if operation not in allowed:
        msg = f"operation must be one of {list(allowed)} for {platform}; got {operation!r}."
        raise ValueError(msg)


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
    )
    return AudienceExport(requests=numbered, report=report)


def unique_by(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first row of each distinct key, and how many rows share it."""
    codes, uniques = pd.factorize(keys)
    counts = np.bincount(codes, minlength=len(uniques))
    first = np.full(len(uniques), len(keys), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(keys)))
    return first, counts


# --- Klaviyo ------------------------------------------------------------------------------
