"""Google Ads Customer Match through an ``OfflineUserDataJob``.

The export is one job: ``offlineUserDataJobs:create``, then ``:addOperations`` requests
of at most ``max_identifiers`` identifiers (Google accepts 100,000 per request and 20
per user), then ``:run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmentkit._common._params import InstanceOf, Interval, OneOf, validate_params
from segmentkit.contracts._customers import Customers
from segmentkit.exporters import _identifiers as ids
from segmentkit.exporters._audience import (
    NO_IDENTIFIER,
    AudienceExport,
    ExportReport,
    Request,
    eligible_members,
)
from segmentkit.exporters._destination import (
    CredentialValues,
    Destination,
    error_object_message,
)
from segmentkit.exporters._meta import _segment_name
from segmentkit.exporters._shared import segment_description
from segmentkit.results._segmentation import Segmentation

JOB_PLACEHOLDER = "{job}"

__all__ = ["build_google_ads"]

API_VERSION = "v26"
MAX_IDENTIFIERS = 100_000
MAX_PER_USER = 20
_CONSENT_STATUSES = ("GRANTED", "DENIED", "UNKNOWN", "UNSPECIFIED")

_PARAMETERS: dict[str, list[Any]] = {
    "operation": [OneOf("add", "remove", "remove_all")],
    "ad_user_data": [OneOf(*_CONSENT_STATUSES)],
    "ad_personalization": [OneOf(*_CONSENT_STATUSES)],
    "default_region": [InstanceOf((str,), "a str")],
    "max_identifiers": [Interval(int, MAX_PER_USER, MAX_IDENTIFIERS)],
}


def build_google_ads(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    customer_id: str | int,
    job_id: str | int | None = None,
    user_list_id: str | int,
    operation: Literal["add", "remove", "remove_all"] = "add",
    consent: str | Sequence[str] | None = "consent_ads",
    ad_user_data: str = "GRANTED",
    ad_personalization: str = "GRANTED",
    suppression: Iterable[str] | None = None,
    default_region: str = "US",
    max_identifiers: int = MAX_IDENTIFIERS,
) -> AudienceExport:
    """Requests adding a segment to (or removing it from) a Customer Match user list.

    Each customer becomes one ``UserData`` with up to three identifiers: ``hashedEmail``
    (SHA-256 of the trimmed, lowercased e-mail), ``hashedPhoneNumber`` (SHA-256 of the
    E.164 number with its ``+``) and ``addressInfo`` (hashed first and last name with
    the unhashed country code and postal code, sent only when all four are known).

    Parameters
    ----------
    segmentation : Segmentation
        The segmentation holding the segment.
    segment : str or int
        Segment name or id.
    customers : Customers
        Profiles with the identifiers and consent flags.
    customer_id : str or int
        Google Ads customer (account) id, with or without dashes.
    job_id : str or int, optional
        Id of the offline user data job. Google assigns it in the ``:create`` answer, so
        leave it out: the paths then hold the placeholder ``{job}``, which
        :func:`~segmentkit.exporters.push` fills in from that answer (and remembers in
        its journal for re-runs). Give it only to resume a job created elsewhere.
    user_list_id : str or int
        The CRM-based user list (``upload_key_type`` ``CONTACT_INFO``).
    operation : {'add', 'remove', 'remove_all'}, default='add'
        ``create`` or ``remove`` operations for the segment's customers, or a single
        ``removeAll`` operation clearing the whole list (the segment's members are then
        not sent, and the report counts none).
    consent : str or list of str or None, default='consent_ads'
        Consent flag(s) every exported customer must have; ``None`` skips the check.
    ad_user_data, ad_personalization : str, default='GRANTED'
        The job's consent (``GRANTED``, ``UNKNOWN`` or ``UNSPECIFIED``). Customer Match
        refuses ``DENIED`` for the whole job.
    suppression : iterable of str, optional
        Customer ids never to export.
    default_region : str, default='US'
        Country of phone numbers without an international prefix when the profile has
        no country.
    max_identifiers : int, default=100000
        Identifiers per ``:addOperations`` request, at most Google's 100,000.

    Returns
    -------
    AudienceExport
        ``:create``, the ``:addOperations`` batches and ``:run``. Customers with no
        e-mail, phone or complete address are excluded as ``no_usable_identifier``.

    Raises
    ------
    ValueError
        On a ``DENIED`` consent, an unknown operation or a limit above Google's.
    """
    validate_params("build_google_ads", locals(), _PARAMETERS)
    consent_block = _job_consent(ad_user_data, ad_personalization)
    cid = str(customer_id).replace("-", "").strip()
    resource = (
        f"customers/{cid}/offlineUserDataJobs/{JOB_PLACEHOLDER if job_id is None else job_id}"
    )
    create = {
        "job": {
            "type": "CUSTOMER_MATCH_USER_LIST",
            "customerMatchUserListMetadata": {
                "userList": f"customers/{cid}/userLists/{user_list_id}",
                "consent": consent_block,
            },
        }
    }
    name = _segment_name(segmentation, segment)

    if operation == "remove_all":
        bodies = [({"enablePartialFailure": True, "operations": [{"removeAll": True}]}, 0)]
        report = ExportReport(
            platform="google_ads",
            segment=name,
            operation=operation,
            members=0,
            exported=0,
            excluded={},
            identifiers={},
            invalid_values={},
            batches=3,
            description=segment_description(segmentation, segment),
        )
        return AudienceExport(_requests(cid, resource, create, bodies), report)

    profiles, excluded, members = eligible_members(
        segmentation, segment, customers, consent=consent, suppression=suppression
    )
    users, invalid, unknown_countries = _user_identifiers(profiles, default_region)
    usable = [i for i, user in enumerate(users) if user]
    excluded[NO_IDENTIFIER] = len(users) - len(usable)
    kind = "create" if operation == "add" else "remove"
    bodies = [
        (
            {
                "enablePartialFailure": True,
                "operations": [{kind: {"userIdentifiers": users[i]}} for i in part],
            },
            len(part),
        )
        for part in _pack([len(users[i]) for i in usable], usable, max_identifiers)
    ]
    identifiers = {
        key: sum(1 for i in usable if any(key in u for u in users[i]))
        for key in ("hashedEmail", "hashedPhoneNumber", "addressInfo")
    }
    requests = _requests(cid, resource, create, bodies) if bodies else ()
    report = ExportReport(
        platform="google_ads",
        segment=name,
        operation=operation,
        members=members,
        exported=len(usable),
        excluded=excluded,
        identifiers=identifiers,
        invalid_values=invalid,
        batches=len(requests),
        unknown_countries=unknown_countries,
        description=segment_description(segmentation, segment),
    )
    return AudienceExport(requests, report)


def _job_consent(ad_user_data: str, ad_personalization: str) -> dict[str, str]:
    block = {"adUserData": ad_user_data, "adPersonalization": ad_personalization}
    denied = [field for field, value in block.items() if value == "DENIED"]
    if denied:
        msg = (
            f"Customer Match refuses a job whose consent {denied} is DENIED "
            "(CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS). Export only the customers who "
            "granted it (consent='consent_ads') with ad_user_data and "
            "ad_personalization 'GRANTED'."
        )
        raise ValueError(msg)
    return block


def _requests(
    cid: str, resource: str, create: dict[str, Any], bodies: list[tuple[dict[str, Any], int]]
) -> tuple[Request, ...]:
    first = Request(
        platform="google_ads",
        method="POST",
        path=f"/{API_VERSION}/customers/{cid}/offlineUserDataJobs:create",
        body=create,
        batch=0,
    )
    middle = [
        Request(
            platform="google_ads",
            method="POST",
            path=f"/{API_VERSION}/{resource}:addOperations",
            body=body,
            n_customers=n,
            batch=number + 1,
        )
        for number, (body, n) in enumerate(bodies)
    ]
    last = Request(
        platform="google_ads",
        method="POST",
        path=f"/{API_VERSION}/{resource}:run",
        body={},
        batch=len(bodies) + 1,
    )
    return (first, *middle, last)


def _pack(sizes: list[int], items: list[int], limit: int) -> list[list[int]]:
    """Consecutive groups of ``items`` whose ``sizes`` sum to at most ``limit``."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for size, item in zip(sizes, items, strict=True):
        if current and total + size > limit:
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        groups.append(current)
    return groups


