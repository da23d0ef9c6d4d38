"""What every marketing destination shares: who is exported, and the account of it.

A builder turns one segment of a :class:`~segmentkit.Segmentation` plus the customers'
profiles into :class:`Request` descriptions (method, path, JSON body, never secrets)
cut into batches the platform accepts, and an :class:`ExportReport` that counts every
member of the segment as exported or excluded by reason.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from segmentkit._common._files import PathLike, write_atomic
from segmentkit._common._terminal import TERMINAL_WIDTH
from segmentkit.contracts._customers import Customers
from segmentkit.results._segmentation import Segmentation

__all__ = ["AudienceExport", "ExportReport", "Request", "eligible_members"]

Operation = Literal["add", "remove", "replace"]

#: Exclusion reasons, in the order they are checked (each customer counts once).
NO_PROFILE = "no_profile"
SUPPRESSED = "suppressed"
NO_CONSENT = "no_consent"
NO_IDENTIFIER = "no_usable_identifier"


@dataclass(frozen=True)
class Request:
    """One HTTP request to a platform, without credentials.

    Parameters
    ----------
    platform : str
        ``'meta'``, ``'google_ads'``, ``'klaviyo'``, ``'mailchimp'``, ``'hubspot'`` or
        ``'braze'``.
    method : str
        HTTP method.
    path : str
        Path (and query) relative to the platform's API base URL.
    body : dict
        JSON body.
    headers : dict of str to str, default={}
        Non-secret headers (API version, content type). Authentication is added by the
        push client from the environment, never stored here.
    n_customers : int, default=0
        Customers this request carries.
    batch : int, default=0
        Position of the request in its export, from 0.
    """

    platform: str
    method: str
    path: str
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    n_customers: int = 0
    batch: int = 0

    def __repr__(self) -> str:
        # A body holds e-mails and phones in clear for the CRM tools: never shown here.
        return (
            f"Request(platform={self.platform!r}, method={self.method!r}, "
            f"path={self.path!r}, batch={self.batch}, n_customers={self.n_customers}, "
            f"body=<{len(self.body)} key(s), hidden>)"
        )

    @property
    def key(self) -> str:
        """Content hash of the request: identical requests share it (idempotency key)."""
        text = json.dumps(
            [self.platform, self.method, self.path, self.body], sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The request as plain JSON-ready data.

        Returns
        -------
        dict
            ``platform, method, path, headers, body, n_customers, batch, key``.
        """
        return {
            "platform": self.platform,
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.body,
            "n_customers": self.n_customers,
            "batch": self.batch,
            "key": self.key,
        }


