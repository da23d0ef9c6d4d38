"""When to try a request again, how long to wait, and when to stop: the retry policy.

:func:`~segmentkit.exporters.push` classifies each attempt into an :class:`Outcome`
and asks its :class:`RetryPolicy` what to do. The policy is immutable and holds its
clock and sleep, so tests pass a fake clock and never sleep.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = [
    "ACKNOWLEDGED",
    "CONNECTION_ERROR",
    "REFUSED",
    "RETRYABLE_STATUS",
    "TIMEOUT",
    "Outcome",
    "RetryPolicy",
    "retry_after",
]

#: Outcome kinds of one attempt.
ACKNOWLEDGED = "acknowledged"  # a 2xx answer
RETRYABLE_STATUS = "retryable_status"  # a status the destination lists as retryable
REFUSED = "refused"  # any other status
TIMEOUT = "timeout"  # no answer in time
CONNECTION_ERROR = "connection_error"  # connecting or the connection failed


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave.

    Parameters
    ----------
    kind : str
        ``ACKNOWLEDGED``, ``RETRYABLE_STATUS``, ``REFUSED``, ``TIMEOUT`` or
        ``CONNECTION_ERROR``.
    problem : str or None
        What went wrong, for messages (already scrubbed of personal data).
    status : int or None
        HTTP status, when there was an answer.
    maybe_applied : bool
        The platform may have applied the request although the answer was lost.
    retry_after : float or None
        Seconds a ``Retry-After`` header asked for.
    """

    kind: str
    problem: str | None = None
    status: int | None = None
    maybe_applied: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long apart, and until when a request is tried.

    Parameters
    ----------
    max_retries : int, default=5
        Attempts after the first before giving up.
    backoff, max_backoff : float, default=0.5, 30
        Base and cap of the waits, in seconds; ``max_backoff`` caps ``Retry-After`` too.
    deadline : float or None, default=3600
        Seconds the whole push may take from ``started``; ``None`` for no limit.
    retry_on : frozenset of str
        Outcome kinds worth another attempt.
    clock : callable, default=time.monotonic
        Monotonic seconds.
    sleep : callable, default=time.sleep
        Waits that many seconds.
    """

    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    deadline: float | None = 3600.0
    retry_on: frozenset[str] = frozenset({RETRYABLE_STATUS, TIMEOUT, CONNECTION_ERROR})
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def remaining(self, started: float) -> float:
        """Seconds left before the deadline (``inf`` without one)."""
        return math.inf if self.deadline is None else self.deadline - (self.clock() - started)

    def retries(self, outcome: Outcome) -> bool:
        """Whether the outcome is worth another attempt (if any are left)."""
        return outcome.kind in self.retry_on

    def gives_up(self, retries_done: int) -> bool:
        """Whether every retry is spent."""
        return retries_done >= self.max_retries

    def wait(
        self, retries_done: int, asked: float | None, rng: random.Random
    ) -> tuple[float, bool]:
        """Seconds to wait before the next attempt, and whether ``asked`` was capped.

        Full jitter, ``uniform(0, min(max_backoff, backoff * 2**retries_done))``, unless
        the platform asked for a time (``Retry-After``), which is honoured up to
        ``max_backoff``.
        """
        if asked is None:
            return rng.uniform(0, min(self.max_backoff, self.backoff * 2**retries_done)), False
        return min(asked, self.max_backoff), asked > self.max_backoff


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
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
