"""Braze: the segment name added to (or removed from) an array custom attribute.

Braze segments are defined in its dashboard from user attributes, so a segment is
pushed by ``POST /users/track`` requests that add the segment's name to an array
attribute (``segmentkit_segments`` by default) of each user, keyed by ``external_id``
(the customer id). The current Braze limit is 75 objects per request in total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._common._params import InstanceOf, Interval, OneOf, validate_params
from segmentkit.contracts._customers import Customers
from segmentkit.exporters._audience import (
    NO_IDENTIFIER,
    AudienceExport,
    Request,
    batched,
    eligible_members,
)
from segmentkit.exporters._destination import (
    CredentialValues,
    Destination,
    TokenAuth,
    error_list_messages,
    item_errors,
    top_level_message,
)
from segmentkit.exporters._identifiers import email as normalise_email
from segmentkit.exporters._shared import (
    check_external_ids,
    make_report,
    prediction_properties,
    property_value,
    segment_description,
    segment_name,
    text_column,
)
from segmentkit.results._segmentation import Segmentation

__all__ = ["build_braze"]

#: Objects (attributes + events + purchases) per ``/users/track`` request.
BRAZE_MAX_OBJECTS = 75

_JSON = {"Content-Type": "application/json"}

_PARAMETERS: dict[str, list[Any]] = {
    "operation": [OneOf("add", "remove")],
    "attribute": [InstanceOf((str,), "a str")],
    "batch_size": [Interval(int, 1, BRAZE_MAX_OBJECTS)],
    "allow_personal_external_id": [InstanceOf((bool,), "True or False")],
}


def build_braze(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    operation: str = "add",
    consent: str | Sequence[str] | None = "consent_email",
    suppression: Iterable[str] | None = None,
    attribute: str = "segmentkit_segments",
    batch_size: int = BRAZE_MAX_OBJECTS,
    allow_personal_external_id: bool = False,
    predictions: Any = None,
) -> AudienceExport:
    """Braze ``/users/track`` requests tagging a segment's members with its name.

    ``operation='add'`` sends, per member, ``external_id``, ``email`` (trimmed and
    lowercased, when valid), ``first_name`` (when known) and ``{attribute: {"add":
    [segment name]}}``; Braze creates users it does not know. ``operation='remove'``
    sends only ``external_id``, ``{attribute: {"remove": [...]}}`` and
    ``_update_existing_only: true`` so no user is created and no data point is spent
    on profile fields.

    Parameters
    ----------
    segmentation : Segmentation
        Where the segment comes from.
    segment : str or int
        Segment name or id.
    customers : Customers
        Profiles (the customer id is the Braze ``external_id``).
    operation : {'add', 'remove'}, default='add'
        What to do.
    consent : str or list of str or None, default='consent_email'
        Consent flags every exported customer must have.
    suppression : iterable of str, optional
        Customer ids never to export.
    attribute : str, default='segmentkit_segments'
        Array custom attribute holding segment names.
    batch_size : int, default=75
        User objects per request (Braze's current limit is 75 in total).
    allow_personal_external_id : bool, default=False
        Send customer ids that look like an e-mail address or a phone number as
        ``external_id`` anyway. Without it such ids are refused with a
        :class:`~segmentkit.errors.ContractError` that counts them (never shows them).
    predictions : CustomerFeatures or pandas.DataFrame, optional
        Per-customer predictions (from :func:`segmentkit.add_predictions`, or the file
        of ``segmentkit predict``): each exported profile gets
        ``segmentkit_predicted_clv`` (money, to the cent) and ``segmentkit_churn_risk``
        (1 - ``p_alive``, 3 decimals) as custom attributes (numbers; each spends a
        Braze data point), with ``operation='add'`` only; customers without a
        prediction get neither. Next-best items (``next_best_1`` … from
        :func:`segmentkit.next_best_items`, alone or joined to the predictions) go as
        string attributes ``segmentkit_next_best_1`` …

    Returns
    -------
    AudienceExport
        The requests and the report.

    Raises
    ------
    ValueError
        On an unknown operation, a bad ``batch_size`` or an attribute name that is a
        Braze profile field.
    ContractError
        Customer ids look like e-mails or phones and ``allow_personal_external_id`` is
        not set.
    """
    validate_params("build_braze", locals(), _PARAMETERS)
    if attribute in {"external_id", "email", "first_name", "_update_existing_only"}:
        msg = f"attribute={attribute!r} is a Braze profile field; name a custom attribute."
        raise ValueError(msg)
    name = segment_name(segmentation, segment)
    frame, excluded, members = eligible_members(
        segmentation, segment, customers, consent=consent, suppression=suppression
    )
    external = frame["customer_id"].astype("string")
    usable = (external.notna() & (external != "")).fillna(False).to_numpy()
    excluded[NO_IDENTIFIER] = int((~usable).sum())
    check_external_ids(
        external[usable],
        frame[usable],
        platform="Braze",
        field="external_id",
        allowed=allow_personal_external_id,
    )
    emails, bad_email = normalise_email(text_column(frame, "email"))
    first_names = text_column(frame, "first_name")
    predicted = prediction_properties(predictions, frame["customer_id"])
    rows = np.flatnonzero(usable)

    objects: list[dict[str, Any]] = []
    for i in rows:
        item: dict[str, Any] = {"external_id": str(external.iat[i])}
        if operation == "add":
            if pd.notna(emails.iat[i]):
                item["email"] = emails.iat[i]
            if pd.notna(first_names.iat[i]):
                item["first_name"] = first_names.iat[i]
            item[attribute] = {"add": [name]}
            for prop, values in predicted.items():
                value = property_value(prop, values, i)
                if value is not None:
                    item[prop] = value
        else:
            item[attribute] = {"remove": [name]}
            item["_update_existing_only"] = True
        objects.append(item)

    requests = [
        Request(
            platform="braze",
            method="POST",
            path="/users/track",
            body={"attributes": objects[part]},
            headers=_JSON,
            n_customers=part.stop - part.start,
        )
        for part in batched(len(objects), batch_size)
    ]
    identifiers = {"external_id": len(rows)}
    if operation == "add":
        identifiers["email"] = int(emails.notna().to_numpy()[usable].sum())
    invalid = {"email": int(np.sum(bad_email))}
    return make_report(
        "braze",
        name,
        operation,
        members,
        excluded,
        len(rows),
        identifiers,
        invalid,
        requests,
        description=segment_description(segmentation, name),
    )


def _base_url(credentials: CredentialValues) -> str:
    """``iad-01`` → ``rest.iad-01.braze.com``; an instance with a dot is a host."""
    instance = str(credentials.instance).strip().removeprefix("rest.")
    host = instance if "." in instance else f"{instance}.braze.com"
    return f"https://rest.{host}"


def _check_credentials(credentials: CredentialValues) -> str | None:
    if credentials.base_url is not None or credentials.instance:
        return None
    return (
        "Braze needs its REST instance: pass instance='iad-01' (or base_url=) or "
        "set SEGMENTKIT_BRAZE_INSTANCE."
    )


DESTINATION = Destination(
    name="braze",
    title="Braze",
    builder=build_braze,
    docs_page="braze.md",
    base_url=_base_url,
    auth=TokenAuth("Bearer"),
    environment={"token": "SEGMENTKIT_BRAZE_API_KEY", "instance": "SEGMENTKIT_BRAZE_INSTANCE"},
    url_fields=frozenset({"instance"}),
    check_credentials=_check_credentials,
    rate_per_second=3000 / 3,  # /users/track: 3,000 requests per 3 seconds
    batch_limits={"objects": BRAZE_MAX_OBJECTS},
    error_readers=(error_list_messages, top_level_message),
    refused_items=item_errors,
    duplicate_effect="the same array value again; data points are spent again",
)
