"""Retries, waits, pagination guards and failure messages (HTTP mocked, sleeps recorded not slept)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import responses

from source_bitbucket.backoff import BitbucketBackoffStrategy, parse_retry_after
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
    assert strategy().sleep_seconds(response(429, {"Retry-After": "42"}), 1) == 42.0
    assert 1.0 <= strategy().sleep_seconds(response(503, {"Retry-After": "0"}), 1) <= 1.01


def test_the_cdk_is_handed_one_second_less_than_the_sleep_because_it_adds_one():
    assert strategy().backoff_time(response(429, {"Retry-After": "42"}), 1) == 41.0
    assert 0 < strategy().backoff_time(response(503, {"Retry-After": "0"}), 1) < 0.01  # never 0: the CDK would ignore it


def test_rate_limit_reset_header_is_honoured_on_429():
    assert strategy().sleep_seconds(response(429, {"X-RateLimit-Reset": "120"}), 3) == 120.0


def test_429_without_headers_backs_off_exponentially_with_jitter_up_to_the_cap():
    waits = [strategy().sleep_seconds(response(429), attempt) for attempt in range(1, 10)]
    for attempt, wait in enumerate(waits, start=1):
        full = min(300.0, 5.0 * 2 ** (attempt - 1))
        assert full / 2 <= wait <= full
    assert waits[-1] <= 300.0 and len({round(w, 6) for w in waits}) > 1


def test_server_errors_and_network_errors_back_off_from_one_second():
    assert 1.0 <= strategy().sleep_seconds(response(502), 1) <= 2.0
    assert 30.0 <= strategy().sleep_seconds(requests.ConnectionError("reset"), 7) <= 60.0


def test_each_wait_is_logged_once_with_its_length_cause_where_and_real_resume_time(caplog):
    named = BitbucketBackoffStrategy(logging.getLogger("test"), "pull_requests", where=lambda: "repository acme/api")
    with caplog.at_level(logging.INFO, logger="test"):
        before = datetime.now(timezone.utc)
        named.backoff_time(response(429, {"Retry-After": "5"}), 2)
    [message] = [r.getMessage() for r in caplog.records]
    assert "pull_requests (repository acme/api): waiting 5.0 s before retry 2 (HTTP 429, Retry-After); resuming at" in message
    resume = datetime.strptime(message.rsplit("resuming at ", 1)[1], "%H:%M:%S UTC.").time()
    expected = (before + timedelta(seconds=5)).time().replace(microsecond=0)
    assert abs((datetime.combine(before.date(), resume) - datetime.combine(before.date(), expected)).total_seconds()) <= 1


@responses.activate
def test_the_cdk_retry_line_is_dropped_and_the_real_sleep_is_the_logged_wait(config, sleeps):
    responses.get(LISTING, status=500, body="oops", headers={"Retry-After": "3"})
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(config, ["repositories"])

    assert sleeps == [3.0]
    waits = [m.log.message for m in output.logs if "before retry" in m.log.message]
    assert waits == [waits[0]] and "repositories (workspace acme): waiting 3.0 s before retry 1 (HTTP 500, Retry-After)" in waits[0]
    assert not [m for m in output.logs if "Rate limit exceeded" in m.log.message]


@responses.activate
def test_429_then_success_reads_everything_after_waiting(config, sleeps):
    responses.get(LISTING, status=429, body="Rate limit for this resource has been exceeded")
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(config, ["repositories"])

    assert len(output.records) == 1 and not output.errors
    assert len(sleeps) == 1 and 2.5 <= sleeps[0] <= 5.0  # jittered 2.5-5 s, as logged


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


def deployment(uuid: str, completed_on: str) -> dict:
    return {"uuid": uuid, "state": {"name": "COMPLETED", "completed_on": completed_on}}


@responses.activate
def test_a_403_or_404_on_a_later_page_reads_the_repository_again_instead_of_skipping_the_rest(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    url = repository_url(repo, "deployments")
    page2 = f"{url}?page=2"
    first = {"values": [deployment("{d3}", "2024-03-03T00:00:00Z")], "next": page2, "size": 3}
    second = {"values": [deployment("{d2}", "2024-03-02T00:00:00Z"), deployment("{d1}", "2024-03-01T00:00:00Z")], "size": 3}
    responses.get(url, json=first, match=[responses.matchers.query_param_matcher({"pagelen": "100"})])
    responses.get(page2, status=404, body="Not Found", match=[responses.matchers.query_param_matcher({"page": "2"})])
    responses.get(page2, json=second, match=[responses.matchers.query_param_matcher({"page": "2"})])

    output = run_read(config, ["deployments"])

    assert not output.errors
    assert {r.record.data["uuid"] for r in output.records} == {"{d1}", "{d2}", "{d3}"}
    assert any("reading it again from the first page" in m.log.message and "HTTP 404 on a later page" in m.log.message
               for m in output.logs)


@responses.activate
def test_a_listing_that_shrinks_or_repeats_an_item_while_read_is_read_again(config):
    """An item leaving the listing (or moving behind the pages read) makes the next one slide onto a
    page already read: the second walk reads it."""
    page2 = f"{LISTING}?page=2"
    r1, r2, r3 = repository(1), repository(2), repository(3)
    walks = [
        ({"values": [r1, r2], "next": page2, "size": 3}, {"values": [], "size": 2}),  # r2 left; r3 slid onto page 1
        ({"values": [r1, r3], "next": page2, "size": 2}, {"values": [r1], "size": 2}),  # r1 moved to the end: seen twice
        ({"values": [r2, r3], "next": page2, "size": 3}, {"values": [r1], "size": 3}),
    ]
    for first, second in walks:
        responses.get(LISTING, json=first, match=[responses.matchers.query_param_matcher({"pagelen": "100"})])
        responses.get(page2, json=second, match=[responses.matchers.query_param_matcher({"page": "2"})])

    output = run_read(config, ["repositories"])

    assert not output.errors
    assert {r.record.data["uuid"] for r in output.records} == {r1["uuid"], r2["uuid"], r3["uuid"]}
    warnings = [m.log.message for m in output.logs if "reading it again" in m.log.message]
    assert len(warnings) == 2 and "shrank from 3 to 2" in warnings[0] and "came twice" in warnings[1]


@responses.activate
def test_a_listing_that_keeps_changing_fails_cleanly_after_three_walks(config):
    page2 = f"{LISTING}?page=2"
    responses.get(LISTING, json={"values": [repository(1)], "next": page2, "size": 5},
                  match=[responses.matchers.query_param_matcher({"pagelen": "100"})])
    responses.get(page2, json={"values": [], "size": 4}, match=[responses.matchers.query_param_matcher({"page": "2"})])

    output = run_read(config, ["repositories"], expect_failure=True)

    assert len(responses.calls) == 6
    assert any("repositories (workspace acme): the listing kept changing" in e.trace.error.message for e in output.errors)


def test_an_http_date_beyond_any_calendar_is_ignored_not_a_crash():
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") > 2.5e11  # thousands of years, as a number
    assert parse_retry_after("Mon, 99 Foo 99999 99:99:99 GMT") is None


@responses.activate
def test_a_retry_after_longer_than_the_wait_budget_stops_at_once_with_a_clear_error(config, sleeps):
    config["max_waiting_time"] = 0.05  # 3 s
    responses.get(LISTING, status=429, body="Rate limit for this resource has been exceeded", headers={"Retry-After": "120"})

    output = run_read(config, ["repositories"], expect_failure=True)

    assert sleeps == [] and len(responses.calls) == 1
    assert any("asked to wait 120 s" in e.trace.error.message and "max_waiting_time" in e.trace.error.message
               for e in output.errors)