@dataclass(frozen=True)
class ExportReport:
    """Every member of the exported segment, counted as exported or excluded by reason.

    ``members == exported + sum(excluded.values())`` always holds.

    Parameters
    ----------
    platform : str
        Destination.
    segment : str
        Segment name.
    operation : str
        ``'add'``, ``'remove'`` or ``'replace'``.
    members : int
        Customers in the segment.
    exported : int
        Customers sent in at least one request.
    excluded : dict of str to int
        Customers left out, by reason (no profile, suppressed, no consent, no usable
        identifier).
    identifiers : dict of str to int
        Exported customers carrying each match key (e.g. ``{'EMAIL': 2, 'PHONE': 1}``).
    invalid_values : dict of str to int
        Identifier values dropped because they could not be normalised (an e-mail
        without ``@``), by identifier; the customer may still be exported on others.
    batches : int
        Requests built.
    unknown_countries : dict of str to int, default={}
        Country values that name no ISO 3166 country (``'European Community'``,
        ``'Unspecified'``), with the customers holding each: left out of the payload
        (the rest of the customer's identifiers are still sent). Values that look like
        an e-mail or phone are shown as ``'<redacted>'``.
    description : str, default=''
        What the segment's customers have in common, in words: the segment's
        description, as the catalog, :meth:`Segmentation.summary
        <segmentkit.Segmentation.summary>` and the report show it. Paste it into the
        audience's description on the platform.
    """

    platform: str
    segment: str
    operation: str
    members: int
    exported: int
    excluded: Mapping[str, int]
    identifiers: Mapping[str, int]
    invalid_values: Mapping[str, int]
    batches: int
    unknown_countries: Mapping[str, int] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.exported + sum(self.excluded.values()) != self.members:
            msg = (
                f"Export report does not add up: {self.members} members != {self.exported} "
                f"exported + {dict(self.excluded)} excluded. This is a bug in segmentkit."
            )
            raise AssertionError(msg)

    def to_frame(self) -> pd.DataFrame:
        """One row per outcome: exported and each exclusion reason.

        Returns
        -------
        pandas.DataFrame
            Columns ``platform, segment, outcome, reason, customers``.
        """
        rows = [("exported", "", self.exported)]
        rows += [("excluded", reason, n) for reason, n in self.excluded.items()]
        frame = pd.DataFrame(rows, columns=["outcome", "reason", "customers"])
        frame.insert(0, "segment", self.segment)
        frame.insert(0, "platform", self.platform)
        return frame

    def __str__(self) -> str:
        lines = [
            f"{self.platform} {self.operation} '{self.segment}': {self.members} members, "
            f"{self.exported} exported in {self.batches} request(s)"
        ]
        if self.description:
            lines += textwrap.wrap(
                f"who: {self.description}",
                TERMINAL_WIDTH,
                initial_indent="  ",
                subsequent_indent="    ",
            )
        lines += [f"  - excluded, {reason}: {n}" for reason, n in self.excluded.items() if n]
        if self.identifiers:
            keys = ", ".join(f"{k} {v}" for k, v in self.identifiers.items())
            lines.append(f"  match keys: {keys}")
        invalid = {k: v for k, v in self.invalid_values.items() if v}
        if invalid:
            shown = ", ".join(f"{k} {v}" for k, v in invalid.items())
            lines.append(f"  values dropped as invalid: {shown}")
        if self.unknown_countries:
            shown = ", ".join(f"{k!r} {v}" for k, v in self.unknown_countries.items())
            lines.append(
                f"  countries naming no ISO 3166 country, left out: {shown} "
                "(write an ISO code or a country name to send them)"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class AudienceExport:
    """The requests of one export and its report.

    Parameters
    ----------
    requests : tuple of Request
        In sending order.
    report : ExportReport
        The account of the segment's members.
    """

    def __repr__(self) -> str:
        # Counts and routing only: the requests' bodies carry personal data.
        batches = (
            f"{self.requests[0].batch}..{self.requests[-1].batch}" if self.requests else "none"
        )
        return (
            f"AudienceExport(platform={self.report.platform!r}, "
            f"segment={self.report.segment!r}, operation={self.report.operation!r}, "
            f"requests={len(self.requests)}, batches={batches}, "
            f"customers={sum(r.n_customers for r in self.requests)})"
        )

    requests: tuple[Request, ...]
    report: ExportReport

    @overload
    def to_json(self, path: None = None) -> str: ...

    @overload
    def to_json(self, path: PathLike) -> Path: ...

    def to_json(self, path: PathLike | None = None) -> str | Path:
        """All requests and the report as one JSON document, returned or written.

        Never holds secrets; identifiers are as each platform takes them: hashed for the
        ad platforms, raw for the e-mail and CRM tools (so a file for those holds
        personal data: store it accordingly).

        Parameters
        ----------
        path : str or os.PathLike, optional
            File to write, atomically (a complete file or the previous one, never half of
            one), as :meth:`Segmentation.to_json <segmentkit.Segmentation.to_json>` does;
            its folder must exist. Without it, the document is returned.

        Returns
        -------
        str or pathlib.Path
            ``{"report": ..., "requests": [...]}`` as text, or the path written.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from segmentkit.exporters import AudienceExport, ExportReport
        >>> report = ExportReport(platform="braze", segment="VIP", operation="add",
        ...     members=0, exported=0, excluded={}, identifiers={}, invalid_values={},
        ...     batches=0)
        >>> export = AudienceExport(requests=(), report=report)
        >>> import json
        >>> sorted(json.loads(export.to_json()))
        ['report', 'requests']
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> export.to_json(folder / "braze-vip.json").name
        'braze-vip.json'
        """
        report = {
            k: (dict(v) if isinstance(v, Mapping) else v) for k, v in vars(self.report).items()
        }
        text = json.dumps(
            {"report": report, "requests": [r.to_dict() for r in self.requests]},
            indent=1,
            default=str,
        )
        if path is None:
            return text

        def write(temporary: Path) -> None:
            temporary.write_text(text, encoding="utf-8")

        return write_atomic(path, write)


def eligible_members(
    segmentation: Segmentation,
    segment: str | int,
    customers: Customers,
    *,
    consent: str | Sequence[str] | None,
    suppression: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Profiles of the segment's members that may be exported, and the exclusions.

    Returns the eligible profiles (rows of ``customers.data``, in segment order), the
    exclusion counts by reason, and the number of members. Members without a profile,
    suppressed ones, and those without every consent flag in ``consent`` (missing counts
    as no consent) are excluded.
    """
    members = pd.Index(segmentation.members(segment).astype(str))
    profiles = customers.data.copy()
    profiles["customer_id"] = profiles["customer_id"].astype(str)
    profiles = profiles.set_index("customer_id", drop=False)
    excluded = {NO_PROFILE: 0, SUPPRESSED: 0, NO_CONSENT: 0, NO_IDENTIFIER: 0}
    has_profile = members.isin(profiles.index)
    excluded[NO_PROFILE] = int((~has_profile).sum())
    chosen = profiles.loc[members[has_profile]]
    if suppression is not None:
        blocked = chosen.index.isin(pd.Index([str(s) for s in suppression]))
        excluded[SUPPRESSED] = int(blocked.sum())
        chosen = chosen[~blocked]
    flags = [consent] if isinstance(consent, str) else list(consent or [])
    for flag in flags:
        if flag not in chosen.columns:
            msg = (
                f"Consent flag {flag!r} is not in the customers data; map it "
                f"({flag}='<column>', on the command line --map-customers "
                f"{flag}=<column>) or pass consent=None (--param consent=null) to export "
                "without a consent check."
            )
            raise ValueError(msg)
    if flags:
        granted = np.ones(len(chosen), dtype=bool)
        for flag in flags:
            granted &= chosen[flag].fillna(False).to_numpy(dtype=bool)
        excluded[NO_CONSENT] = int((~granted).sum())
        chosen = chosen[granted]
    return chosen.reset_index(drop=True), excluded, len(members)


def batched(n_items: int, size: int) -> list[slice]:
    """Slices cutting ``n_items`` into consecutive batches of at most ``size``."""
    return [slice(start, min(start + size, n_items)) for start in range(0, n_items, size)]
