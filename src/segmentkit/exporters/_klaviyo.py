"""Klaviyo: profiles upserted and added to a list by one bulk import job per batch.

``POST /api/profile-bulk-import-jobs`` (JSON:API, ``revision: 2026-07-15``) upserts up to
10,000 profiles and at most 5 MB per request, and adds them to the list named in
``relationships.lists``. Klaviyo takes e-mail and phone in clear (the e-mail trimmed
and lowercased, the phone in E.164).

Removal from a list is by Klaviyo profile id only (``DELETE
/api/lists/{id}/relationships/profiles``); segmentkit does not know those ids, so
``operation='remove'`` raises and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._common._params import InstanceOf, Interval, OneOf, validate_params
from segmentkit.contracts._customers import Customers
from segmentkit.exporters._audience import (
    NO_IDENTIFIER,
    AudienceExport,
    Request,
    eligible_members,
)
from segmentkit.exporters._destination import (
    Destination,
    TokenAuth,
    error_list_messages,
)
from segmentkit.exporters._identifiers import email as normalise_email
from segmentkit.exporters._shared import (
    check_external_ids,
    countries,
    json_size,
    make_report,
    phones,
    prediction_properties,
    property_value,
    segment_description,
    segment_name,
    text_column,
)
from segmentkit.results._segmentation import Segmentation

__all__ = ["KLAVIYO_REVISION", "build_klaviyo"]

#: API revision the bodies are written for (Klaviyo SDK 24.0.0 pins it).
KLAVIYO_REVISION = "2026-07-15"
#: Klaviyo's limits for one bulk import request.
KLAVIYO_MAX_PROFILES = 10_000
KLAVIYO_MAX_BODY_BYTES = 5_000_000

_JSONAPI = "application/vnd.api+json"

_PARAMETERS: dict[str, list[Any]] = {
    "list_id": [InstanceOf((str,), "a str")],
    "operation": [OneOf("add")],
    "default_region": [InstanceOf((str,), "a str")],
    "batch_size": [Interval(int, 1, KLAVIYO_MAX_PROFILES)],
    "max_body_bytes": [Interval(int, 1, None)],
    "allow_personal_external_id": [InstanceOf((bool,), "True or False")],
}


def build_klaviyo(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    list_id: str,
    operation: str = "add",
    consent: str | Sequence[str] | None = "consent_email",
    suppression: Iterable[str] | None = None,
    default_region: str = "US",
    batch_size: int = KLAVIYO_MAX_PROFILES,
    properties: Sequence[str] | Mapping[str, str] | None = None,
    max_body_bytes: int = KLAVIYO_MAX_BODY_BYTES,
    allow_personal_external_id: bool = False,
    predictions: Any = None,
) -> AudienceExport:
    """Klaviyo bulk import jobs that upsert a segment's profiles and add them to a list.

    Each request is ``POST /api/profile-bulk-import-jobs`` with at most ``batch_size``
    profiles and at most ``max_body_bytes`` of JSON; a batch that would be larger is
    split. Each profile carries ``email`` (trimmed, lowercased), ``phone_number``
    (E.164), ``external_id`` (the customer id), ``first_name``, ``last_name``,
    ``location`` (``city, region, zip, country``, those known; the country as an ISO
    3166-1 alpha-2 code, ``'United Kingdom'`` → ``'GB'``, and left out, counted in
    ``report.unknown_countries``, when it names no country) and ``properties``
    with ``segmentkit_segment`` set to the segment's name. Values are sent in clear, as
    Klaviyo requires; the job runs asynchronously on Klaviyo's side.

    Parameters
    ----------
    segmentation : Segmentation
        Where the segment comes from.
    segment : str or int
        Segment name or id.
    customers : Customers
        Profiles (e-mail, phone, names, address, consent flags).
    list_id : str
        Klaviyo list the profiles are added to.
    operation : {'add'}, default='add'
        ``'remove'`` is refused: Klaviyo removes list members by Klaviyo profile id
        only, which segmentkit does not have.
    consent : str or list of str or None, default='consent_email'
        Consent flags every exported customer must have.
    suppression : iterable of str, optional
        Customer ids never to export.
    default_region : str, default='US'
        Region for phone numbers written without a country code and without a
        ``country`` in the profile.
    batch_size : int, default=10000
        Profiles per request (Klaviyo's maximum is 10,000).
    properties : list of str or dict of str to str, optional
        Further profile columns to send as custom properties: column names, or a
        mapping from column to property name. Missing values are left out.
    max_body_bytes : int, default=5000000
        Largest request body (Klaviyo accepts 5 MB).
    allow_personal_external_id : bool, default=False
        Send customer ids that look like an e-mail address or a phone number as
        ``external_id`` anyway. Without it such ids are refused with a
        :class:`~segmentkit.errors.ContractError` that counts them (never shows them).
    predictions : CustomerFeatures or pandas.DataFrame, optional
        Per-customer predictions (from :func:`segmentkit.add_predictions`, or the file
        of ``segmentkit predict``): each exported profile gets
        ``segmentkit_predicted_clv`` (money, to the cent) and ``segmentkit_churn_risk``
        (1 - ``p_alive``, 3 decimals) as custom properties (numbers); customers
        without a prediction get neither. Next-best items (``next_best_1`` … from
        :func:`segmentkit.next_best_items`, alone or joined to the predictions) go
        as text properties ``segmentkit_next_best_1`` …

    Returns
    -------
    AudienceExport
        The requests and the report; ``identifiers`` counts exported profiles with
        ``email``, ``phone_number`` and ``external_id``.

    Raises
    ------
    ValueError
        On ``operation='remove'``, a bad ``batch_size``, an unknown property column, or
        one profile larger than ``max_body_bytes`` on its own.
    ContractError
        Customer ids look like e-mails or phones and ``allow_personal_external_id`` is
        not set.
    """
    if operation == "remove":
        msg = (
            "Klaviyo removes list members by Klaviyo profile id only (DELETE "
            "/api/lists/{id}/relationships/profiles), and segmentkit does not know those "
            "ids. Remove them in Klaviyo, or look the profile ids up by e-mail first."
        )
        raise ValueError(msg)
    validate_params("build_klaviyo", locals(), _PARAMETERS)
    name = segment_name(segmentation, segment)
    frame, excluded, members = eligible_members(
        segmentation, segment, customers, consent=consent, suppression=suppression
    )
    extra = _property_columns(properties, frame)
    predicted = prediction_properties(predictions, frame["customer_id"])

    emails, bad_email = normalise_email(text_column(frame, "email"))
    phone_numbers, bad_phone = phones(frame, default_region)
    country_codes, bad_country, unknown_countries = countries(frame)
    external = frame["customer_id"].astype("string")
    has_email = emails.notna().to_numpy()
    has_phone = phone_numbers.notna().to_numpy()
    has_external = external.notna().to_numpy() & (external != "").fillna(False).to_numpy()
    usable = has_email | has_phone | has_external
    excluded[NO_IDENTIFIER] = int((~usable).sum())
    check_external_ids(
        external[has_external],
        frame[has_external],
        platform="Klaviyo",
        field="external_id",
        allowed=allow_personal_external_id,
    )

    columns = {
        "first_name": text_column(frame, "first_name"),
        "last_name": text_column(frame, "last_name"),
    }
    location = {
        "city": text_column(frame, "city"),
        "region": text_column(frame, "region"),
        "zip": text_column(frame, "postal_code"),
        "country": country_codes,
    }
    profiles = []
    for i in np.flatnonzero(usable):
        attributes: dict[str, Any] = {}
        if has_email[i]:
            attributes["email"] = emails.iat[i]
        if has_phone[i]:
            attributes["phone_number"] = phone_numbers.iat[i]
        if has_external[i]:
            attributes["external_id"] = external.iat[i]
        for key, values in columns.items():
            if pd.notna(values.iat[i]):
                attributes[key] = values.iat[i]
        place = {k: v.iat[i] for k, v in location.items() if pd.notna(v.iat[i])}
        if place:
            attributes["location"] = place
        props: dict[str, Any] = {"segmentkit_segment": name}
        for column, prop in extra.items():
            value = frame[column].iat[i]
            if pd.notna(value):
                props[prop] = _json_value(value)
        for prop, values in predicted.items():
            value = property_value(prop, values, i)
            if value is not None:
                props[prop] = value
        attributes["properties"] = props
        profiles.append({"type": "profile", "attributes": attributes})

    requests = [
        Request(
            platform="klaviyo",
            method="POST",
            path="/api/profile-bulk-import-jobs",
            body=_bulk_body(chunk, list_id),
            headers={"revision": KLAVIYO_REVISION, "Content-Type": _JSONAPI, "Accept": _JSONAPI},
            n_customers=len(chunk),
        )
        for chunk in _pack(profiles, list_id, batch_size, max_body_bytes)
    ]
    identifiers = {
        "email": int(has_email[usable].sum()),
        "phone_number": int(has_phone[usable].sum()),
        "external_id": int(has_external[usable].sum()),
    }
    invalid = {
        "email": int(np.sum(bad_email)),
        "phone_number": int(np.sum(bad_phone)),
        "country": int(np.sum(bad_country)),
    }
    return make_report(
        "klaviyo", name, operation, members, excluded, int(usable.sum()), identifiers,
        invalid, requests, unknown_countries,
        description=segment_description(segmentation, name),
    )  # fmt: skip


def _bulk_body(profiles: list[dict[str, Any]], list_id: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": profiles}},
            "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}},
        }
    }


def _pack(
    profiles: list[dict[str, Any]], list_id: str, batch_size: int, max_bytes: int
) -> list[list[dict[str, Any]]]:
    """Consecutive chunks of at most ``batch_size`` profiles and ``max_bytes`` of body."""
    empty = json_size(_bulk_body([], list_id))
    separator = len(", ")
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = empty
    for profile in profiles:
        own = json_size(profile)
        if empty + own > max_bytes:
            msg = (
                f"One Klaviyo profile takes {own} bytes, more than the {max_bytes}-byte "
                "request limit on its own; send fewer properties."
            )
            raise ValueError(msg)
        grown = size + own + (separator if current else 0)
        if current and (len(current) >= batch_size or grown > max_bytes):
            chunks.append(current)
            current, grown = [], empty + own
        current.append(profile)
        size = grown
    if current:
        chunks.append(current)
    return chunks


def _property_columns(
    properties: Sequence[str] | Mapping[str, str] | None, frame: pd.DataFrame
) -> dict[str, str]:
    if properties is None:
        return {}
    if isinstance(properties, str):  # one column, not its letters
        properties = [properties]
    mapping = dict(properties) if isinstance(properties, Mapping) else {c: c for c in properties}
    missing = [c for c in mapping if c not in frame.columns]
    if missing:
        msg = (
            f"Property columns {missing} are not in the customers data; keep them with "
            "Customers.from_frame(..., extra_columns=[...]) (the command line keeps the "
            "columns --param properties=... names)."
        )
        raise ValueError(msg)
    if "segmentkit_segment" in mapping.values():
        msg = "The property name 'segmentkit_segment' is reserved for the segment name."
        raise ValueError(msg)
    return mapping


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return value.isoformat()
    return value


DESTINATION = Destination(
    name="klaviyo",
    title="Klaviyo",
    builder=build_klaviyo,
    docs_page="klaviyo.md",
    base_url="https://a.klaviyo.com",
    auth=TokenAuth("Klaviyo-API-Key"),
    environment={"token": "SEGMENTKIT_KLAVIYO_API_KEY"},
    rate_per_second=150 / 60,  # 10/s burst, 150/min steady
    batch_limits={"profiles": KLAVIYO_MAX_PROFILES, "body_bytes": KLAVIYO_MAX_BODY_BYTES},
    error_readers=(error_list_messages,),
    duplicate_effect="a second bulk import job upserts the same profiles",
)
