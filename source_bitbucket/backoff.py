"""How long to wait before retrying a request, and the one log line that says so.

The CDK's ``HttpClient`` retries what ``errors.BitbucketErrorHandler`` marks RETRY (429, 5xx,
network errors, 200 answers that are not a list page) and asks ``BitbucketBackoffStrategy`` how
long to wait. Source: https://support.atlassian.com/bitbucket-cloud/docs/api-request-limits/ (a rolling
hour; ``Retry-After`` on some 429s, ``X-RateLimit-*`` headers for access tokens).
"""

from __future__ import annotations

import logging
import random
import time
import weakref
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Optional, Union

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.rate_limit import RateLimitGate


class BitbucketBackoffStrategy(BackoffStrategy):
    """How long to wait before retrying a 429, a 5xx, a bad body or a network error.

    * ``Retry-After`` (seconds or an HTTP date) is honoured when present; 0 means "wait a little"
      (``MIN_WAIT_SECONDS``), not "don't wait".
    * On a 429 without it, ``X-RateLimit-Reset`` (seconds until the window resets, sent only to
      access tokens) is honoured; otherwise the wait grows exponentially from 5 s up to 5 minutes,
      with jitter (Bitbucket's window is a rolling hour and 429s usually carry no header).
    * Other failures wait 1, 2, 4... seconds up to 1 minute, with jitter (half to all of it; at least 1 s).

    ``sleep_seconds`` is the time actually slept; ``backoff_time`` hands the CDK one second less,
    because the CDK's handler sleeps ``backoff_time + 1`` (``rate_limiting.user_defined_backoff_handler``).
    Each wait is logged once, by this class, as "<stream> (<where>): waiting S s before retry N
    (<cause>); resuming at HH:MM:SS UTC" with the real resume time; the CDK's own line for the
    same wait ("Rate limit exceeded (HTTP 500)...", which calls every retry a rate limit) is
    dropped (``_DropCdkRetryLine``). ``where`` names the repository or workspace being read on
    the requesting thread. The total time one request may spend waiting is the error handler's
    ``max_time`` (config ``max_waiting_time``). A 429 wait also closes the shared
    ``rate_limit_gate``, so the other readers hold their next request until it is over instead
    of spending the limit further.
    """

    MIN_WAIT_SECONDS = 1.0
    CDK_EXTRA_SLEEP_SECONDS = 1.0
    RATE_LIMIT_BASE, RATE_LIMIT_CAP = 5.0, 300.0
    ERROR_BASE, ERROR_CAP = 1.0, 60.0

    def __init__(
        self,
        logger: logging.Logger,
        stream_name: str,
        rate_limit_gate: Optional[RateLimitGate] = None,
        max_waiting_seconds: Optional[float] = None,
        where: Callable[[], str] = lambda: "",
    ) -> None:
        self._logger = logger
        self._stream_name = stream_name
        self._gate = rate_limit_gate
        self._budget = max_waiting_seconds
        self._where = where
        self._first_failure: "weakref.WeakKeyDictionary[Any, float]" = weakref.WeakKeyDictionary()
        logging.getLogger("airbyte").addFilter(_DROP_CDK_RETRY_LINE)  # idempotent

    def backoff_time(
        self, response_or_exception: Optional[Union[requests.Response, requests.RequestException]], attempt_count: int
    ) -> Optional[float]:
        """The value for the CDK (see the class docstring): ``sleep_seconds`` minus the CDK's extra second."""
        sleep = self.sleep_seconds(response_or_exception, attempt_count)
        return max(sleep - self.CDK_EXTRA_SLEEP_SECONDS, 0.001)

    def sleep_seconds(
        self, response_or_exception: Optional[Union[requests.Response, requests.RequestException]], attempt_count: int
    ) -> float:
        """Seconds until the retry (at least ``MIN_WAIT_SECONDS``); logs the wait.

        Raises:
            AirbyteTracedException: Bitbucket asks for a longer wait than ``max_waiting_time`` allows.
        """
        wait, cause = self._wait_and_cause(response_or_exception, max(1, attempt_count))
        sleep = max(wait, self.MIN_WAIT_SECONDS + 0.001)
        where = self._where()
        who = f"{self._stream_name} ({where})" if where else self._stream_name
        if self._budget is not None and sleep > self._budget:
            message = (
                f"Bitbucket asked to wait {sleep:.0f} s ({cause}), longer than max_waiting_time "
                f"({self._budget / 60:g} minutes) allows; stopping so that the next sync resumes from the last state."
            )
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.transient_error)
        if self._gate is not None and isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 429:
            self._gate.close_for(sleep)
        if self._budget_spent(response_or_exception):
            self._logger.warning(
                f"{who}: giving up after {attempt_count} attempt(s) ({cause}): the max_waiting_time "
                f"budget of {self._budget / 60:g} minutes is spent."
            )
            return sleep
        resume = datetime.now(timezone.utc) + timedelta(seconds=sleep)
        self._logger.info(f"{who}: waiting {sleep:.1f} s before retry {attempt_count} ({cause}); resuming at {resume:%H:%M:%S} UTC.")
        return sleep

    def _budget_spent(self, response_or_exception: Any) -> bool:
        """Whether the CDK will give up instead of retrying: its ``max_time`` counts from the first
        attempt of the same request (the CDK reuses the request object across retries)."""
        request = getattr(response_or_exception, "request", None)
        if self._budget is None or request is None:
            return False
        now = time.monotonic()
        try:
            first = self._first_failure.setdefault(request, now)
        except TypeError:  # not weak-referenceable
            return False
        return now - first >= self._budget

    def _wait_and_cause(self, response_or_exception: Any, attempt: int) -> tuple:
        if not isinstance(response_or_exception, requests.Response):
            return _jittered(self.ERROR_BASE, self.ERROR_CAP, attempt), f"network error: {type(response_or_exception).__name__}"
        status = response_or_exception.status_code
        retry_after = parse_retry_after(response_or_exception.headers.get("Retry-After"))
        if retry_after is not None:
            return max(retry_after, self.MIN_WAIT_SECONDS), f"HTTP {status}, Retry-After"
        if status == 429:
            reset = _seconds(response_or_exception.headers.get("X-RateLimit-Reset"))
            if reset is not None:
                return max(reset, self.MIN_WAIT_SECONDS), "HTTP 429 rate limit, X-RateLimit-Reset"
            return _jittered(self.RATE_LIMIT_BASE, self.RATE_LIMIT_CAP, attempt), "HTTP 429 rate limit"
        if response_or_exception.ok:
            return _jittered(self.ERROR_BASE, self.ERROR_CAP, attempt), f"HTTP {status} but not a JSON page with 'values'"
        return _jittered(self.ERROR_BASE, self.ERROR_CAP, attempt), f"HTTP {status}"


class _DropCdkRetryLine(logging.Filter):
    """Drops the CDK's "UserDefinedBackoffException: Rate limit exceeded (HTTP 500). Retrying in N
    seconds." line: ``BitbucketBackoffStrategy`` logs each wait itself, with its real cause, the
    stream, the repository and the resume time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("UserDefinedBackoffException:")


_DROP_CDK_RETRY_LINE = _DropCdkRetryLine()


def parse_retry_after(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or unparsable."""
    if value is None or not str(value).strip():
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(str(value))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def _seconds(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(str(value).strip()))
    except (TypeError, ValueError):
        return None


def _jittered(base: float, cap: float, attempt: int) -> float:
    """Exponential backoff ``base * 2**(attempt-1)`` capped at ``cap``, scaled by a random 0.5–1.0."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