def _user_identifiers(
    profiles: pd.DataFrame, default_region: str
) -> tuple[list[list[dict[str, Any]]], dict[str, int], dict[str, int]]:
    """Each profile's ``userIdentifiers``, the invalid value counts per column and the
    customers per country value that names no country."""
    n = len(profiles)
    invalid: dict[str, int] = {}

    def column(name: str) -> pd.Series | None:
        if name not in profiles.columns:
            return None
        return profiles[name].reset_index(drop=True)

    def rule(name: str, function: Any, hashable: bool) -> pd.Series:
        raw = column(name)
        if raw is None:
            return pd.Series(pd.NA, index=range(n), dtype="string")
        result = function(raw)
        normalised, bad = ids.prehashed(raw, result) if hashable else result
        invalid[name] = int(bad.sum())
        return normalised

    countries_raw = column("country")
    email = ids.sha256_hex(rule("email", ids.email, True))
    phone = ids.sha256_hex(
        rule("phone", lambda v: ids.phone_e164(v, countries_raw, default_region), True)
    )
    first = ids.sha256_hex(rule("first_name", _google_name, True))
    last = ids.sha256_hex(rule("last_name", _google_name, True))
    country = rule("country", ids.country, False).str.upper()
    unknown_countries = (
        ids.unrecognised(countries_raw, ids.country(countries_raw)[1])
        if countries_raw is not None
        else {}
    )
    postal = rule(
        "postal_code",
        lambda v: _google_postal(v, countries_raw),
        False,
    )

    users: list[list[dict[str, Any]]] = []
    values = zip(email, phone, first, last, country, postal, strict=True)
    for e, p, fn, ln, cc, zc in values:
        user: list[dict[str, Any]] = []
        if pd.notna(e):
            user.append({"hashedEmail": e})
        if pd.notna(p):
            user.append({"hashedPhoneNumber": p})
        if pd.notna(fn) and pd.notna(ln) and pd.notna(cc) and pd.notna(zc):
            address = {
                "hashedFirstName": fn,
                "hashedLastName": ln,
                "countryCode": cc,
                "postalCode": zc,
            }
            user.append({"addressInfo": address})
        users.append(user[:MAX_PER_USER])
    return users, invalid, unknown_countries


