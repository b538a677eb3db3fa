"""How HTTP failures from Bitbucket become retries, skips or clear, actionable errors.

* 401 fails at once with a ``config_error`` (wrong email, retired app password, unscoped token).
* 403 names the missing scopes from the error body's ``detail`` (``{"required": [...], "granted": [...]}``).
* 404 on a workspace-level listing means the workspace slug is wrong.
* On a repository's sub-resource (pull requests, commits, deployments) 403 and 404 skip that
  repository for that stream (no access, Pipelines off, deleted mid-sync) with one warning.
* 429, 5xx and network errors are retried with backoff by the CDK's ``HttpClient``.

Source: Bitbucket's error shape ``{"type": "error", "error": {"message", "detail", ...}}``
(narrative "Standardized error responses"); 429 and some 401/404 bodies are plain text.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Mapping, Optional, Union

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import (
    BackoffStrategy,
    ErrorResolution,
    HttpStatusErrorHandler,
    ResponseAction,
)
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import DEFAULT_ERROR_MAPPING
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.concurrency import RateLimitGate

REQUIRED_SCOPES = {
    "repositories": "read:repository:bitbucket",
    "commits": "read:repository:bitbucket",
    "pull_requests": "read:pullrequest:bitbucket",
    "deployments": "read:pipeline:bitbucket",
    "workspace_users": "read:workspace:bitbucket",
}

UNAUTHORIZED_MESSAGE = (
    "Bitbucket rejected the credentials (HTTP 401). Set 'email' to your Atlassian account email "
    "(not the Bitbucket username) and 'api_token' to an API token created with scopes at "
    "https://id.atlassian.com/manage-profile/security/api-tokens (app passwords and unscoped tokens no longer work)."
)


_BODY = "_bitbucket_json"
_NOT_JSON = object()


def json_body(response: requests.Response) -> Optional[Any]:
    """The response's decoded JSON body, decoded once and cached on the response; None when the
    body is not JSON (an HTML error page, a truncated body)."""
    body = _decoded(response)
    return None if body is _NOT_JSON else body


def _decoded(response: requests.Response) -> Any:
    if not hasattr(response, _BODY):
        try:
            body = response.json()
        except ValueError:
            body = _NOT_JSON
        setattr(response, _BODY, body)
    return getattr(response, _BODY)


def _is_page(body: Any) -> bool:
    """A list page: a JSON object with a ``values`` list (the only field Bitbucket guarantees).
    Anything else on a 200 (truncated JSON, an HTML page, a page without ``values``) is retried:
    skipping it would let the cursor move past records never read."""
    return isinstance(body, Mapping) and isinstance(body.get("values"), list)


def error_detail(response: requests.Response) -> str:
    """A one-line description of a Bitbucket error response: its JSON ``error.message`` (and
    ``detail``), or the start of a plain-text body. Never raises."""
    body = _decoded(response)
    if body is _NOT_JSON:
        text = " ".join((response.text or "").split())
        return text[:200] if text and not text.lstrip().startswith("<") else f"HTTP {response.status_code}"
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        parts = [str(error.get("message") or "")]
        detail = error.get("detail")
        if isinstance(detail, Mapping):
            parts.append(f"required scopes: {', '.join(detail.get('required') or [])}")
            parts.append(f"granted scopes: {', '.join(detail.get('granted') or []) or 'none'}")
        elif detail:
            parts.append(str(detail))
        return " ".join("; ".join(p for p in parts if p).split())
    return f"HTTP {response.status_code}"


def forbidden_message(response: requests.Response, stream_name: str) -> str:
    """The message for a 403: what Bitbucket said and which scope the stream needs."""
    scope = REQUIRED_SCOPES.get(stream_name, "the stream's read scope")
    return (
        f"Bitbucket refused access to {stream_name} (HTTP 403: {error_detail(response)}). "
        f"The API token needs the scope {scope}; create a new token with it."
    )


# The CDK looks exceptions up by exact class; name the usual network failures so that they are
# retried as transient errors rather than logged as "unexpected".
_NETWORK_ERRORS = {
    error: ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"Network error ({error.__name__}).")
    for error in (
        requests.ConnectionError,
        requests.Timeout,
        requests.ConnectTimeout,
        requests.ReadTimeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )
}


class BitbucketErrorHandler(HttpStatusErrorHandler):
    """The CDK's status handler with Bitbucket's meanings for 401/403/404.

    Args:
        logger: the stream's logger.
        stream_name: used in messages and to name the missing scope.
        skip_statuses: statuses that skip the current repository (IGNORE) instead of failing;
            ``{403, 404}`` for repository-scoped streams, empty for workspace-level ones.
        workspace: the slug, for the 404 message of workspace-level listings.
        credentials_rejected: set on a 401, so that the source stops the sync at once.
    """

    def __init__(
        self,
        logger: logging.Logger,
        stream_name: str,
        skip_statuses=frozenset(),
        workspace: str = "",
        credentials_rejected: Optional[threading.Event] = None,
        **kwargs: Any,
    ):
        super().__init__(logger=logger, error_mapping={**DEFAULT_ERROR_MAPPING, **_NETWORK_ERRORS}, **kwargs)
        self._stream_name = stream_name
        self._skip_statuses = frozenset(skip_statuses)
        self._workspace = workspace
        self._credentials_rejected = credentials_rejected

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]] = None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            status = response_or_exception.status_code
            if response_or_exception.ok and not _is_page(_decoded(response_or_exception)):
                return ErrorResolution(
                    ResponseAction.RETRY,
                    FailureType.transient_error,
                    f"Bitbucket sent a {self._stream_name} page that is not JSON with a 'values' list (HTTP {status}).",
                )
            if status in self._skip_statuses:
                return ErrorResolution(ResponseAction.IGNORE, FailureType.config_error, None)
            if status == 401:
                if self._credentials_rejected is not None:
                    self._credentials_rejected.set()  # the source stops the whole sync, not just this stream
                return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, UNAUTHORIZED_MESSAGE)
            if status == 403:
                return ErrorResolution(
                    ResponseAction.FAIL, FailureType.config_error, forbidden_message(response_or_exception, self._stream_name)
                )
            if status == 404:
                return ErrorResolution(
                    ResponseAction.FAIL,
                    FailureType.config_error,
                    f"Workspace '{self._workspace}' was not found (HTTP 404). Check 'workspace': it is the slug in "
                    f"https://bitbucket.org/<workspace>/, and the token's account must be a member of it.",
                )
            if status == 400:
                return ErrorResolution(
                    ResponseAction.FAIL,
                    FailureType.system_error,
                    f"Bitbucket rejected a {self._stream_name} request (HTTP 400: {error_detail(response_or_exception)}).",
                )
        return super().interpret_response(response_or_exception)


class BitbucketBackoffStrategy(BackoffStrategy):
    """How long to wait before retrying a 429, a 5xx, a bad body or a network error.

    * ``Retry-After`` (seconds or an HTTP date) is honoured when present; 0 means "wait a little"
      (``MIN_WAIT_SECONDS``), not "don't wait".
    * On a 429 without it, ``X-RateLimit-Reset`` (seconds until the window resets, sent only to
      access tokens) is honoured; otherwise the wait grows exponentially from 5 s up to 5 minutes,
      with jitter (Bitbucket's window is a rolling hour and 429s usually carry no header).
    * Other failures wait 1, 2, 4... seconds up to 1 minute, with jitter.

    Each wait is logged with its length, its cause and when the request resumes. The total time
    one request may spend waiting is the error handler's ``max_time`` (config ``max_waiting_time``).
    A 429 wait also closes the shared ``rate_limit_gate``, so the other readers hold their next
    request until it is over instead of spending the limit further.
    """

    MIN_WAIT_SECONDS = 1.0
    RATE_LIMIT_BASE, RATE_LIMIT_CAP = 5.0, 300.0
    ERROR_BASE, ERROR_CAP = 1.0, 60.0

    def __init__(
        self,
        logger: logging.Logger,
        stream_name: str,
        rate_limit_gate: Optional[RateLimitGate] = None,
        max_waiting_seconds: Optional[float] = None,
    ) -> None:
        self._logger = logger
        self._stream_name = stream_name
        self._gate = rate_limit_gate
        self._budget = max_waiting_seconds
        self._first_failure: "weakref.WeakKeyDictionary[Any, float]" = weakref.WeakKeyDictionary()

    def backoff_time(
        self, response_or_exception: Optional[Union[requests.Response, requests.RequestException]], attempt_count: int
    ) -> Optional[float]:
        wait, cause = self._wait_and_cause(response_or_exception, max(1, attempt_count))
        if self._budget is not None and wait > self._budget:
            message = (
                f"Bitbucket asked to wait {wait:.0f} s ({cause}), longer than max_waiting_time "
                f"({self._budget / 60:g} minutes) allows; stopping so that the next sync resumes from the last state."
            )
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.transient_error)
        if self._gate is not None and isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 429:
            self._gate.close_for(wait)
        if self._budget_spent(response_or_exception):
            self._logger.warning(
                f"{self._stream_name}: giving up after {attempt_count} attempt(s) ({cause}): the max_waiting_time "
                f"budget of {self._budget / 60:g} minutes is spent."
            )
            return wait
        resume = datetime.now(timezone.utc) + timedelta(seconds=wait + 1)
        self._logger.info(
            f"{self._stream_name}: waiting {wait:.1f} s before retry {attempt_count} ({cause}); "
            f"resuming at {resume:%H:%M:%S} UTC."
        )
        return wait

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
