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
error bodies echoed by a platform are scrubbed of them too, and of e-mail addresses and
phone numbers.

Delivery is *at least once*, with every possible duplicate counted: a request is
journaled as acknowledged only once the platform acknowledged it (2xx). A request whose
answer was lost (time-out, dropped connection, 502/504, crash between the answer and the
journal write) is sent again, and its customers are counted in
:attr:`PushSummary.possible_duplicates`; the audience endpoints are set operations
(adding a member twice, or removing an absent one, changes nothing). None of the six
platforms documents an idempotency key for these endpoints (:data:`IDEMPOTENCY_HEADERS`).
A request that creates something (Google Ads ``offlineUserDataJobs:create``) is never
re-sent blindly. A push is bounded (``deadline``, ``Retry-After`` capped by
``max_backoff``), and one journal serves one pusher at a time (``<journal>.lock``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmentkit._common._files import process_alive
from segmentkit._common._params import (
    NONE,
    InstanceOf,
    Interval,
    OneOf,
    Satisfies,
    validate_params,
)
from segmentkit.errors import JournalLockedError, PushError
from segmentkit.exporters._audience import AudienceExport, Request
from segmentkit.exporters._destination import RETRYABLE_STATUSES, Destination
from segmentkit.exporters._registry import destination, destinations, platform_names
from segmentkit.exporters._retry import (
    ACKNOWLEDGED,
    CONNECTION_ERROR,
    REFUSED,
    RETRYABLE_STATUS,
    TIMEOUT,
    Outcome,
    RetryPolicy,
)
from segmentkit.exporters._retry import retry_after as _retry_after

if TYPE_CHECKING:
    import httpx

__all__ = [
    "IDEMPOTENCY_HEADERS",
    "RETRYABLE_STATUSES",
    "Credentials",
    "JournalLockedError",
    "PushError",
    "PushSummary",
    "TokenBucket",
    "push",
]

logger = logging.getLogger("segmentkit.push")

#: The platform names (one :class:`Destination` each, see ``_registry``).
PLATFORMS = platform_names()

#: Environment variables read by :meth:`Credentials.from_env`, by platform.
ENVIRONMENT: dict[str, dict[str, str]] = {d.name: dict(d.environment) for d in destinations()}

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
        ``'braze'`` (an unknown one raises :class:`~segmentkit.errors.InvalidParameterError`).
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
        target = destination(self.platform, owner="Credentials")
        if not self.token:
            msg = f"No token for {self.platform}: set {target.environment['token']}."
            raise ValueError(msg)
        problem = target.check_credentials(self)
        if problem is not None:
            raise ValueError(problem)

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
        target = destination(platform, owner="Credentials.from_env")
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        missing = []
        for name, variable in target.environment.items():
            value = env.get(variable) or None
            # Fields that only make the base URL are not needed when it is given.
            by_url = name in target.url_fields and base_url is not None
            optional = name in target.optional or by_url
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
        values = [*destination(self.platform).auth.secrets(self), self.developer_token]
        return tuple(dict.fromkeys(v for v in values if v))

    def headers(self) -> dict[str, str]:
        """The authentication headers of the platform (hold secrets: never log them).

        Returns
        -------
        dict of str to str
            Header names and values.
        """
        return destination(self.platform).auth.headers(self)

    def api_base_url(self) -> str:
        """The URL the requests' paths are appended to (no trailing slash).

        Returns
        -------
        str
            Base URL of the platform's API.
        """
        return destination(self.platform).api_base_url(self)

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
        Attempts repeated after a retryable status, a time-out or a connection error.
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
    possible_duplicates : int, default=0
        Customer deliveries that may be duplicates: each attempt whose answer was lost
        after it may have been applied (a time-out after sending, a dropped connection,
        a 502/504, or a crash of an earlier run) and that was followed by another
        attempt counts the request's customers once. Always 0 for a platform that takes
        an idempotency key (see :data:`IDEMPOTENCY_HEADERS`). An upper bound: an attempt
        whose answer was lost may also never have been applied.
    customers_undelivered : int, default=0
        Customers of the requests not acknowledged when the push stopped (0 after a
        complete push): what a re-run with the same journal still has to send.
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
    possible_duplicates: int = 0
    customers_undelivered: int = 0

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
        if self.possible_duplicates:
            parts.append(
                f"{self.possible_duplicates} possible duplicate customer deliveries "
                "(re-sent after a lost answer)"
            )
        if self.customers_undelivered:
            parts.append(f"{self.customers_undelivered} customer(s) not delivered yet")
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

_SENDING = "sending"
_ACKNOWLEDGED = "acknowledged"
# Every attempt surely failed (never sent, or refused): the request was not applied.
_FAILED = "failed"


@dataclass
class _JournalState:
    """What earlier runs left: acknowledged requests, and requests sent but unanswered."""

    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_flight: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_journal(path: Path) -> set[str]:
    """Keys acknowledged in earlier runs; a torn last line (crash mid-write) is ignored."""
    return set(_read_journal_state(path).acknowledged)


def _read_journal_entries(path: Path) -> dict[str, dict[str, Any]]:
    """Acknowledged entries of earlier runs by key (later entries win)."""
    return _read_journal_state(path).acknowledged


def _read_journal_state(path: Path | None) -> _JournalState:
    """Replay the journal: a ``sending`` line without a later acknowledgement is in flight.

    Lines written before intents were journaled carry no ``state``: they are
    acknowledgements.
    """
    state = _JournalState()
    if path is None or not path.exists():
        return state
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)):
                continue
            key = entry["key"]
            if entry.get("state") == _SENDING:
                if key not in state.acknowledged:
                    state.in_flight[key] = entry
            elif entry.get("state") == _FAILED:
                state.in_flight.pop(key, None)
            else:
                state.acknowledged[key] = entry
                state.in_flight.pop(key, None)
    return state


