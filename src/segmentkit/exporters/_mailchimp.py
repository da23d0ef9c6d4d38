"""Mailchimp: batch subscribe/update, static segment membership and member tags.

An export is made of, in this order:

1. ``POST /lists/{list_id}`` batch subscribe/update (``update_existing: true``), at most
   500 members per request — on ``operation='add'`` only;
2. with ``static_segment_id``, ``POST /lists/{list_id}/segments/{id}`` with
   ``members_to_add`` (or ``members_to_remove``), at most 500 e-mails per request;
3. with ``tag``, one ``POST /lists/{list_id}/members/{subscriber_hash}/tags`` per member
   setting the tag ``active`` (or ``inactive``); ``subscriber_hash`` is the MD5 hex of
   the lowercase e-mail, so no address appears in a URL.

E-mails are sent trimmed and lowercased; customers sharing an address are sent once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from segmentkit._common._params import NONE, InstanceOf, Interval, OneOf, validate_params
from segmentkit.contracts._customers import Customers
from segmentkit.exporters._audience import (
    NO_IDENTIFIER,
    AudienceExport,
    Request,
    batched,
    eligible_members,
)
from segmentkit.exporters._destination import (
    BasicAuth,
    CredentialValues,
    Destination,
    item_errors,
    top_level_message,
)
from segmentkit.exporters._identifiers import email as normalise_email
from segmentkit.exporters._identifiers import md5_hex
from segmentkit.exporters._shared import (
    make_report,
    segment_description,
    segment_name,
    text_column,
    unique_by,
)
from segmentkit.results._segmentation import Segmentation

__all__ = ["build_mailchimp"]

#: Members per batch subscribe call and e-mails per static segment call.
MAILCHIMP_MAX_MEMBERS = 500

_JSON = {"Content-Type": "application/json"}

_PARAMETERS: dict[str, list[Any]] = {
    "list_id": [InstanceOf((str,), "a str")],
    "static_segment_id": [InstanceOf((str, int), "a str or an int"), NONE],
    "operation": [OneOf("add", "remove")],
    "batch_size": [Interval(int, 1, MAILCHIMP_MAX_MEMBERS)],
    "tag": [InstanceOf((str,), "a str"), NONE],
}


def build_mailchimp(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    list_id: str,
    static_segment_id: str | int | None = None,
    operation: str = "add",
    consent: str | Sequence[str] | None = "consent_email",
    suppression: Iterable[str] | None = None,
    batch_size: int = MAILCHIMP_MAX_MEMBERS,
    tag: str | None = None,
) -> AudienceExport:
    """Mailchimp requests that put a segment's members on a list, a static segment, a tag.

    ``operation='add'`` upserts the members into the audience ``list_id`` (``status:
    'subscribed'`` — Mailchimp's batch endpoint requires a status, and re-subscribes
    existing members with it, which is why the default ``consent`` is the e-mail opt-in;
    ``first_name`` and ``last_name`` go to the ``FNAME`` and ``LNAME`` merge fields),
    then adds them to ``static_segment_id`` and tags them with ``tag`` when given.
    ``operation='remove'`` never unsubscribes or deletes: it removes the members from the
    static segment and sets the tag ``inactive``, so it needs one of the two.

    Parameters
    ----------
    segmentation : Segmentation
        Where the segment comes from.
    segment : str or int
        Segment name or id.
    customers : Customers
        Profiles with ``email`` (required to export) and names.
    list_id : str
        Mailchimp audience (list) id.
    static_segment_id : str or int, optional
        Static segment of that list to add the members to or remove them from.
    operation : {'add', 'remove'}, default='add'
        What to do.
    consent : str or list of str or None, default='consent_email'
        Consent flags every exported customer must have.
    suppression : iterable of str, optional
        Customer ids never to export.
    batch_size : int, default=500
        Members per batch subscribe or segment request (Mailchimp's maximum is 500).
    tag : str, optional
        Tag to set ``active`` (add) or ``inactive`` (remove) on each member.

    Returns
    -------
    AudienceExport
        The requests and the report; customers without a valid e-mail are excluded as
        ``no_usable_identifier``.

    Raises
    ------
    ValueError
        On an unknown operation, a bad ``batch_size``, or ``'remove'`` with neither a
        static segment nor a tag.
    """
    validate_params("build_mailchimp", locals(), _PARAMETERS)
    if operation == "remove" and static_segment_id is None and tag is None:
        msg = (
            "Mailchimp remove takes members out of a static segment or a tag; pass "
            "static_segment_id=... or tag=... (segmentkit never unsubscribes anyone)."
        )
        raise ValueError(msg)
    name = segment_name(segmentation, segment)
    frame, excluded, members = eligible_members(
        segmentation, segment, customers, consent=consent, suppression=suppression
    )
    emails, bad_email = normalise_email(text_column(frame, "email"))
    usable = emails.notna().to_numpy()
    excluded[NO_IDENTIFIER] = int((~usable).sum())
    kept = frame[usable].reset_index(drop=True)
    kept_emails = emails[usable].reset_index(drop=True)
    first, counts = unique_by(kept_emails)
    addresses = [str(kept_emails.iat[i]) for i in first]
    first_names = text_column(kept, "first_name")
    last_names = text_column(kept, "last_name")

    requests: list[Request] = []
    if operation == "add":
        for part in batched(len(first), batch_size):
            items = []
            for i in first[part]:
                item: dict[str, Any] = {
                    "email_address": str(kept_emails.iat[i]),
                    "status": "subscribed",
                }
                merge = {}
                if first_names.notna().iat[i]:
                    merge["FNAME"] = first_names.iat[i]
                if last_names.notna().iat[i]:
                    merge["LNAME"] = last_names.iat[i]
                if merge:
                    item["merge_fields"] = merge
                items.append(item)
            requests.append(
                Request(
                    platform="mailchimp",
                    method="POST",
                    path=f"/lists/{list_id}",
                    body={"members": items, "update_existing": True},
                    headers=_JSON,
                    n_customers=int(counts[part].sum()),
                )
            )
    if static_segment_id is not None:
        for part in batched(len(first), batch_size):
            chosen = addresses[part]
            body = {
                "members_to_add": chosen if operation == "add" else [],
                "members_to_remove": chosen if operation == "remove" else [],
            }
            requests.append(
                Request(
                    platform="mailchimp",
                    method="POST",
                    path=f"/lists/{list_id}/segments/{static_segment_id}",
                    body=body,
                    headers=_JSON,
                    n_customers=int(counts[part].sum()),
                )
            )
    if tag is not None:
        status = "active" if operation == "add" else "inactive"
        hashes = md5_hex(addresses) if addresses else []
        for subscriber_hash, n in zip(list(hashes), counts, strict=True):
            requests.append(
                Request(
                    platform="mailchimp",
                    method="POST",
                    path=f"/lists/{list_id}/members/{subscriber_hash}/tags",
                    body={"tags": [{"name": tag, "status": status}]},
                    headers=_JSON,
                    n_customers=int(n),
                )
            )
    identifiers = {"email_address": int(usable.sum())}
    invalid = {"email_address": int(np.sum(bad_email))}
    return make_report(
        "mailchimp", name, operation, members, excluded, int(usable.sum()), identifiers,
        invalid, requests,
        description=segment_description(segmentation, name),
    )  # fmt: skip


def _base_url(credentials: CredentialValues) -> str:
    """The data centre is the API key's suffix: ``...-us19`` → ``us19.api.mailchimp.com``."""
    dc = credentials.token.rsplit("-", 1)[-1]
    return f"https://{dc}.api.mailchimp.com/3.0"


def _check_credentials(credentials: CredentialValues) -> str | None:
    if credentials.base_url is not None or "-" in credentials.token:
        return None
    return (
        "A Mailchimp API key ends with its data centre ('...-us19'); this one has "
        "none. Pass base_url='https://<dc>.api.mailchimp.com/3.0'."
    )


DESTINATION = Destination(
    name="mailchimp",
    title="Mailchimp",
    builder=build_mailchimp,
    docs_page="mailchimp.md",
    base_url=_base_url,
    auth=BasicAuth("anystring"),
    environment={"token": "SEGMENTKIT_MAILCHIMP_API_KEY"},
    check_credentials=_check_credentials,
    rate_per_second=10.0,  # 10 simultaneous connections per user
    batch_limits={"members": MAILCHIMP_MAX_MEMBERS},
    error_readers=(top_level_message,),
    refused_items=item_errors,
    duplicate_effect="nothing: upsert, segment and tag calls are idempotent",
)
