"""Sending built audience requests to the platforms: retries, rate limit, journal.

:func:`push` takes an :class:`~segmentkit.exporters.AudienceExport` (or any sequence of
:class:`~segmentkit.exporters.Request`) and sends the requests in order with ``httpx``,
adding each platform's authentication from :class:`Credentials`.

Credentials come from arguments or from these environment variables:

============  ==============================================================
platform      environment variables
============  ==============================================================
meta          ``SEGMENTKIT_META_TOKEN``
google_ads    ``SEGMENTKIT_GOOGLE_ADS_TOKEN`` (OAuth access token),
              ``SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN``, optional
              ``SEGMENTKIT_GOOGLE_ADS_LOGIN_CUSTOMER_ID``
klaviyo       ``SEGMENTKIT_KLAVIYO_API_KEY``
mailchimp     ``SEGMENTKIT_MAILCHIMP_API_KEY`` (the data centre is the key's
              suffix: ``...-us19`` → ``https://us19.api.mailchimp.com/3.0``)
hubspot       ``SEGMENTKIT_HUBSPOT_TOKEN``
braze         ``SEGMENTKIT_BRAZE_API_KEY``, ``SEGMENTKIT_BRAZE_INSTANCE``
              (``iad-01`` → ``https://rest.iad-01.braze.com``; an instance with a
              dot, ``fra-01.braze.eu``, → ``https://rest.fra-01.braze.eu``)
============  ==============================================================

Secrets never appear in a ``repr``, a log line, an exception message or the summary:
error bodies echoed by a platform are scrubbed of them too.

Delivery is *at least once*: a request is journaled only once the platform acknowledged
it (2xx). A request whose response was lost (time-out, dropped connection, crash between
the response and the journal write) is sent again; the audience endpoints are set
operations (adding a member twice, or removing an absent one, changes nothing).
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmentkit.errors import SegmentkitError

if TYPE_CHECKING:
    import httpx
from segmentkit.exporters._audience import AudienceExport, Request

__all__ = ["Credentials", "PushError", "PushSummary", "TokenBucket", "push"]

logger = logging.getLogger("segmentkit.push")

PLATFORMS = ("meta", "google_ads", "klaviyo", "mailchimp", "hubspot", "braze")

#: Environment variables read by :meth:`Credentials.from_env`, by platform.
ENVIRONMENT: dict[str, dict[str, str]] = {
    "meta": {"token": "SEGMENTKIT_META_TOKEN"},
    "google_ads": {
        "token": "SEGMENTKIT_GOOGLE_ADS_TOKEN",
        "developer_token": "SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN",
        "login_customer_id": "SEGMENTKIT_GOOGLE_ADS_LOGIN_CUSTOMER_ID",
    },
    "klaviyo": {"token": "SEGMENTKIT_KLAVIYO_API_KEY"},
    "mailchimp": {"token": "SEGMENTKIT_MAILCHIMP_API_KEY"},
    "hubspot": {"token": "SEGMENTKIT_HUBSPOT_TOKEN"},
    "braze": {"token": "SEGMENTKIT_BRAZE_API_KEY", "instance": "SEGMENTKIT_BRAZE_INSTANCE"},
}

_OPTIONAL = {"login_customer_id"}

_BASE_URLS = {
    "meta": "https://graph.facebook.com",
    "google_ads": "https://googleads.googleapis.com",
    "klaviyo": "https://a.klaviyo.com",
    "hubspot": "https://api.hubapi.com",
}

_MASK = "***"
_EXCERPT = 300


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True, repr=False)
class Credentials:
    """Authentication for one platform. Secrets are never shown.

    Parameters
    ----------
    platform : str
        ``'meta'``, ``'google_ads'``, ``'klaviyo'``, ``'mailchimp'``, ``'hubspot'`` or
        ``'braze'``.
    token : str
        Access token (Meta, Google Ads OAuth, HubSpot), private API key (Klaviyo,
        Mailchimp) or REST API key (Braze).
    developer_token : str, optional
        Google Ads developer token (required for ``google_ads``).
    login_customer_id : str, optional
        Google Ads manager account id, sent as ``login-customer-id``.
    instance : str, optional
        Braze REST instance (``'iad-01'``); required for ``braze`` unless ``base_url``.
    base_url : str, optional
        Overrides the platform's API base URL (a test server, a proxy). Paths of the
        requests are appended to it.
    """

    platform: str
    token: str
    developer_token: str | None = None
    login_customer_id: str | None = None
    instance: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            msg = f"Unknown platform {self.platform!r}; expected one of {list(PLATFORMS)}."
            raise ValueError(msg)
        if not self.token:
            msg = f"No token for {self.platform}: set {ENVIRONMENT[self.platform]['token']}."
            raise ValueError(msg)
        if self.platform == "google_ads" and not self.developer_token:
            msg = (
                "Google Ads needs a developer token: pass developer_token= or set "
                "SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN."
            )
            raise ValueError(msg)
        if self.platform == "mailchimp" and self.base_url is None and "-" not in self.token:
            msg = (
                "A Mailchimp API key ends with its data centre ('...-us19'); this one has "
                "none. Pass base_url='https://<dc>.api.mailchimp.com/3.0'."
            )
            raise ValueError(msg)
        if self.platform == "braze" and self.base_url is None and not self.instance:
            msg = (
                "Braze needs its REST instance: pass instance='iad-01' (or base_url=) or "
                "set SEGMENTKIT_BRAZE_INSTANCE."
            )
            raise ValueError(msg)

    @classmethod
    def from_env(
        cls,
        platform: str,
        *,
        environ: Mapping[str, str] | None = None,
        base_url: str | None = None,
    ) -> Credentials:
        """Credentials of ``platform`` from the ``SEGMENTKIT_*`` environment variables.

        Parameters
        ----------
        platform : str
            Destination platform.
        environ : mapping, optional
            Where to read the variables; ``os.environ`` by default.
        base_url : str, optional
            Overrides the API base URL.

        Returns
        -------
        Credentials

        Raises
        ------
        ValueError
            If the platform is unknown or a required variable is unset (named in the
            message; its value never is).
        """
        if platform not in ENVIRONMENT:
            msg = f"Unknown platform {platform!r}; expected one of {list(PLATFORMS)}."
            raise ValueError(msg)
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        missing = []
        for name, variable in ENVIRONMENT[platform].items():
            value = env.get(variable) or None
            optional = name in _OPTIONAL or (name == "instance" and base_url is not None)
            if value is None and not optional:
                missing.append(variable)
            values[name] = value
        if missing:
            msg = f"Pushing to {platform} needs the environment variable(s) {missing}."
            raise ValueError(msg)
        return cls(platform=platform, base_url=base_url, **values)

    def secrets(self) -> tuple[str, ...]:
        """The values that must never be shown, with their encoded forms.

        Returns
        -------
        tuple of str
            Tokens and their encodings, for masking messages and logs.
        """
        values = [v for v in (self.token, self.developer_token) if v]
        if self.platform == "mailchimp":
            values.append(base64.b64encode(f"anystring:{self.token}".encode()).decode())
        return tuple(values)

    def headers(self) -> dict[str, str]:
        """The authentication headers of the platform (hold secrets: never log them).

        Returns
        -------
        dict of str to str
            Header names and values.
        """
        if self.platform == "klaviyo":
            return {"Authorization": f"Klaviyo-API-Key {self.token}"}
        if self.platform == "mailchimp":
            encoded = base64.b64encode(f"anystring:{self.token}".encode()).decode()
            return {"Authorization": f"Basic {encoded}"}
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.platform == "google_ads":
            headers["developer-token"] = str(self.developer_token)
            if self.login_customer_id:
                headers["login-customer-id"] = str(self.login_customer_id).replace("-", "")
        return headers

    def api_base_url(self) -> str:
        """The URL the requests' paths are appended to (no trailing slash).

        Returns
        -------
        str
            Base URL of the platform's API.
        """
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        if self.platform == "mailchimp":
            dc = self.token.rsplit("-", 1)[-1]
            return f"https://{dc}.api.mailchimp.com/3.0"
        if self.platform == "braze":
            instance = str(self.instance).strip().removeprefix("rest.")
            host = instance if "." in instance else f"{instance}.braze.com"
            return f"https://rest.{host}"
        return _BASE_URLS[self.platform]

    def __repr__(self) -> str:
        shown = [f"platform={self.platform!r}", f"token={_MASK!r}"]
        if self.developer_token:
            shown.append(f"developer_token={_MASK!r}")
        for name in ("login_customer_id", "instance", "base_url"):
            value = getattr(self, name)
            if value is not None:
                shown.append(f"{name}={value!r}")
        return f"Credentials({', '.join(shown)})"

    __str__ = __repr__


# --------------------------------------------------------------------------- summary


class PushError(SegmentkitError, RuntimeError):
    """A push stopped: a request was refused or kept failing after every retry.

    Parameters
    ----------
    message : str
        What happened, with secrets masked.
    request : Request
        The request that failed.
    status : int or None
        HTTP status of the last answer.
    summary : PushSummary
        What was delivered before the failure.

    Attributes
    ----------
    request : Request
        The request that failed.
    status : int or None
        HTTP status of the last answer (``None`` after a network error).
    summary : PushSummary
        What was delivered before the failure (acknowledged requests are journaled).
    """

    def __init__(
        self, message: str, *, request: Request, status: int | None, summary: PushSummary
    ) -> None:
        super().__init__(message)
        self.request = request
        self.status = status
        self.summary = summary


@dataclass(frozen=True)
class PushSummary:
    """The account of one push.

    Parameters
    ----------
    sent : int
        Requests acknowledged by the platform during this run.
    skipped_already_acknowledged : int
        Requests skipped because the journal holds them as acknowledged.
    retries : int
        Attempts repeated after a 429, a 5xx, a time-out or a connection error.
    failures : int
        Requests that failed for good (the push stops at the first: 0 or 1).
    customers_delivered : int
        Sum of ``n_customers`` of the requests acknowledged in this run.
    elapsed : float
        Seconds spent.
    dry_run : bool, default=False
        Nothing was sent.
    pending : tuple of Request, default=()
        With ``dry_run``: the requests that would be sent, in order.
    rejected_items : int, default=0
        Items a platform refused inside a successful answer (Mailchimp's ``errors``,
        Braze's ``errors``): the request is acknowledged, these customers were not taken.
    """

    sent: int
    skipped_already_acknowledged: int
    retries: int
    failures: int
    customers_delivered: int
    elapsed: float
    dry_run: bool = False
    pending: tuple[Request, ...] = field(default=(), repr=False)
    rejected_items: int = 0

    def __str__(self) -> str:
        if self.dry_run:
            customers = sum(r.n_customers for r in self.pending)
            head = (
                f"dry run: would send {len(self.pending)} request(s) carrying "
                f"{customers} customer(s)"
            )
            platforms = sorted({r.platform for r in self.pending})
            if platforms:
                head += f" to {', '.join(platforms)}"
        else:
            head = (
                f"pushed {self.sent} request(s), {self.customers_delivered} customer(s) "
                f"delivered in {self.elapsed:.1f}s"
            )
        parts = [head]
        if self.skipped_already_acknowledged:
            parts.append(f"{self.skipped_already_acknowledged} already acknowledged (skipped)")
        if self.retries:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        if self.failures:
            parts.append(f"{self.failures} failed")
        if self.rejected_items:
            parts.append(f"{self.rejected_items} item(s) refused inside successful answers")
        return "; ".join(parts)


# --------------------------------------------------------------------------- rate limit


class TokenBucket:
    """Token-bucket rate limiter: at most ``rate`` acquisitions per second on average.

    Parameters
    ----------
    rate : float
        Tokens added per second (> 0).
    burst : float, default=1
        Bucket capacity: how many acquisitions may happen back to back. With ``1`` the
        acquisitions are spaced by at least ``1 / rate`` seconds.
    clock, sleep : callables, optional
        Monotonic clock and sleep function (tests pass fakes).
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            msg = f"rate_per_second must be a positive number, got {rate!r}."
            raise ValueError(msg)
        if burst < 1:
            msg = f"burst must be at least 1, got {burst!r}."
            raise ValueError(msg)
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is available.

        Returns
        -------
        float
            Seconds waited.
        """
        waited = 0.0
        self._refill()
        while self._tokens < 1:
            wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait
            self._refill()
        self._tokens -= 1
        return waited


# --------------------------------------------------------------------------- journal


def _read_journal(path: Path) -> set[str]:
    """Keys acknowledged in earlier runs; a torn last line (crash mid-write) is ignored."""
    return set(_read_journal_entries(path))


def _read_journal_entries(path: Path) -> dict[str, dict[str, Any]]:
    """Acknowledged entries of earlier runs by key (later entries win)."""
    if not path.exists():
        return {}
    entries: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                entries[entry["key"]] = entry
    return entries


class _Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = False
        if path.exists() and path.stat().st_size:
            with path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
        self._handle = path.open("a", encoding="utf-8")
        if torn:  # a crash mid-write left half a line: end it so the next entry parses
            self._handle.write("\n")

    def record(self, request: Request, status: int, job: str | None = None) -> None:
        entry = {
            "job": job,
            "key": request.key,
            "platform": request.platform,
            "method": request.method,
            "path": request.path,
            "batch": request.batch,
            "n_customers": request.n_customers,
            "status": status,
            "acknowledged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._handle.write(json.dumps(entry, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


# --------------------------------------------------------------------------- helpers

_JOB = "{job}"

#: Steady request rates the platforms publish, per second (Meta and Google Ads throttle
#: per account without a fixed number).
PLATFORM_RATES: dict[str, float | None] = {
    "klaviyo": 150 / 60,
    "hubspot": 190 / 10,
    "braze": 3000 / 3,
    "mailchimp": 10.0,
    "meta": None,
    "google_ads": None,
}


def _failed_before_sending() -> PushSummary:
    """The summary of a push that failed before any request was sent."""
    return PushSummary(
        sent=0,
        skipped_already_acknowledged=0,
        retries=0,
        failures=1,
        customers_delivered=0,
        elapsed=0.0,
    )


# Module-level so tests can replace them without touching time.sleep for everyone.
_sleep: Callable[[float], None] = time.sleep
_clock: Callable[[], float] = time.monotonic


def _retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now = now or datetime.now(timezone.utc)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


def _require_httpx() -> Any:
    """httpx is the optional ``push`` extra: import it only when sending."""
    try:
        import httpx
    except ImportError as error:
        msg = "Pushing needs httpx: pip install 'segmentkit[push]'."
        raise ImportError(msg) from error
    return httpx


def _with_job(request: Request, job: str | None) -> str:
    """The request's path with Google Ads' job placeholder filled in."""
    if _JOB not in request.path:
        return request.path
    if job is None:
        msg = (
            f"{_describe(request)} needs the job Google named in its :create answer, and no "
            "acknowledged :create (in this run or the journal) gave one."
        )
        raise PushError(msg, request=request, status=None, summary=_failed_before_sending())
    return request.path.replace(_JOB, job)


def _refused_items(request: Request, response: Any) -> int:
    """Items refused inside a 2xx answer (Mailchimp and Braze report them in ``errors``)."""
    if request.platform not in ("mailchimp", "braze"):
        return 0
    try:
        body = response.json()
    except ValueError:
        return 0
    errors = body.get("errors") if isinstance(body, dict) else None
    return len(errors) if isinstance(errors, list) else 0


def _job_from(request: Request, response: Any) -> str | None:
    """The job id of a Google Ads ``:create`` answer (``customers/1/offlineUserDataJobs/9``)."""
    if not request.path.endswith("offlineUserDataJobs:create"):
        return None
    try:
        name = response.json().get("resourceName", "")
    except (ValueError, AttributeError):
        return None
    job = str(name).rsplit("/", 1)[-1]
    return job or None


def _platform_message(response: httpx.Response) -> str:
    """The error message a platform put in its answer, or an excerpt of the body."""
    text = response.text
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        data = None
    found: list[str] = []
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):  # Meta, Google
            found.append(str(error["message"]))
        elif isinstance(error, str):
            found.append(error)
        errors = data.get("errors")
        if isinstance(errors, list):  # Klaviyo (JSON:API), Braze
            for item in errors[:3]:
                if isinstance(item, dict):
                    detail = item.get("detail") or item.get("message") or item.get("title")
                    if detail:
                        found.append(str(detail))
        for name in ("detail", "message", "title"):  # Mailchimp, HubSpot, Braze
            if not found and data.get(name):
                found.append(str(data[name]))
    message = "; ".join(found) if found else " ".join(text.split())
    if len(message) > _EXCERPT:
        message = message[:_EXCERPT] + "…"
    return message or "(empty body)"


def _describe(request: Request) -> str:
    return f"{request.platform} batch {request.batch} ({request.method} {request.path})"


def _as_requests(
    export_or_requests: AudienceExport | Sequence[Request] | Request,
) -> list[Request]:
    if isinstance(export_or_requests, AudienceExport):
        return list(export_or_requests.requests)
    if isinstance(export_or_requests, Request):
        return [export_or_requests]
    requests = list(export_or_requests)
    for item in requests:
        if not isinstance(item, Request):
            msg = f"push takes an AudienceExport or Request objects, got {type(item).__name__}."
            raise TypeError(msg)
    return requests


def _credentials_for(
    platforms: Sequence[str],
    credentials: Credentials | Mapping[str, Credentials] | None,
    base_url: str | None,
) -> dict[str, Credentials]:
    found: dict[str, Credentials] = {}
    for platform in platforms:
        if isinstance(credentials, Credentials):
            if credentials.platform != platform:
                msg = (
                    f"The requests go to {platform} but the credentials are for "
                    f"{credentials.platform}; pass a mapping of platform to Credentials."
                )
                raise ValueError(msg)
            chosen = credentials
        elif isinstance(credentials, Mapping) and platform in credentials:
            chosen = credentials[platform]
        else:
            chosen = Credentials.from_env(platform, base_url=base_url)
        found[platform] = chosen
    return found


# --------------------------------------------------------------------------- push


def push(
    export_or_requests: AudienceExport | Sequence[Request] | Request,
    *,
    credentials: Credentials | Mapping[str, Credentials] | None = None,
    base_url: str | None = None,
    journal: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    max_retries: int = 5,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    timeout: float = 30.0,
    rate_per_second: float | str | None = None,
    progress: bool = False,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
) -> PushSummary:
    """Send the requests of an export, in order, to their platform.

    Each request gets the platform's authentication headers and its JSON body. A 429,
    a 5xx, a 408, a time-out or a connection error is retried up to ``max_retries``
    times with exponential backoff and full jitter (``uniform(0, min(max_backoff,
    backoff * 2**attempt))`` seconds), or after the time a ``Retry-After`` header asks
    for (seconds or an HTTP date; honoured even beyond ``max_backoff``). Any other
    answer outside 2xx stops the push with a :class:`PushError`.

    Parameters
    ----------
    export_or_requests : AudienceExport or sequence of Request
        What to send.
    credentials : Credentials or mapping of platform to Credentials, optional
        Read from the ``SEGMENTKIT_*`` environment variables when not given (see the
        module documentation). Not needed for a dry run.
    base_url : str, optional
        Overrides the API base URL of every platform (a test server, a proxy).
    journal : path, optional
        JSON-lines file of acknowledged requests, keyed by :attr:`Request.key`: each
        acknowledged request is appended and fsynced at once, and requests already in
        it are skipped, so an interrupted push re-run with the same journal sends only
        what was not acknowledged.
    dry_run : bool, default=False
        Send nothing; the summary's ``pending`` holds the requests that would be sent
        (those not yet in the journal).
    max_retries : int, default=5
        Retries per request before giving up.
    backoff, max_backoff : float, default=0.5, 30
        Base and cap of the exponential backoff, in seconds.
    timeout : float, default=30
        Seconds per HTTP attempt (connect, read, write).
    rate_per_second : float or 'platform', optional
        Spaces the attempts (retries included) to at most this many per second with a
        token bucket; platform limits are e.g. Klaviyo 10/s burst and 150/min steady,
        HubSpot 190 per 10 s, Braze 3,000 per 3 s. ``'platform'`` takes the steady rate
        of :data:`PLATFORM_RATES` for the slowest platform in the push (none when no
        published limit is known).
    progress : bool, default=False
        Print a one-line progress indicator to standard error.
    client : httpx.Client, optional
        Client to send with (left open); a new one is made and closed otherwise.
    rng : random.Random, optional
        Source of the jitter (seed it for reproducible waits).

    Returns
    -------
    PushSummary

    Raises
    ------
    PushError
        A request was refused (names the platform, batch, status and the platform's
        message, never a secret) or still failed after ``max_retries`` retries. Its
        ``summary`` tells what was delivered before.
    ValueError
        Credentials are missing for a platform of the requests.
    """
    if max_retries < 0:
        msg = f"max_retries must be >= 0, got {max_retries}."
        raise ValueError(msg)
    started = _clock()
    requests = _as_requests(export_or_requests)
    journal_path = Path(journal) if journal is not None else None
    acknowledged = _read_journal_entries(journal_path) if journal_path is not None else {}
    todo = [r for r in requests if r.key not in acknowledged]
    # Google Ads names a job in its :create answer; a re-run finds it in the journal.
    jobs = {
        entry["platform"]: entry["job"]
        for entry in acknowledged.values()
        if entry.get("job") and entry.get("platform")
    }
    skipped = len(requests) - len(todo)

    if dry_run:
        return PushSummary(
            sent=0,
            skipped_already_acknowledged=skipped,
            retries=0,
            failures=0,
            customers_delivered=0,
            elapsed=_clock() - started,
            dry_run=True,
            pending=tuple(todo),
        )

    platforms = list(dict.fromkeys(r.platform for r in todo))
    creds = _credentials_for(platforms, credentials, base_url)
    secrets = tuple(s for c in creds.values() for s in c.secrets())
    if rate_per_second == "platform":
        known = [rate for p in platforms if (rate := PLATFORM_RATES.get(p))]
        rate_per_second = min(known) if known else None
    bucket = (
        TokenBucket(float(rate_per_second), clock=_clock, sleep=_sleep)
        if rate_per_second is not None
        else None
    )
    rng = rng if rng is not None else random.Random()
    own_client = client is None
    httpx = _require_httpx()
    http = client if client is not None else httpx.Client(timeout=timeout)
    book = _Journal(journal_path) if journal_path is not None else None
    state = {"sent": 0, "retries": 0, "customers": 0, "rejected": 0}
    total = len(todo)

    def summary(failures: int = 0) -> PushSummary:
        return PushSummary(
            sent=state["sent"],
            skipped_already_acknowledged=skipped,
            retries=state["retries"],
            failures=failures,
            customers_delivered=state["customers"],
            elapsed=_clock() - started,
            rejected_items=state["rejected"],
        )

    def show(final: bool = False) -> None:
        if not progress:
            return
        line = (
            f"\rsegmentkit push: {state['sent']}/{total} request(s), "
            f"{state['customers']} customer(s), {state['retries']} retr"
            f"{'y' if state['retries'] == 1 else 'ies'}"
        )
        sys.stderr.write(line + ("\n" if final else ""))
        sys.stderr.flush()

    def fail(request: Request, status: int | None, reason: str) -> PushError:
        show(final=True)
        message = _redact(f"Push stopped at {_describe(request)}: {reason}", secrets)
        return PushError(message, request=request, status=status, summary=summary(1))

    try:
        show()
        for request in todo:
            cred = creds[request.platform]
            url = base_url.rstrip("/") if base_url is not None else cred.api_base_url()
            url += _with_job(request, jobs.get(request.platform))
            headers = {"Content-Type": "application/json", **dict(request.headers)}
            headers.update(cred.headers())
            attempt = 0
            while True:
                if bucket is not None:
                    bucket.acquire()
                wait_hint: float | None = None
                status: int | None = None
                try:
                    response = http.request(
                        request.method, url, json=request.body, headers=headers, timeout=timeout
                    )
                except httpx.TimeoutException as exc:
                    problem = f"timed out after {timeout}s ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    problem = f"connection error ({type(exc).__name__})"
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        refused = _refused_items(request, response)
                        if refused:
                            state["rejected"] += refused
                            # Counts only: the platforms' item errors quote e-mail addresses.
                            logger.warning(
                                "%s: the platform refused %d item(s) inside a %d answer",
                                _describe(request),
                                refused,
                                status,
                            )
                        job = _job_from(request, response)
                        if job is not None:
                            jobs[request.platform] = job
                        if book is not None:
                            book.record(request, status, job)
                        state["sent"] += 1
                        state["customers"] += request.n_customers
                        show()
                        break
                    problem = f"HTTP {status}: {_platform_message(response)}"
                    if not (status in (408, 429) or status >= 500):
                        raise fail(request, status, problem)
                    wait_hint = _retry_after(response.headers.get("Retry-After"))
                if attempt >= max_retries:
                    raise fail(request, status, f"{problem}; gave up after {max_retries} retries")
                if wait_hint is None:
                    wait = rng.uniform(0, min(max_backoff, backoff * 2**attempt))
                else:
                    wait = wait_hint
                attempt += 1
                state["retries"] += 1
                logger.warning(
                    "%s",
                    _redact(
                        f"{_describe(request)}: {problem}; retry {attempt}/{max_retries} "
                        f"in {wait:.2f}s",
                        secrets,
                    ),
                )
                show()
                _sleep(wait)
        show(final=True)
    finally:
        if book is not None:
            book.close()
        if own_client:
            http.close()
    result = summary()
    logger.info("%s", result)
    return result