class _Journal:
    """Append-only JSON lines, each fsynced before the push goes on."""

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

    def _write(self, entry: dict[str, Any]) -> None:
        self._handle.write(json.dumps(entry, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _entry(self, request: Request, state: str) -> dict[str, Any]:
        # Never the body: the journal holds counts and routing, no personal data.
        return {
            "state": state,
            "key": request.key,
            "platform": request.platform,
            "method": request.method,
            "path": request.path,
            "batch": request.batch,
            "n_customers": request.n_customers,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def sending(self, request: Request) -> None:
        """Record that ``request`` is about to go out (before its first attempt)."""
        self._write(self._entry(request, _SENDING))

    def failed(self, request: Request) -> None:
        """Record that no attempt of ``request`` can have been applied."""
        self._write(self._entry(request, _FAILED))

    def record(self, request: Request, status: int, job: str | None = None) -> None:
        """Record that the platform acknowledged ``request``."""
        entry = self._entry(request, _ACKNOWLEDGED)
        entry.update(job=job, status=status, acknowledged_at=entry["at"])
        self._write(entry)

    def close(self) -> None:
        self._handle.close()


# --------------------------------------------------------------------------- lock

#: A lock file whose content cannot be read (a crash between creating and writing it)
#: is taken as stale once it is this many seconds old.
_GARBLED_LOCK_AGE = 60.0


def _lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


class _JournalLock:
    """An exclusive lock file beside the journal (``<journal>.lock``).

    Created with ``O_CREAT | O_EXCL`` (atomic on Windows, Linux and macOS local disks
    and on NFS version 3 or later; no ``fcntl``/``msvcrt`` split), holding the owner's
    process id, host and start time.
    A lock left by a process that died is *stale*: on POSIX it is recognised (same host,
    process gone) and taken over with a warning; anywhere else the error names the file
    to delete once no push is running.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = _lock_path(journal)
        self._held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if self._stale(holder):
                    logger.warning(
                        "%s",
                        f"taking over the stale lock {self.path} (its push "
                        f"{_holder_text(holder)} is no longer running)",
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._locked(holder) from None
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    },
                    handle,
                )
            self._held = True
            return
        raise self._locked(self._holder())

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def _holder(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _stale(self, holder: dict[str, Any] | None) -> bool:
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return True  # gone meanwhile: try again
            return age > _GARBLED_LOCK_AGE
        if holder.get("host") != socket.gethostname():
            return False  # another machine's process cannot be checked from here
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid == os.getpid():
            return False
        return process_alive(pid) is False

    def _locked(self, holder: dict[str, Any] | None) -> JournalLockedError:
        msg = (
            f"Another push holds the journal {self.journal} (lock file {self.path}, "
            f"{_holder_text(holder)}). Two pushes sharing a journal could send the same "
            "requests twice; wait for the other one to finish. If no push is running any "
            f"more (its machine crashed), delete {self.path} and run again."
        )
        return JournalLockedError(msg, lock_path=self.path)


def _holder_text(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "holder unknown"
    return f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('started_at')}"


# --------------------------------------------------------------------------- helpers

_JOB = "{job}"

#: Steady request rates the platforms publish, per second (Meta and Google Ads throttle
#: per account without a fixed number). Read from each :class:`Destination`.
PLATFORM_RATES: dict[str, float | None] = {d.name: d.rate_per_second for d in destinations()}

#: The header each platform reads an idempotency key from (``None``: it takes none),
#: read from each :class:`Destination`. A request sent again with the same key is
#: applied once, so its customers are never counted in
#: :attr:`PushSummary.possible_duplicates`. None of the six platforms documents one for
#: the endpoints segmentkit uses (checked 2026-11: Meta Graph API, Google Ads REST,
#: Klaviyo, Mailchimp Marketing 3.0, HubSpot CRM v3, Braze REST); an unknown header
#: would be ignored at best and refused at worst, so none is invented. Their audience
#: endpoints are set operations instead: a duplicate changes nothing.
IDEMPOTENCY_HEADERS: dict[str, str | None] = {d.name: d.idempotency_header for d in destinations()}


def _empty_summary() -> PushSummary:
    return PushSummary(
        sent=0,
        skipped_already_acknowledged=0,
        retries=0,
        failures=1,
        customers_delivered=0,
        elapsed=0.0,
    )


def _creates(request: Request) -> bool:
    """Requests that create a resource, which a blind re-send would create twice."""
    return destination(request.platform).creates(request.path)


# Module-level so tests can replace them without touching time.sleep for everyone;
# push hands them to its RetryPolicy (read at each call, so a replacement is seen).
_sleep: Callable[[float], None] = time.sleep
_clock: Callable[[], float] = time.monotonic


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


# Anything shaped like an address: a run of non-delimiters around an "@" (delimiters
# being what surrounds an address in prose or JSON: space, quotes, brackets, commas).
_NOT_IN_ADDRESS = r"\s@<>()\[\]\\,;:\""
_EMAIL_TEXT = re.compile(rf"[^{_NOT_IN_ADDRESS}]+@[^{_NOT_IN_ADDRESS}]+")
# A phone in any common writing: 7 to 15 digits with separators, not part of a longer
# word (so hex digests, which are fine to show, are never cut).
_PHONE_TEXT = re.compile(r"(?<![\w+])\+?(?:\(?\d[\s().\-/]{0,2}){6,14}\d(?![\w])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _scrub_personal(text: str) -> str:
    """Mask e-mail addresses and phone numbers a platform echoed in an error text."""
    text = _EMAIL_TEXT.sub("<e-mail>", text)

    def phone(match: re.Match[str]) -> str:
        found = match.group(0)
        return found if _ISO_DATE.fullmatch(found.strip()) else "<phone>"

    return _PHONE_TEXT.sub(phone, text)


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
        raise PushError(msg, request=request, status=None, summary=_empty_summary())
    return request.path.replace(_JOB, job)


def _answer_body(response: Any) -> Any:
    """The JSON of an answer, or ``None`` when it has none."""
    try:
        return response.json()
    except ValueError:
        return None


def _platform_message(target: Destination, response: httpx.Response) -> str:
    """The error message a platform put in its answer, or an excerpt of the body."""
    text = response.text
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        data = None
    found = target.error_messages(data) if isinstance(data, dict) else []
    message = "; ".join(found) if found else " ".join(text.split())
    # Platforms quote the offending values (addresses, phones): mask them before the
    # text can reach an exception, a log line or stderr, and before cutting it, so a
    # cut never leaves half an address behind.
    message = _scrub_personal(message)
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


def _seconds(low: str) -> Satisfies:
    """A finite number of seconds ``> 0`` or ``>= 0`` (``low``), booleans excluded."""
    floor = Interval(float, 0, None, closed="left" if low == ">= 0" else "neither")
    return Satisfies(
        lambda v: floor.is_satisfied_by(v) and math.isfinite(v),
        f"a finite number of seconds {low}",
    )


_PARAMETERS: dict[str, list[Any]] = {
    "max_retries": [Interval(int, 0, None)],
    "backoff": [_seconds(">= 0")],
    "max_backoff": [
        Satisfies(
            _seconds(">= 0").is_satisfied_by,
            "a finite number of seconds >= 0 (it caps every wait, a platform's Retry-After "
            "included)",
        )
    ],
    "timeout": [_seconds("> 0")],
    "deadline": [_seconds("> 0"), NONE],
    "rate_per_second": [
        Satisfies(
            lambda v: (
                Interval(float, 0, None, closed="neither").is_satisfied_by(v) and math.isfinite(v)
            ),
            "a finite number of requests per second > 0",
        ),
        OneOf("platform"),
        NONE,
    ],
    "dry_run": [InstanceOf((bool,), "True or False")],
    "progress": [InstanceOf((bool,), "True or False")],
    "resend_uncertain_creates": [InstanceOf((bool,), "True or False")],
    "base_url": [InstanceOf((str,), "a str"), NONE],
}


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
    deadline: float | None = 3600.0,
    rate_per_second: float | str | None = None,
    progress: bool = False,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
    resend_uncertain_creates: bool = False,
) -> PushSummary:
    """Send the requests of an export, in order, to their platform.

    Each request gets the platform's authentication headers and its JSON body.

    *Retries.* An answer with a retryable status (408, 425, 429, and 5xx except 501 and
    505), a time-out or a connection error is retried up to ``max_retries`` times, after
    ``uniform(0, min(max_backoff, backoff * 2**attempt))`` seconds (full jitter) or the
    time a ``Retry-After`` header asks for (seconds or an HTTP date), **capped by**
    ``max_backoff``. Any other status stops the push with a :class:`PushError`.

    *Bounds.* The whole push stops with a :class:`PushError` once ``deadline`` seconds
    have passed (no attempt starts, and no wait is begun, that would end after it; each
    attempt's time-out is cut to what is left). With the journal, a re-run continues
    where it stopped.

    *Delivery.* At least once, with every possible duplicate counted: a request whose
    answer was lost after it may have been applied (a time-out after sending, a dropped
    connection, a 502/504, a crash) is sent again, and its customers are counted in
    :attr:`PushSummary.possible_duplicates` unless the platform takes an idempotency
    key (:data:`IDEMPOTENCY_HEADERS`, sent as the request's :attr:`Request.key`).
    Requests that *create* something (Google Ads ``offlineUserDataJobs:create``) are
    never sent again blindly: an uncertain outcome stops the push, and a re-run with the
    journal refuses to create the job again unless ``resend_uncertain_creates=True``.

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
        JSON-lines file of the push, keyed by :attr:`Request.key`: a ``sending`` line
        before each request's first attempt and an ``acknowledged`` line once the
        platform acknowledged it, each fsynced at once (routing and counts only, never a
        body). Acknowledged requests are skipped by a re-run, so an interrupted push
        re-run with the same journal sends only what was not acknowledged. While a push
        runs, ``<journal>.lock`` holds the journal: a second push with the same journal
        raises :class:`JournalLockedError`. A lock left by a process that died is taken
        over on POSIX systems (same host, process gone); elsewhere, delete it by hand
        once no push is running.
    dry_run : bool, default=False
        Send nothing; the summary's ``pending`` holds the requests that would be sent
        (those not yet in the journal).
    max_retries : int, default=5
        Retries per request before giving up.
    backoff, max_backoff : float, default=0.5, 30
        Base and cap of the waits between attempts, in seconds. ``max_backoff`` caps a
        platform's ``Retry-After`` too.
    timeout : float, default=30
        Seconds per HTTP attempt (connect, read, write).
    deadline : float or None, default=3600
        Seconds the whole push may take; ``None`` for no overall limit (each request is
        still bounded by ``max_retries``, ``timeout`` and ``max_backoff``).
    rate_per_second : float or 'platform', optional
        Spaces the attempts (retries included) to at most this many per second with a
        token bucket; platform limits are e.g. Klaviyo 10/s burst and 150/min steady,
        HubSpot 190 per 10 s, Braze 3,000 per 3 s. ``'platform'`` takes the steady rate
        of :data:`PLATFORM_RATES` for the slowest platform in the push (none when no
        published limit is known).
    progress : bool, default=False
        Print a one-line progress indicator (counts only) to standard error.
    client : httpx.Client, optional
        Client to send with (left open); a new one is made and closed otherwise.
    rng : random.Random, optional
        Source of the jitter (seed it for reproducible waits).
    resend_uncertain_creates : bool, default=False
        Create again a resource whose ``:create`` an earlier run sent without getting
        the answer (the journal says so). The earlier attempt may have created a Google
        Ads job that was never run: it stays empty and adds nobody.

    Returns
    -------
    PushSummary

    Raises
    ------
    PushError
        A request was refused (names the platform, batch, status and the platform's
        message, never a secret, an e-mail address or a phone number), still failed
        after ``max_retries`` retries, the deadline passed, or a create had an uncertain
        outcome. Its ``summary`` tells what was delivered before.
    JournalLockedError
        Another push holds the journal.
    InvalidParameterError
        A parameter has the wrong type or is out of range (a limit negative, infinite
        or not a number), or a request names an unknown platform; worded like every
        parameter error of segmentkit (``The 'deadline' parameter of push must be ...``).
    ValueError
        Credentials are missing for a platform of the requests.
    """
    validate_params("push", locals(), _PARAMETERS)
    policy = RetryPolicy(
        max_retries=max_retries,
        backoff=backoff,
        max_backoff=max_backoff,
        deadline=deadline,
        clock=_clock,
        sleep=_sleep,
    )
    started = policy.clock()
    requests = _as_requests(export_or_requests)
    journal_path = Path(journal) if journal is not None else None

    if dry_run:
        acknowledged = _read_journal_state(journal_path).acknowledged
        todo = [r for r in requests if r.key not in acknowledged]
        return PushSummary(
            sent=0,
            skipped_already_acknowledged=len(requests) - len(todo),
            retries=0,
            failures=0,
            customers_delivered=0,
            elapsed=policy.clock() - started,
            dry_run=True,
            pending=tuple(todo),
        )

    lock = _JournalLock(journal_path) if journal_path is not None else None
    if lock is not None:
        lock.acquire()
    try:
        return _push_locked(
            requests,
            credentials=credentials,
            base_url=base_url,
            journal_path=journal_path,
            policy=policy,
            timeout=timeout,
            rate_per_second=rate_per_second,
            progress=progress,
            client=client,
            rng=rng,
            resend_uncertain_creates=resend_uncertain_creates,
            started=started,
        )
    finally:
        if lock is not None:
            lock.release()


def _attempt(
    http: httpx.Client,
    httpx: Any,
    target: Destination,
    request: Request,
    url: str,
    headers: dict[str, str],
    timeout: float,
) -> tuple[Outcome, Any]:
    """Send ``request`` once and classify what came back (the answer, when there is one)."""
    # Connecting failed: the request never left, so sending it again is always safe.
    never_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    try:
        response = http.request(
            request.method, url, json=request.body, headers=headers, timeout=timeout
        )
    except httpx.TimeoutException as exc:
        problem = f"timed out after {timeout:g}s ({type(exc).__name__})"
        return Outcome(TIMEOUT, problem, maybe_applied=not isinstance(exc, never_sent)), None
    except httpx.TransportError as exc:
        problem = f"connection error ({type(exc).__name__})"
        maybe_applied = not isinstance(exc, never_sent)
        return Outcome(CONNECTION_ERROR, problem, maybe_applied=maybe_applied), None
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(ACKNOWLEDGED, status=status), response
    problem = f"HTTP {status}: {_platform_message(target, response)}"
    if status not in target.retryable_statuses:
        return Outcome(REFUSED, problem, status=status), response
    outcome = Outcome(
        RETRYABLE_STATUS,
        problem,
        status=status,
        maybe_applied=status in target.uncertain_statuses,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )
    return outcome, response


def _push_locked(
    requests: list[Request],
    *,
    credentials: Credentials | Mapping[str, Credentials] | None,
    base_url: str | None,
    journal_path: Path | None,
    policy: RetryPolicy,
    timeout: float,
    rate_per_second: float | str | None,
    progress: bool,
    client: httpx.Client | None,
    rng: random.Random | None,
    resend_uncertain_creates: bool,
    started: float,
) -> PushSummary:
    """The push itself, once the journal (if any) is locked: a loop over the policy."""
    # Read only under the lock: another pusher may have been appending until now.
    journal_state = _read_journal_state(journal_path)
    acknowledged = journal_state.acknowledged
    todo = [r for r in requests if r.key not in acknowledged]
    # Google Ads names a job in its :create answer; a re-run finds it in the journal.
    jobs = {
        entry["platform"]: entry["job"]
        for entry in acknowledged.values()
        if entry.get("job") and entry.get("platform")
    }
    skipped = len(requests) - len(todo)
    state = {"sent": 0, "retries": 0, "customers": 0, "rejected": 0, "duplicates": 0}
    position = {"next": 0}  # index in todo of the request being sent
    # Attempts of the current request that may have been applied without our knowing.
    current = {"uncertain": 0, "customers": 0}

    def summary(failures: int = 0) -> PushSummary:
        return PushSummary(
            sent=state["sent"],
            skipped_already_acknowledged=skipped,
            retries=state["retries"],
            failures=failures,
            customers_delivered=state["customers"],
            elapsed=policy.clock() - started,
            rejected_items=state["rejected"],
            possible_duplicates=state["duplicates"],
            customers_undelivered=sum(r.n_customers for r in todo[position["next"] :]),
        )

    for request in todo:
        entry = journal_state.in_flight.get(request.key)
        if entry is not None and _creates(request) and not resend_uncertain_creates:
            msg = (
                f"{_describe(request)} was sent at {entry.get('at')} by an earlier push that "
                "never got its answer (time-out, dropped connection or crash), so Google may "
                "have created that job. segmentkit does not create it again blindly. A job "
                "that was never run stays empty and adds nobody: check the account's offline "
                "user data jobs if you wish, then push again with "
                "resend_uncertain_creates=True to create a new job."
            )
            raise PushError(msg, request=request, status=None, summary=summary(1))

    platforms = list(dict.fromkeys(r.platform for r in todo))
    targets = {p: destination(p) for p in platforms}
    creds = _credentials_for(platforms, credentials, base_url)
    secrets = tuple(s for c in creds.values() for s in c.secrets())
    if rate_per_second == "platform":
        known = [rate for t in targets.values() if (rate := t.rate_per_second)]
        rate_per_second = min(known) if known else None
    bucket = (
        TokenBucket(float(rate_per_second), clock=policy.clock, sleep=policy.sleep)
        if rate_per_second is not None
        else None
    )
    rng = rng if rng is not None else random.Random()
    own_client = client is None
    httpx = _require_httpx()
    http = client if client is not None else httpx.Client(timeout=timeout)
    book = _Journal(journal_path) if journal_path is not None else None
    total = len(todo)

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
        # k attempts that may each have been applied: up to k - 1 of them are duplicates.
        state["duplicates"] += max(0, current["uncertain"] - 1) * current["customers"]
        if book is not None and not current["uncertain"]:
            book.failed(request)  # surely not applied: a re-run may send it freely
        current["uncertain"] = 0
        show(final=True)
        message = _redact(f"Push stopped at {_describe(request)}: {reason}", secrets)
        return PushError(message, request=request, status=status, summary=summary(1))

    def past_deadline(request: Request, problem: str | None) -> PushError:
        before = f"{problem}; " if problem else ""
        return fail(
            request,
            None,
            f"{before}the push deadline of {policy.deadline:g}s is reached. Run it again "
            "with the same journal to send the rest, or raise deadline=.",
        )

    def acknowledge(request: Request, target: Destination, status: int, response: Any) -> None:
        body = _answer_body(response)
        refused = target.refused_items(body)
        if refused:
            state["rejected"] += refused
            # Counts only: the platforms' item errors quote e-mail addresses.
            logger.warning(
                "%s: the platform refused %d item(s) inside a %d answer",
                _describe(request),
                refused,
                status,
            )
        job = target.created_resource(request.path, body)
        if job is not None:
            jobs[request.platform] = job
        if book is not None:
            book.record(request, status, job)
        state["sent"] += 1
        state["customers"] += request.n_customers
        state["duplicates"] += current["uncertain"] * current["customers"]
        current["uncertain"] = 0
        show()

    try:
        show()
        for index, request in enumerate(todo):
            position["next"] = index
            target = targets[request.platform]
            cred = creds[request.platform]
            url = base_url.rstrip("/") if base_url is not None else cred.api_base_url()
            url += _with_job(request, jobs.get(request.platform))
            headers = {"Content-Type": "application/json", **dict(request.headers)}
            if target.idempotency_header:
                headers[target.idempotency_header] = request.key
            headers.update(cred.headers())
            # Sent by a run that died before the answer: this run may deliver it again.
            current["uncertain"] = int(request.key in journal_state.in_flight)
            # With an idempotency key the platform applies a request once, however often
            # it is sent: nothing to count.
            current["customers"] = 0 if target.idempotency_header else request.n_customers
            if book is not None:
                book.sending(request)
            retries_done = 0
            problem: str | None = None
            while True:
                if policy.remaining(started) <= 0:
                    raise past_deadline(request, problem)
                if bucket is not None:
                    bucket.acquire()
                left = policy.remaining(started)
                if left <= 0:
                    raise past_deadline(request, problem)
                outcome, response = _attempt(
                    http, httpx, target, request, url, headers, min(timeout, left)
                )
                if outcome.kind == ACKNOWLEDGED:
                    acknowledge(request, target, int(outcome.status or 0), response)
                    break
                problem = outcome.problem
                if not policy.retries(outcome):
                    raise fail(request, outcome.status, str(problem))
                if outcome.maybe_applied:
                    current["uncertain"] += 1
                    if _creates(request):
                        raise fail(
                            request,
                            outcome.status,
                            f"{problem}. The platform may have created the job anyway, so "
                            "the create is not sent again blindly. Run the push again with "
                            "the same journal: it tells you how to go on.",
                        )
                if policy.gives_up(retries_done):
                    raise fail(
                        request,
                        outcome.status,
                        f"{problem}; gave up after {policy.max_retries} retries",
                    )
                wait, capped = policy.wait(retries_done, outcome.retry_after, rng)
                asked = (
                    f" (Retry-After asked {outcome.retry_after:g}s, capped by max_backoff)"
                    if capped
                    else ""
                )
                if wait >= policy.remaining(started):
                    raise past_deadline(request, problem)
                retries_done += 1
                state["retries"] += 1
                logger.warning(
                    "%s",
                    _redact(
                        f"{_describe(request)}: {problem}; retry {retries_done}/"
                        f"{policy.max_retries} in {wait:.2f}s{asked}",
                        secrets,
                    ),
                )
                show()
                policy.sleep(wait)
        position["next"] = total
        show(final=True)
    finally:
        if book is not None:
            book.close()
        if own_client:
            http.close()
    result = summary()
    logger.info("%s", result)
    return result
