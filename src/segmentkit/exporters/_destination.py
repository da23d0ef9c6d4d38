"""What a push needs to know about one platform, held in one object: a ``Destination``.

Each platform module (``_meta.py``, ``_google_ads.py``, ``_klaviyo.py``, ``_mailchimp.py``,
``_hubspot.py``, ``_braze.py``) defines its builder and, beside it, a ``DESTINATION``:
its name, API base URL, authentication, credentials and their environment variables,
published rate, batch limits, how to read its error answers, which statuses are worth
another attempt, and what a duplicate delivery does. :mod:`._registry` lists them;
:func:`~segmentkit.exporters.push`, :class:`~segmentkit.exporters.Credentials` and the
command line read everything platform-specific from there, never from tables of their own.

Private on purpose: a platform needs a builder (public, ``build_*``), a docs page and
tests against its contract; a ``Destination`` alone would let a user push requests
nobody checked. Contributors add one module (see ``docs/destinations/index.md``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "RETRYABLE_STATUSES",
    "UNCERTAIN_STATUSES",
    "Auth",
    "BasicAuth",
    "CredentialValues",
    "Destination",
    "TokenAuth",
    "any_known_message",
    "error_list_messages",
    "error_object_message",
    "item_errors",
    "top_level_message",
]

#: Statuses worth another attempt: the request was not taken (408 Request Timeout,
#: 425 Too Early, 429 Too Many Requests) or the platform failed (5xx), except 501 Not
#: Implemented and 505 HTTP Version Not Supported, which fail the same way again.
RETRYABLE_STATUSES = frozenset(
    {408, 425, 429, *(s for s in range(500, 600) if s not in (501, 505))}
)
#: Statuses from a gateway that lost the platform's answer: the request may have been
#: applied (502 Bad Gateway, 504 Gateway Timeout).
UNCERTAIN_STATUSES = frozenset({502, 504})


class CredentialValues(Protocol):
    """What a destination reads from :class:`~segmentkit.exporters.Credentials`."""

    @property
    def platform(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def developer_token(self) -> str | None: ...
    @property
    def login_customer_id(self) -> str | None: ...
    @property
    def instance(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...


class Auth(Protocol):
    """How a platform authenticates a request."""

    def headers(self, credentials: CredentialValues) -> dict[str, str]:
        """The authentication headers (hold secrets: never log them)."""
        ...

    def secrets(self, credentials: CredentialValues) -> tuple[str, ...]:
        """Every form of the secrets that may show up in a message, to be masked."""
        ...


@dataclass(frozen=True)
class TokenAuth:
    """``Authorization: <scheme> <token>`` (``Bearer``, ``Klaviyo-API-Key``...)."""

    scheme: str = "Bearer"

    def headers(self, credentials: CredentialValues) -> dict[str, str]:
        """The ``Authorization`` header."""
        return {"Authorization": f"{self.scheme} {credentials.token}"}

    def secrets(self, credentials: CredentialValues) -> tuple[str, ...]:
        """The token."""
        return (credentials.token,)


@dataclass(frozen=True)
class BasicAuth:
    """HTTP Basic with a fixed user name and the token as password (Mailchimp)."""

    username: str = "anystring"

    def _encoded(self, credentials: CredentialValues) -> str:
        return base64.b64encode(f"{self.username}:{credentials.token}".encode()).decode()

    def headers(self, credentials: CredentialValues) -> dict[str, str]:
        """The ``Authorization: Basic ...`` header."""
        return {"Authorization": f"Basic {self._encoded(credentials)}"}

    def secrets(self, credentials: CredentialValues) -> tuple[str, ...]:
        """The token and its base64 form (an echoed header would show that)."""
        return (credentials.token, self._encoded(credentials))


# --------------------------------------------------------------------------- error answers

#: Reads the messages out of a platform's parsed JSON error answer.
ErrorReader = Callable[[Mapping[str, Any]], list[str]]


def error_object_message(data: Mapping[str, Any]) -> list[str]:
    """``{"error": {"message": ...}}`` (Meta, Google) or ``{"error": "..."}``."""
    error = data.get("error")
    if isinstance(error, dict) and error.get("message"):
        return [str(error["message"])]
    if isinstance(error, str):
        return [error]
    return []


def error_list_messages(data: Mapping[str, Any]) -> list[str]:
    """``{"errors": [{"detail"|"message"|"title": ...}]}`` (Klaviyo's JSON:API, Braze)."""
    errors = data.get("errors")
    found = []
    if isinstance(errors, list):
        for item in errors[:3]:
            if isinstance(item, dict):
                detail = item.get("detail") or item.get("message") or item.get("title")
                if detail:
                    found.append(str(detail))
    return found


def top_level_message(data: Mapping[str, Any]) -> list[str]:
    """``{"detail"|"message"|"title": ...}`` (Mailchimp, HubSpot, Braze)."""
    for name in ("detail", "message", "title"):
        if data.get(name):
            return [str(data[name])]
    return []


def any_known_message(data: Mapping[str, Any]) -> list[str]:
    """Every known shape: what is tried when a destination's own readers find nothing
    (a proxy or gateway may answer in another platform's shape)."""
    found = error_object_message(data) + error_list_messages(data)
    return found or top_level_message(data)


def item_errors(body: Any) -> int:
    """Items refused inside a 2xx answer, listed in its ``errors`` (Mailchimp, Braze)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    return len(errors) if isinstance(errors, list) else 0


def _no_item_errors(body: Any) -> int:
    return 0


def _creates_nothing(path: str) -> bool:
    return False


def _no_resource(path: str, body: Any) -> str | None:
    return None


def _no_problem(credentials: CredentialValues) -> str | None:
    return None


# --------------------------------------------------------------------------- destination


@dataclass(frozen=True)
class Destination:
    """Everything platform-specific that building, pushing and the CLI need.

    Parameters
    ----------
    name : str
        The platform name of :attr:`Request.platform`, ``push``, ``Credentials`` and
        ``segmentkit export --to`` (``'google_ads'``).
    title : str
        How people call it (``'Google Ads Customer Match'``).
    builder : callable
        The public ``build_*`` function of :mod:`segmentkit.exporters`.
    docs_page : str
        Its page in ``docs/destinations/`` (``'google-ads.md'``).
    base_url : str or callable
        The API base URL the requests' paths are appended to, or a function of the
        credentials that makes it (Mailchimp's data centre, Braze's instance).
    auth : Auth
        Authentication headers and the secrets to mask.
    environment : mapping of str to str
        ``Credentials`` field to the environment variable it is read from.
    optional : frozenset of str, default=frozenset()
        Fields of ``environment`` that may be missing.
    url_fields : frozenset of str, default=frozenset()
        Fields only needed to make the base URL: optional when ``base_url=`` is given.
    check_credentials : callable, default=no check
        Returns why the credentials cannot work (``None`` when they can).
    rate_per_second : float or None
        Published steady request rate (``None``: throttled per account, no number).
    batch_limits : mapping of str to int
        The platform's published limits per request, by what they count.
    error_readers : tuple of callables
        Read the messages out of the platform's JSON error answers; the first that
        finds any wins, and :func:`any_known_message` is the fallback.
    retryable_statuses : frozenset of int, default=RETRYABLE_STATUSES
        HTTP statuses worth another attempt.
    uncertain_statuses : frozenset of int, default=UNCERTAIN_STATUSES
        Retryable statuses after which the request may have been applied.
    refused_items : callable, default=none
        Items refused inside a 2xx answer (counted, never shown).
    creates : callable, default=never
        Whether a request path creates a resource (never re-sent blindly).
    created_resource : callable, default=none
        The id of what a create made, read from its answer (fills ``{job}`` in paths).
    idempotency_header : str or None, default=None
        Header the platform reads an idempotency key from; none of the six documents one.
    duplicate_effect : str
        What delivering a request twice does (documentation and the delivery table).
    """

    name: str
    title: str
    builder: Callable[..., Any]
    docs_page: str
    base_url: str | Callable[[CredentialValues], str]
    auth: Auth
    environment: Mapping[str, str]
    rate_per_second: float | None
    batch_limits: Mapping[str, int]
    duplicate_effect: str
    error_readers: tuple[ErrorReader, ...] = ()
    optional: frozenset[str] = frozenset()
    url_fields: frozenset[str] = frozenset()
    check_credentials: Callable[[CredentialValues], str | None] = _no_problem
    retryable_statuses: frozenset[int] = RETRYABLE_STATUSES
    uncertain_statuses: frozenset[int] = UNCERTAIN_STATUSES
    refused_items: Callable[[Any], int] = _no_item_errors
    creates: Callable[[str], bool] = _creates_nothing
    created_resource: Callable[[str, Any], str | None] = _no_resource
    idempotency_header: str | None = None

    def __repr__(self) -> str:
        return f"Destination({self.name!r}, {self.title!r})"

    def api_base_url(self, credentials: CredentialValues) -> str:
        """The base URL for these credentials (``base_url=`` given there wins).

        Parameters
        ----------
        credentials : Credentials
            The platform's credentials.

        Returns
        -------
        str
            No trailing slash.
        """
        if credentials.base_url is not None:
            return credentials.base_url.rstrip("/")
        if callable(self.base_url):
            return self.base_url(credentials)
        return self.base_url

    def error_messages(self, data: Mapping[str, Any]) -> list[str]:
        """The messages of a parsed JSON error answer: this platform's shapes first."""
        for reader in (*self.error_readers, any_known_message):
            found = reader(data)
            if found:
                return found
        return []