def _google_name(values: pd.Series) -> ids.Result:
    """Names for Customer Match: trimmed and lowercased (Google's rule), spaces kept."""
    s = values.astype(object)
    present = s.notna() & s.map(lambda v: isinstance(v, str) and bool(v.strip()))
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    out[present] = s[present].str.strip().str.normalize("NFC").str.lower().astype("string")
    return out, np.zeros(len(s), dtype=bool)


def _google_postal(values: pd.Series, countries: pd.Series | None) -> ids.Result:
    """Postal codes sent in clear: US ZIPs as five digits, others trimmed, uppercase."""
    normalised, invalid = ids.postal_code(values, countries)
    codes = (
        ids.country(countries)[0].reset_index(drop=True)
        if countries is not None
        else pd.Series(pd.NA, index=range(len(values)), dtype="string")
    )
    s = values.reset_index(drop=True).astype(object)
    other = s.map(lambda v: " ".join(v.split()).upper() if isinstance(v, str) else None)
    is_us = (codes == "us").fillna(False).to_numpy(dtype=bool)
    result = normalised.reset_index(drop=True).where(is_us | normalised.isna(), other)
    return result.astype("string"), invalid


_CREATE = "offlineUserDataJobs:create"


@dataclass(frozen=True)
class _GoogleAdsAuth:
    """OAuth bearer token plus the developer token (and the manager account, if any)."""

    def headers(self, credentials: CredentialValues) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {credentials.token}",
            "developer-token": str(credentials.developer_token),
        }
        if credentials.login_customer_id:
            headers["login-customer-id"] = str(credentials.login_customer_id).replace("-", "")
        return headers

    def secrets(self, credentials: CredentialValues) -> tuple[str, ...]:
        return tuple(v for v in (credentials.token, credentials.developer_token) if v)


def _check_credentials(credentials: CredentialValues) -> str | None:
    if credentials.developer_token:
        return None
    return (
        "Google Ads needs a developer token: pass developer_token= or set "
        "SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN."
    )


def _creates(path: str) -> bool:
    """``:create`` makes a job: sent again blindly, it would make a second one."""
    return path.endswith(_CREATE)


def _job_from(path: str, body: Any) -> str | None:
    """The job id of a ``:create`` answer (``customers/1/offlineUserDataJobs/9`` → ``9``)."""
    if not path.endswith(_CREATE) or not isinstance(body, dict):
        return None
    job = str(body.get("resourceName", "")).rsplit("/", 1)[-1]
    return job or None


DESTINATION = Destination(
    name="google_ads",
    title="Google Ads Customer Match",
    builder=build_google_ads,
    docs_page="google-ads.md",
    base_url="https://googleads.googleapis.com",
    auth=_GoogleAdsAuth(),
    environment={
        "token": "SEGMENTKIT_GOOGLE_ADS_TOKEN",
        "developer_token": "SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN",
        "login_customer_id": "SEGMENTKIT_GOOGLE_ADS_LOGIN_CUSTOMER_ID",
    },
    optional=frozenset({"login_customer_id"}),
    check_credentials=_check_credentials,
    rate_per_second=None,  # throttled per developer token and account, no fixed number
    batch_limits={"identifiers": MAX_IDENTIFIERS, "identifiers_per_user": MAX_PER_USER},
    error_readers=(error_object_message,),
    creates=_creates,
    created_resource=_job_from,
    duplicate_effect="the list is a set keyed on the hashes",
)
