"""The rate limit shared by every reader of a sync: waits learned from answers, and pacing from headers.

* **Shared waits**: once one request is told to back off (HTTP 429, or a retried server error:
  ``backoff.py`` closes the gate for the wait it chose), every stream and prefetch thread holds its next
  page request until the wait is over, instead of each running into the limit on its own.
* **Pacing**: Bitbucket announces the limit to access tokens (scaled rate limits) with
  ``X-RateLimit-Limit`` (requests per hour), ``X-RateLimit-NearLimit`` (true below about 20% left) and,
  by third-party observation, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds until the
  window resets). Once the limit is near (``NearLimit``, or less than ``NEAR_SHARE`` of it remaining),
  requests are spread over the rest of the window: one every ``reset / remaining`` seconds (or
  ``3600 / limit`` without those two), across all threads, instead of ten workers running into 429s.
  Without the headers (API tokens, OAuth consumers) nothing is paced and 429s are handled as before.
  Source: ``shared/docs/bitbucket-api-notes.md`` section 8; https://support.atlassian.com/bitbucket-cloud/docs/api-request-limits/

The CDK's ``HttpAPIBudget`` was considered: its policies need the rate up front (Bitbucket tells it
per token, in the answers) and let a burst run to the limit before blocking, where this spreads the
rest of the window.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Mapping, Optional

NEAR_SHARE = 0.2  # pace once less than this share of the hourly limit remains
LOG_EVERY_SECONDS = 60.0


class RateLimitGate:
    """A shared "do not send before" time (monotonic clock), set by the backoff strategy and by pacing."""

    def __init__(self, logger: Optional[logging.Logger] = None) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self._interval = 0.0  # seconds between requests while pacing; 0: not pacing
        self._next_slot = 0.0
        self._logger = logger
        self._window_start = time.monotonic()
        self._sent_in_window = 0

    def close_for(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` from now (a later deadline wins)."""
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read an answer's ``X-RateLimit-*`` headers and set the pacing interval (0 when far from the limit)."""
        limit = _number(headers.get("X-RateLimit-Limit"))
        if not limit:
            return
        remaining, reset = _number(headers.get("X-RateLimit-Remaining")), _number(headers.get("X-RateLimit-Reset"))
        near = str(headers.get("X-RateLimit-NearLimit", "")).lower() == "true"
        if remaining is not None and reset is not None:
            near = near or remaining < NEAR_SHARE * limit
            interval = reset / max(remaining, 1.0)
        else:
            interval = 3600.0 / limit
        with self._lock:
            was_pacing = self._interval > 0
            self._interval = interval if near else 0.0
        if self._logger and near and not was_pacing:
            left = f"{remaining:.0f} left, the window resets in {reset:.0f} s" if remaining is not None and reset is not None else "near it"
            self._logger.info(f"rate limit: {limit:.0f} requests per window, {left}; pacing at one request every "
                              f"{interval:.2f} s ({60 / interval:.0f} requests/minute) across all streams.")
        elif self._logger and was_pacing and not near:
            self._logger.info("rate limit: no longer near the limit; requests are no longer paced.")

    def wait(self) -> float:
        """Block until the gate is open and, while pacing, until this request's slot; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                remaining = self._resume_at - now
                if remaining <= 0:
                    slot = max(now, self._next_slot) if self._interval else now
                    self._next_slot = slot + self._interval
                    self._count(now)
                    break
            time.sleep(min(remaining, 1.0))
            waited += min(remaining, 1.0)
        if slot > now:
            time.sleep(slot - now)
            waited += slot - now
        return waited

    def _count(self, now: float) -> None:
        """Requests per minute in the log while pacing (under the lock)."""
        self._sent_in_window += 1
        elapsed = now - self._window_start
        if elapsed >= LOG_EVERY_SECONDS:
            if self._interval and self._logger:
                self._logger.info(f"rate limit: {self._sent_in_window / elapsed * 60:.0f} requests/minute over the last "
                                  f"{elapsed:.0f} s (paced at one every {self._interval:.2f} s).")
            self._window_start, self._sent_in_window = now, 0


def _number(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
