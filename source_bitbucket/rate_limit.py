"""A rate-limit wait shared by every reader of a sync.

Once one request is told to back off (HTTP 429, or a retried server error: ``backoff.py`` closes the
gate for the wait it chose), every stream and prefetch thread holds its next page request until the
wait is over, instead of each running into the limit on its own. The CDK's ``api_budget``
(``HttpAPIBudget``) paces requests ahead of time by configured call rates; it does not share a
wait learned from an answer, which is what this does (pacing from Bitbucket's ``X-RateLimit-*``
headers is issue 13's).
"""

from __future__ import annotations

import threading
import time


class RateLimitGate:
    """A shared "do not send before" time (monotonic clock), set by the backoff strategy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def close_for(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` from now (a later deadline wins)."""
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def wait(self) -> float:
        """Block until the gate is open; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                remaining = self._resume_at - time.monotonic()
            if remaining <= 0:
                return waited
            time.sleep(min(remaining, 1.0))
            waited += min(remaining, 1.0)
