"""Retries, waits, pagination guards and failure messages (HTTP mocked, sleeps recorded not slept)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import responses

from source_bitbucket.errors import BitbucketBackoffStrategy, parse_retry_after
from unit_tests.conftest import API, WORKSPACE, page, repository, repository_url, run_read

LISTING = f"{API}/repositories/{WORKSPACE}"


@pytest.fixture
def sleeps(monkeypatch):
    """Record the CDK's retry sleeps (the backoff library's own 0 s sleeps left out) instead of sleeping."""
    slept = []
    monkeypatch.setattr("airbyte_cdk.sources.streams.http.rate_limiting.time.sleep", lambda s: s and slept.append(s))
    return slept


def response(status: int, headers=None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers or {})
    r._content = b""
    return r


def strategy() -> BitbucketBackoffStrategy:
    return BitbucketBackoffStrategy(logging.getLogger("test"), "pull_requests")


@pytest.mark.parametrize("value,expected", [("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("", None), (None, None), ("soon", None)])
def test_retry_after_in_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0


def test_retry_after_is_honoured_and_zero_still_waits_a_little():
    assert strategy().backoff_time(response(429, {"Retry-After": "42"}), 1) == 42.0
    assert strategy().backoff_time(response(503, {"Retry-After": "0"}), 1) == BitbucketBackoffStrategy.MIN_WAIT_SECONDS


def test_rate_limit_reset_header_is_honoured_on_429():
    assert strategy().backoff_time(response(429, {"X-RateLimit-Reset": "120"}), 3) == 120.0


def test_429_without_headers_backs_off_exponentially_with_jitter_up_to_the_cap():
    waits = [strategy().backoff_time(response(429), attempt) for attempt in range(1, 10)]
    for attempt, wait in enumerate(waits, start=1):
        full = min(300.0, 5.0 * 2 ** (attempt - 1))
        assert full / 2 <= wait <= full
    assert waits[-1] <= 300.0 and len({round(w, 6) for w in waits}) > 1


def test_server_errors_and_network_errors_back_off_from_one_second():
    assert 0.5 <= strategy().backoff_time(response(502), 1) <= 1.0
    assert 30.0 <= strategy().backoff_time(requests.ConnectionError("reset"), 7) <= 60.0


def test_each_wait_is_logged_with_its_length_cause_and_resume_time(caplog):
    with caplog.at_level(logging.INFO, logger="test"):
        strategy().backoff_time(response(429, {"Retry-After": "5"}), 2)
    [message] = [r.getMessage() for r in caplog.records]
    assert "pull_requests: waiting 5.0 s before retry 2 (HTTP 429, Retry-After); resuming at" in message


@responses.activate
def test_429_then_success_reads_everything_after_waiting(config, sleeps):
    responses.get(LISTING, status=429, body="Rate limit for this resource has been exceeded")
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(config, ["repositories"])

    assert len(output.records) == 1 and not output.errors
    assert len(sleeps) == 1 and 3.5 <= sleeps[0] <= 6.0  # jittered 2.5-5 s, plus the CDK's extra second


@responses.activate
def test_a_page_that_is_not_json_is_retried(config, sleeps):
    responses.get(LISTING, body='{"values": [{"uuid": "{trunc', status=200)
    responses.get(LISTING, body="<html><body>502 Bad Gateway</body></html>", status=200)
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(config, ["repositories"])

    assert len(output.records) == 1 and not output.errors
    assert len(sleeps) == 2


@responses.activate
def test_when_the_wait_budget_is_spent_the_error_names_stream_repository_and_status(config, sleeps):
    config["max_waiting_time"] = 0.001
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(repository_url(repo, "pullrequests"), status=503, body="<html>Service Unavailable</html>")

    output = run_read(config, ["pull_requests"], expect_failure=True)

    messages = [e.trace.error.message for e in output.errors]
    assert any("pull_requests (repository acme/repo-1)" in m and "503" in m for m in messages), messages
    assert not any("JSONDecodeError" in m or "Traceback" in m for m in messages)


@responses.activate
def test_a_next_link_to_another_host_is_refused(config):
    responses.get(LISTING, json=page([repository(1)], "https://evil.example.com/2.0/repositories/acme?page=2"))

    output = run_read(config, ["repositories"], expect_failure=True)

    assert len(responses.calls) == 1
    assert any("refusing to send credentials" in e.trace.error.message for e in output.errors)


@responses.activate
def test_a_next_link_that_cycles_stops_with_an_error(config):
    page2, page3 = f"{LISTING}?page=2", f"{LISTING}?page=3"
    responses.get(LISTING, json=page([repository(1)], page2))
    responses.get(page2, json=page([repository(2)], page3), match=[responses.matchers.query_param_matcher({"page": "2"})])
    responses.get(page3, json=page([repository(3)], page2), match=[responses.matchers.query_param_matcher({"page": "3"})])

    output = run_read(config, ["repositories"], expect_failure=True)

    assert len(responses.calls) == 3
    assert any("repeats a page already read" in e.trace.error.message for e in output.errors)
