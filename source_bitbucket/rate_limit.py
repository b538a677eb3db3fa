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
from typing import Mapping, Optional, Sequence

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
        self.sent = 0  # requests let through in this sync (page requests of every stream)

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
        """The requests spent so far and per minute, in the log once a minute (under the lock)."""
        self.sent += 1
        self._sent_in_window += 1
        elapsed = now - self._window_start
        if elapsed >= LOG_EVERY_SECONDS:
            if self._logger:
                paced = f"; paced at one every {self._interval:.2f} s" if self._interval else ""
                self._logger.info(f"requests: {self.sent} sent in this sync so far, {self._sent_in_window / elapsed * 60:.0f} "
                                  f"per minute over the last {elapsed:.0f} s{paced}.")
            self._window_start, self._sent_in_window = now, 0


HOURLY_LIMIT = 1000  # requests per rolling hour: API tokens (per user), OAuth consumers, unscaled access tokens


def estimate_message(repositories: int, per_repository: Sequence[str], per_pull_request: Sequence[str],
                     workspace_level: Sequence[str], auth_type: str) -> str:
    """The log line, once the repository listing is read, that tells how long the sync may take: at least
    one request per repository for each repository-scoped stream selected and one per workspace-level
    stream (more for listings of more than one page; fewer where the skip rule or an unchanged cursor
    skips a repository), plus about one per pull request read for each per-pull-request stream (two for
    the diffstat), not known yet; against the hourly limit of the credentials."""
    floor = repositories * len(per_repository) + len(workspace_level)
    limit = (f"{HOURLY_LIMIT:,}/hour, or the scaled limit Bitbucket announces for the token (up to 10,000)"
             if auth_type == "access_token" else f"{HOURLY_LIMIT:,}/hour")
    hours = floor / HOURLY_LIMIT
    duration = f"at least {hours:.1f} hours of the budget" if hours >= 1 else "minutes"
    later = (f", plus about {len(per_pull_request) + ('pull_request_diffstat' in per_pull_request)} per pull request "
             f"updated for {', '.join(per_pull_request)}") if per_pull_request else ""
    return (f"request estimate: {repositories} repositories x {len(per_repository)} repository-scoped streams + "
            f"{len(workspace_level)} workspace-level: at least {floor:,} requests{later}; limit {limit}: {duration}.")


def _number(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
