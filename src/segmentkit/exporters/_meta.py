"""Meta (Facebook) Custom Audiences: multi-key customer-file uploads.

Builds ``POST /v25.0/{audience_id}/users`` (add), ``DELETE`` on the same path (remove)
or ``POST /v25.0/{audience_id}/usersreplace`` (replace) requests, each carrying at most
``batch_size`` rows (Meta accepts 10,000), all in one upload session.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, InstanceOf, Interval, OneOf, validate_params
from segmentkit.contracts._customers import Customers
from segmentkit.exporters import _identifiers as ids
from segmentkit.exporters._audience import (
    NO_IDENTIFIER,
    AudienceExport,
    ExportReport,
    Request,
    batched,
    eligible_members,
)
from segmentkit.exporters._destination import Destination, TokenAuth, error_object_message
from segmentkit.exporters._shared import check_external_ids, find_segment, segment_description
from segmentkit.results._segmentation import Segmentation

__all__ = ["build_meta"]

API_VERSION = "v25.0"
MAX_ROWS = 10_000

#: Match keys in schema order, with the canonical profile column each comes from.
SCHEMA = {
    "EMAIL": "email",
    "PHONE": "phone",
    "FN": "first_name",
    "LN": "last_name",
    "CT": "city",
    "ST": "region",
    "ZIP": "postal_code",
    "COUNTRY": "country",
    "EXTERN_ID": "customer_id",
}

_PARAMETERS: dict[str, list[Any]] = {
    "operation": [OneOf("add", "remove", "replace")],
    "batch_size": [Interval(int, 1, MAX_ROWS)],
    "session_id": [Interval(int, 1, 2**63 - 1), NONE],
    "default_region": [InstanceOf((str,), "a str")],
    "allow_personal_external_id": [InstanceOf((bool,), "True or False")],
}


def build_meta(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    audience_id: str | int,
    operation: Literal["add", "remove", "replace"] = "add",
    consent: str | Sequence[str] | None = "consent_ads",
    suppression: Iterable[str] | None = None,
    default_region: str = "US",
    batch_size: int = MAX_ROWS,
    session_id: int | None = None,
    allow_personal_external_id: bool = False,
) -> AudienceExport:
    """Requests adding a segment to (or removing it from) a Meta custom audience.

    Every match key the customers have (``EMAIL, PHONE, FN, LN, CT, ST, ZIP, COUNTRY``)
    is normalised by Meta's rules and SHA-256 hashed; ``EXTERN_ID`` is the customer id,
    unhashed. A value that cannot be normalised is sent as ``""`` and counted in
    ``report.invalid_values``; values already hashed (64 hex digits) are sent as they
    are.

    Parameters
    ----------
    segmentation : Segmentation
        The segmentation holding the segment.
    segment : str or int
        Segment name or id.
    customers : Customers
        Profiles with the identifiers and consent flags.
    audience_id : str or int
        The custom audience (created beforehand with ``subtype=CUSTOM``).
    operation : {'add', 'remove', 'replace'}, default='add'
        ``POST /users``, ``DELETE /users`` or ``POST /usersreplace`` (the audience
        becomes exactly the exported customers).
    consent : str or list of str or None, default='consent_ads'
        Consent flag(s) every exported customer must have; ``None`` skips the check.
    suppression : iterable of str, optional
        Customer ids never to export (opt-outs, staff...).
    default_region : str, default='US'
        Country of phone numbers without an international prefix when the profile has
        no country.
    batch_size : int, default=10000
        Rows per request, at most Meta's 10,000.
    session_id : int, optional
        Upload session id; by default derived from the audience, segment, operation and
        content, so rebuilding the same export gives the same session.
    allow_personal_external_id : bool, default=False
        Send customer ids that look like an e-mail address or a phone number as the
        unhashed ``EXTERN_ID`` anyway. Without it such ids are refused with a
        :class:`~segmentkit.errors.ContractError` that counts them (never shows them).

    Returns
    -------
    AudienceExport
        The requests (one session, ``batch_seq`` from 1) and the report. Customers with
        neither an e-mail nor a phone nor first name + last name + postal code are
        excluded as ``no_usable_identifier``.
    """
    validate_params("build_meta", locals(), _PARAMETERS)

    profiles, excluded, members = eligible_members(
        segmentation, segment, customers, consent=consent, suppression=suppression
    )
    schema = [key for key, column in SCHEMA.items() if column in profiles.columns]
    columns, invalid, unknown_countries = _match_keys(profiles, schema, default_region)

    usable = _usable(columns, len(profiles))
    excluded[NO_IDENTIFIER] = int((~usable).sum())
    if "EXTERN_ID" in columns:
        check_external_ids(
            columns["EXTERN_ID"][usable],
            profiles.reset_index(drop=True)[usable],
            platform="Meta",
            field="EXTERN_ID",
            allowed=allow_personal_external_id,
        )
    rows = [
        [columns[key].iloc[i] if pd.notna(columns[key].iloc[i]) else "" for key in schema]
        for i in np.flatnonzero(usable)
    ]
    identifiers = {key: sum(1 for row in rows if row[j]) for j, key in enumerate(schema)}

    if session_id is None:
        session_id = _session_id(audience_id, segment, operation, schema, rows)
    if operation == "replace":
        method, path = "POST", f"/{API_VERSION}/{audience_id}/usersreplace"
    else:
        method = "POST" if operation == "add" else "DELETE"
        path = f"/{API_VERSION}/{audience_id}/users"
    slices = batched(len(rows), batch_size)
    requests = tuple(
        Request(
            platform="meta",
            method=method,
            path=path,
            body={
                "payload": {"schema": schema, "is_raw": True, "data": rows[part]},
                "session": {
                    "session_id": session_id,
                    "batch_seq": number + 1,
                    "last_batch_flag": number == len(slices) - 1,
                    "estimated_num_total": len(rows),
                },
            },
            n_customers=part.stop - part.start,
            batch=number,
        )
        for number, part in enumerate(slices)
    )
    report = ExportReport(
        platform="meta",
        segment=_segment_name(segmentation, segment),
        operation=operation,
        members=members,
        exported=len(rows),
        excluded=excluded,
        identifiers=identifiers,
        invalid_values=invalid,
        batches=len(requests),
        unknown_countries=unknown_countries,
        description=segment_description(segmentation, segment),
    )
    return AudienceExport(requests=requests, report=report)


def _match_keys(
    profiles: pd.DataFrame, schema: list[str], default_region: str
) -> tuple[dict[str, pd.Series], dict[str, int], dict[str, int]]:
    """Hashed value (or ``<NA>``) per key, the invalid counts per key, and the
    customers per country value that names no country."""
    countries = profiles["country"] if "country" in profiles.columns else None
    rules: dict[str, Any] = {
        "EMAIL": ids.email,
        "PHONE": lambda v: ids.phone_digits(v, countries, default_region),
        "FN": ids.name,
        "LN": ids.name,
        "CT": ids.city,
        "ST": lambda v: ids.region(v, countries),
        "ZIP": lambda v: ids.postal_code(v, countries),
        "COUNTRY": ids.country,
    }
    columns: dict[str, pd.Series] = {}
    invalid: dict[str, int] = {}
    unknown_countries: dict[str, int] = {}
    for key in schema:
        raw = profiles[SCHEMA[key]].reset_index(drop=True)
        if key == "EXTERN_ID":
            columns[key] = raw.astype(str).astype("string")
            continue
        normalised, bad = ids.prehashed(raw, rules[key](raw))
        columns[key] = ids.sha256_hex(normalised)
        invalid[key] = int(bad.sum())
        if key == "COUNTRY":
            unknown_countries = ids.unrecognised(raw, bad)
    return columns, invalid, unknown_countries


def _usable(columns: dict[str, pd.Series], n: int) -> np.ndarray:
    def has(key: str) -> np.ndarray:
        if key not in columns:
            return np.zeros(n, dtype=bool)
        return columns[key].notna().to_numpy(dtype=bool)

    return has("EMAIL") | has("PHONE") | (has("FN") & has("LN") & has("ZIP"))


def _session_id(
    audience_id: str | int, segment: str | int, operation: str, schema: list[str], rows: list
) -> int:
    text = json.dumps([str(audience_id), str(segment), operation, schema, rows])
    value = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) & (2**63 - 1)
    return value or 1


def _segment_name(segmentation: Segmentation, segment: str | int) -> str:
    # Unlike segment_name, no check: remove_all names a segment it reads no member of.
    found = find_segment(segmentation, segment)
    return str(segment) if found is None else str(found.name)


DESTINATION = Destination(
    name="meta",
    title="Meta Custom Audiences",
    builder=build_meta,
    docs_page="meta.md",
    base_url="https://graph.facebook.com",
    auth=TokenAuth("Bearer"),
    environment={"token": "SEGMENTKIT_META_TOKEN"},
    rate_per_second=None,  # throttled per ad account, no published number
    batch_limits={"rows": MAX_ROWS},
    error_readers=(error_object_message,),
    duplicate_effect="nothing: the audience is a set of matched users",
)
