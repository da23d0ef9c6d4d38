"""Marketing destinations: exact audience payloads for ad and e-mail platforms.

Each ``build_*`` function turns one segment of a :class:`~segmentkit.Segmentation`
and the customers' profiles into the requests the platform accepts, in batches within
its limits, with identifiers normalised and hashed as the platform specifies, plus an
:class:`ExportReport` that counts every member as exported or excluded by reason
(no profile, suppressed, no consent, no usable identifier). Building sends nothing.
"""

from segmentkit.errors import JournalLockedError, PushError
from segmentkit.exporters._audience import AudienceExport, ExportReport, Request
from segmentkit.exporters._braze import build_braze
from segmentkit.exporters._google_ads import build_google_ads
from segmentkit.exporters._hubspot import build_hubspot, hubspot_membership_requests
from segmentkit.exporters._klaviyo import build_klaviyo
from segmentkit.exporters._mailchimp import build_mailchimp
from segmentkit.exporters._meta import build_meta
from segmentkit.exporters._push import (
    Credentials,
    PushSummary,
    TokenBucket,
    push,
)
from segmentkit.timeline._diff import membership_changes, restrict

__all__ = [
    "AudienceExport",
    "Credentials",
    "ExportReport",
    "JournalLockedError",
    "PushError",
    "PushSummary",
    "Request",
    "TokenBucket",
    "build_braze",
    "build_google_ads",
    "build_hubspot",
    "build_klaviyo",
    "build_mailchimp",
    "build_meta",
    "hubspot_membership_requests",
    "membership_changes",
    "push",
    "restrict",
]
