"""HubSpot: contacts upserted by e-mail, then static list membership by record id.

HubSpot lists take contact record ids, which only HubSpot knows, so an export is two
steps:

1. :func:`build_hubspot` builds ``POST /crm/v3/objects/contacts/batch/upsert`` requests
   (at most 100 inputs each, ``idProperty: 'email'``) that create or update the
   contacts and set ``segmentkit_segment`` to the segment name (a custom contact
   property to create once in HubSpot). For ``operation='remove'`` it builds
   ``POST /crm/v3/objects/contacts/batch/read`` look-ups by e-mail instead, which
   return the record ids without creating or changing any contact.
2. The push client collects the ``id`` of each result and passes them to
   :func:`hubspot_membership_requests`, which builds ``PUT
   /crm/v3/lists/{list_id}/memberships/add-and-remove`` requests. HubSpot ignores ids
   that are missing or already members, so repeating them is harmless.

E-mails are sent trimmed and lowercased, phones in E.164; customers sharing an e-mail
are one HubSpot contact and are sent once (HubSpot refuses duplicate ids in a batch).
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
from segmentkit.exporters._destination import Destination, TokenAuth, top_level_message
from segmentkit.exporters._identifiers import email as normalise_email
from segmentkit.exporters._shared import (
    make_report,
    phones,
    prediction_properties,
    property_text,
    property_value,
    segment_description,
    segment_name,
    text_column,
    unique_by,
)
from segmentkit.results._segmentation import Segmentation

__all__ = ["build_hubspot", "hubspot_membership_requests"]

#: Inputs per CRM batch request (HubSpot's convention for batch endpoints).
HUBSPOT_MAX_INPUTS = 100
#: Record ids per membership request (the legacy lists API allowed 500; the v3 limit
#: is not published, so stay there).
HUBSPOT_MAX_MEMBERSHIP_IDS = 500

_JSON = {"Content-Type": "application/json"}

_PARAMETERS: dict[str, list[Any]] = {
    "list_id": [InstanceOf((str, int), "a str or an int"), NONE],
    "operation": [OneOf("add", "remove")],
    "default_region": [InstanceOf((str,), "a str")],
    "batch_size": [Interval(int, 1, HUBSPOT_MAX_INPUTS)],
}
_MEMBERSHIP_PARAMETERS: dict[str, list[Any]] = {
    "list_id": [InstanceOf((str, int), "a str or an int")],
    "operation": [OneOf("add", "remove")],
    "batch_size": [Interval(int, 1, None)],
}


def build_hubspot(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    list_id: str | int | None = None,
    operation: str = "add",
    consent: str | Sequence[str] | None = "consent_email",
    suppression: Iterable[str] | None = None,
    default_region: str = "US",
    batch_size: int = HUBSPOT_MAX_INPUTS,
    predictions: Any = None,
) -> AudienceExport:
    """HubSpot contact requests for a segment: the first step of a list export.

    ``operation='add'`` upserts each member by e-mail with ``firstname``, ``lastname``,
    ``phone`` (E.164) and ``segmentkit_segment`` (the segment name); the responses give
    the record ids to pass to :func:`hubspot_membership_requests` when ``list_id`` is
    set. ``operation='remove'`` (needs ``list_id``) only reads the contacts by e-mail to
    get their record ids for the ``'remove'`` membership requests.

    Parameters
    ----------
    segmentation : Segmentation
        Where the segment comes from.
    segment : str or int
        Segment name or id.
    customers : Customers
        Profiles with ``email`` (required to export), names and phone.
    list_id : str or int, optional
        HubSpot static list (``MANUAL`` or ``SNAPSHOT``) the membership step targets;
        recorded nowhere in these requests (record ids are needed first).
    operation : {'add', 'remove'}, default='add'
        What to do.
    consent : str or list of str or None, default='consent_email'
        Consent flags every exported customer must have.
    suppression : iterable of str, optional
        Customer ids never to export.
    default_region : str, default='US'
        Region for phone numbers without a country code or profile ``country``.
    batch_size : int, default=100
        Contacts per request (at most 100).
    predictions : CustomerFeatures or pandas.DataFrame, optional
        Per-customer predictions (from :func:`segmentkit.add_predictions`, or the file
        of ``segmentkit predict``): each exported profile gets
        ``segmentkit_predicted_clv`` (money, to the cent) and ``segmentkit_churn_risk``
        (1 - ``p_alive``, 3 decimals) as contact properties (HubSpot takes text:
        ``'123.45'``; create them once as number properties), with ``operation='add'``
        only; customers without a prediction get neither. Next-best items
        (``next_best_1`` … from :func:`segmentkit.next_best_items`, alone or joined
        to the predictions) go as text properties ``segmentkit_next_best_1`` …

    Returns
    -------
    AudienceExport
        The requests and the report; customers without a valid e-mail are excluded as
        ``no_usable_identifier``.

    Raises
    ------
    ValueError
        On an unknown operation, a bad ``batch_size`` or ``'remove'`` without a list.
    """
    validate_params("build_hubspot", locals(), _PARAMETERS)
    if operation == "remove" and list_id is None:
        msg = (
            "HubSpot remove takes contacts out of a static list; pass list_id=... "
            "(segmentkit never deletes contacts)."
        )
        raise ValueError(msg)
    name = segment_name(segmentation, segment)
    frame, excluded, members = eligible_members(
        segmentation, segment, customers, consent=consent, suppression=suppression
    )
    emails, bad_email = normalise_email(text_column(frame, "email"))
    phone_numbers, bad_phone = phones(frame, default_region)
    usable = emails.notna().to_numpy()
    excluded[NO_IDENTIFIER] = int((~usable).sum())
    kept = frame[usable].reset_index(drop=True)
    kept_emails = emails[usable].reset_index(drop=True)
    kept_phones = phone_numbers[usable].reset_index(drop=True)
    first, counts = unique_by(kept_emails)
    predicted = prediction_properties(predictions, kept["customer_id"])
    fields = {
        "firstname": text_column(kept, "first_name"),
        "lastname": text_column(kept, "last_name"),
        "phone": kept_phones,
    }

    requests: list[Request] = []
    for part in batched(len(first), batch_size):
        body: dict[str, Any]
        if operation == "add":
            inputs = []
            for i in first[part]:
                properties: dict[str, Any] = {
                    k: str(v.iat[i]) for k, v in fields.items() if v.notna().iat[i]
                }
                properties["segmentkit_segment"] = name
                for prop, values in predicted.items():
                    value = property_value(prop, values, i)
                    if value is not None:
                        properties[prop] = property_text(prop, value)
                inputs.append(
                    {
                        "idProperty": "email",
                        "id": str(kept_emails.iat[i]),
                        "properties": properties,
                    }
                )
            path, body = "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}
        else:
            path = "/crm/v3/objects/contacts/batch/read"
            body = {
                "idProperty": "email",
                "inputs": [{"id": str(kept_emails.iat[i])} for i in first[part]],
                "properties": ["email"],
            }
        requests.append(
            Request(
                platform="hubspot",
                method="POST",
                path=path,
                body=body,
                headers=_JSON,
                n_customers=int(counts[part].sum()),
            )
        )
    sent_phone = kept_phones.notna().to_numpy()
    identifiers = {"email": int(usable.sum())}
    if operation == "add":
        identifiers["phone"] = int(sent_phone.sum())
    invalid = {"email": int(np.sum(bad_email)), "phone": int(np.sum(bad_phone))}
    return make_report(
        "hubspot", name, operation, members, excluded, int(usable.sum()), identifiers,
        invalid, requests,
        description=segment_description(segmentation, name),
    )  # fmt: skip


def hubspot_membership_requests(
    list_id: str | int,
    record_ids: Iterable[str | int],
    operation: str = "add",
    *,
    batch_size: int = HUBSPOT_MAX_MEMBERSHIP_IDS,
) -> tuple[Request, ...]:
    """The second step of a HubSpot list export: membership changes by record id.

    Builds ``PUT /crm/v3/lists/{list_id}/memberships/add-and-remove`` with
    ``{"recordIdsToAdd": [...], "recordIdsToRemove": []}`` (or the reverse), the form
    of the endpoint whose body is a JSON object. Duplicate ids are sent once.

    Parameters
    ----------
    list_id : str or int
        HubSpot list id (ILS id) of a ``MANUAL`` or ``SNAPSHOT`` list.
    record_ids : iterable of str or int
        Contact record ids returned by the upsert (or read) of :func:`build_hubspot`.
    operation : {'add', 'remove'}, default='add'
        Add the records to the list or remove them from it.
    batch_size : int, default=500
        Ids per request.

    Returns
    -------
    tuple of Request
        Numbered by ``batch``; ``n_customers`` counts the ids in each.
    """
    validate_params("hubspot_membership_requests", locals(), _MEMBERSHIP_PARAMETERS)
    ids = list(dict.fromkeys(str(r) for r in record_ids))
    requests = []
    for number, part in enumerate(batched(len(ids), batch_size)):
        chosen = ids[part]
        body = {
            "recordIdsToAdd": chosen if operation == "add" else [],
            "recordIdsToRemove": chosen if operation == "remove" else [],
        }
        requests.append(
            Request(
                platform="hubspot",
                method="PUT",
                path=f"/crm/v3/lists/{list_id}/memberships/add-and-remove",
                body=body,
                headers=_JSON,
                n_customers=len(chosen),
                batch=number,
            )
        )
    return tuple(requests)


DESTINATION = Destination(
    name="hubspot",
    title="HubSpot",
    builder=build_hubspot,
    docs_page="hubspot.md",
    base_url="https://api.hubapi.com",
    auth=TokenAuth("Bearer"),
    environment={"token": "SEGMENTKIT_HUBSPOT_TOKEN"},
    rate_per_second=190 / 10,  # private apps: 190 requests per 10 seconds
    batch_limits={"inputs": HUBSPOT_MAX_INPUTS, "membership_ids": HUBSPOT_MAX_MEMBERSHIP_IDS},
    error_readers=(top_level_message,),
    duplicate_effect="nothing: upsert by e-mail, list ids already members are ignored",
)
