"""One contract over every stream read once per parent record, through ``read``: the registered
repository-scoped streams (``STREAM_CLASSES``) and the test-only streams of ``fixture_streams`` (one
repository-scoped, two pull-request-scoped), which show that a new stream gets these checks by
being registered.

The checks: the request URL and its first-page ``pagelen``, pagination by the ``next`` link
verbatim, the parent fields on every record, a plain 403 or a 404 on one partition (a repository,
or a pull request) skipping only it with one warning, and Bitbucket's scope error failing the
stream with a message naming the class's ``required_scope``. For pull-request-scoped streams also:
the pull request listing is read once per repository per sync, whichever number of such streams is
selected, and the state is per repository, at the newest pull request read.
"""

from __future__ import annotations

from typing import Any, Dict, List
from urllib.parse import parse_qs, quote, urlparse

import pytest
import responses
from airbyte_cdk.models import SyncMode

from source_bitbucket.streams import STREAM_CLASSES, PipelineSteps, PullRequestActivity, PullRequestDiffstat
from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream
from unit_tests.conftest import API, WORKSPACE, final_state, page, repository, repository_url, run_read
from unit_tests.fixture_streams import FIXTURE_STREAMS, PullRequestStatuses, PullRequestTasks, registered

LISTING = f"{API}/repositories/{WORKSPACE}"
SCOPED = [c for c in STREAM_CLASSES + FIXTURE_STREAMS if issubclass(c, RepositoryScopedStream)]
PULL_REQUEST_UPDATED_ON = "2024-03-05T00:00:00.000000+00:00"


@pytest.fixture(autouse=True)
def fixture_streams(monkeypatch):
    registered(monkeypatch, *FIXTURE_STREAMS)


def item(stream_class, n: int) -> Dict[str, Any]:
    """A minimal API object: the stream's own key fields (not the parents') and its cursor, dated after
    start_date; for the streams whose key the connector lifts or computes, the fields it comes from."""
    date = f"2024-03-0{10 - n}T00:00:00+00:00"  # newest first
    if stream_class is PullRequestActivity:
        return {"pull_request": {"id": n}, "approval": {"date": date, "user": {"uuid": f"{{user-{n}}}"}}}
    if stream_class is PullRequestDiffstat:
        return {"status": "added", "old": None, "new": {"path": f"src/f{n}.py"}}
    key = [stream_class.primary_key] if isinstance(stream_class.primary_key, str) else stream_class.primary_key
    values: Dict[str, Any] = {"id": n, "hash": f"{n:040x}", "uuid": f"{{0000{n:04d}-0000-0000-0000-000000000000}}",
                              "name": f"v{n}", "key": f"build-{n}"}
    record = {field: values[field] for field in key if not field.startswith(("repository_", "pull_request_", "pipeline_"))}
    if isinstance(stream_class.cursor_field, str) and not issubclass(stream_class, PullRequestScopedStream):
        record[stream_class.cursor_field] = date
    return record


def pipeline_uuid(n: int) -> str:
    return f"{{0000{n:04d}-1111-0000-0000-000000000000}}"


def partition_url(stream_class, repo: Dict[str, Any], parent_n: int) -> str:
    """The first-page URL of one partition: the repository's resource, or one pull request's or pipeline's."""
    if issubclass(stream_class, PullRequestScopedStream):
        return repository_url(repo, f"pullrequests/{parent_n}/{stream_class.resource}")
    if issubclass(stream_class, PipelineSteps):
        return repository_url(repo, f"pipelines/{quote(pipeline_uuid(parent_n), safe='')}/steps/")
    return repository_url(repo, stream_class.resource)


def no_page_param(request) -> tuple:
    """A responses matcher: the request asks for the first page (no ``page`` parameter)."""
    return "page" not in parse_qs(urlparse(request.url).query), "a page parameter was sent"


def arm(stream_class, second: Dict[str, Any]) -> tuple:
    """Two repositories (one pull request each): the first partition answers two pages, the
    second answers ``second`` (responses kwargs)."""
    repos = [repository(1), repository(2)]
    responses.get(LISTING, json=page(repos))
    if issubclass(stream_class, PullRequestScopedStream):
        for n, repo in enumerate(repos, start=1):
            responses.get(repository_url(repo, "pullrequests"), json=page([{"id": n, "updated_on": PULL_REQUEST_UPDATED_ON}]))
    if issubclass(stream_class, PipelineSteps):
        for n, repo in enumerate(repos, start=1):
            pipeline = {"uuid": pipeline_uuid(n), "created_on": PULL_REQUEST_UPDATED_ON, "state": {"name": "COMPLETED"}}
            responses.get(repository_url(repo, "pipelines/"), json={**page([pipeline]), "size": 1})
    first = partition_url(stream_class, repos[0], 1)
    next_url = f"{first}?page=2&pagelen={stream_class.page_size}&opaque=kept"
    responses.get(first, json=page([item(stream_class, 1)], next_url), match=[no_page_param])
    responses.get(first, json=page([item(stream_class, 2)]),
                  match=[responses.matchers.query_param_matcher({"page": "2"}, strict_match=False)])
    responses.get(first, json=page([]),  # a listing whose next page is built ends on an empty page
                  match=[responses.matchers.query_param_matcher({"page": "3"}, strict_match=False)])
    responses.get(partition_url(stream_class, repos[1], 2), **second)
    return repos, first, next_url


@pytest.mark.parametrize("status, body", [(403, {"type": "error", "error": {"message": "Forbidden"}}),
                                          (404, {"type": "error", "error": {"message": "Repository not found"}})])
@pytest.mark.parametrize("stream_class", SCOPED, ids=lambda c: c.name)
@responses.activate
def test_a_per_parent_stream_pages_decorates_and_skips_one_partition(config, stream_class, status, body):
    repos, first, next_url = arm(stream_class, {"status": status, "json": body})

    output = run_read({**config, "num_workers": 1}, [stream_class.name], SyncMode.incremental)

    assert not output.errors
    calls = [c.request.url for c in responses.calls if c.request.url.startswith(first)]
    assert urlparse(calls[0]).path == urlparse(first).path
    assert parse_qs(urlparse(calls[0]).query)["pagelen"] == [str(stream_class.page_size)]
    if stream_class.follows_next:
        assert calls[1] == next_url  # followed verbatim: nothing re-appended
    else:  # built on the first page's URL: the same parameters, page 2
        assert parse_qs(urlparse(calls[1]).query) == {**parse_qs(urlparse(calls[0]).query), "page": ["2"]}
    records = [r.record.data for r in output.records]
    assert len(records) == 2
    assert all(r["repository_uuid"] == repos[0]["uuid"] and r["repository_full_name"] == repos[0]["full_name"] for r in records)
    if issubclass(stream_class, PullRequestScopedStream):
        assert all(r["pull_request_id"] == 1 and r["pull_request_updated_on"] == PULL_REQUEST_UPDATED_ON for r in records)
    warnings = [m.log.message for m in output.logs if m.log.message.startswith("Skipping ")]
    if status in stream_class.feature_off_statuses:  # the feature is off there: one info line, no warning
        assert not warnings, warnings
        infos = [m.log.message for m in output.logs if repos[1]["full_name"] in m.log.message and f"HTTP {status}" in m.log.message]
        assert len(infos) == 1 and stream_class.feature_off in infos[0], infos
    else:
        assert len(warnings) == 1 and repos[1]["full_name"] in warnings[0] and f"HTTP {status}" in warnings[0], warnings


@pytest.mark.parametrize("stream_class", SCOPED, ids=lambda c: c.name)
@responses.activate
def test_a_scope_error_fails_a_per_parent_stream_naming_its_scope(config, stream_class):
    scope_error = {"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.",
                                              "detail": {"required": [], "granted": ["read:user:bitbucket"]}}}
    arm(stream_class, {"status": 403, "json": scope_error})

    output = run_read({**config, "num_workers": 1}, [stream_class.name], SyncMode.incremental, expect_failure=True)

    messages = [e.trace.error.message for e in output.errors if e.trace.error.stream_descriptor]
    assert messages and all(stream_class.required_scope in m for m in messages), messages


def pull_request(n: int, day: int, comment_count: int = 0) -> Dict[str, Any]:
    return {"id": n, "updated_on": f"2024-03-{day:02d}T00:00:00.000000+00:00", "comment_count": comment_count, "state": "OPEN"}


@pytest.mark.parametrize("workers", [1, 4])
@responses.activate
def test_pull_request_scoped_streams_share_one_pull_request_listing_per_repository(config, workers):
    repos = [repository(1), repository(2)]
    responses.get(LISTING, json=page(repos))
    listings = [responses.get(repository_url(repo, "pullrequests"), json=page([pull_request(1, 3), pull_request(2, 4)]))
                for repo in repos]
    for repo in repos:
        for n in (1, 2):
            for stream_class in (PullRequestTasks, PullRequestStatuses):
                responses.get(partition_url(stream_class, repo, n), json=page([item(stream_class, n)]))

    output = run_read({**config, "num_workers": workers}, ["pull_request_tasks", "pull_request_statuses"], SyncMode.incremental)

    assert not output.errors
    assert [listing.call_count for listing in listings] == [1, 1]  # not once per stream
    params = parse_qs(urlparse(listings[0].calls[0].request.url).query)
    assert params["q"] == ["updated_on>2021-01-01T00:00:00.000000+00:00"] and params["sort"] == ["updated_on"]
    assert "values.id" in params["fields"][0] and "participants" not in params["fields"][0]  # trimmed to what is used
    assert len(output.records) == 8
    for name in ("pull_request_tasks", "pull_request_statuses"):
        assert final_state(output, name) == {repo["uuid"]: {"pull_request_updated_on": "2024-03-04T00:00:00.000000+00:00"}
                                             for repo in repos}


class CommentedOnly(PullRequestTasks):
    """Reads only pull requests with comments (``wants``), as a comments stream would."""

    name = "pull_request_tasks"

    def wants(self, pull_request: Dict[str, Any]) -> bool:
        return bool(pull_request.get("comment_count"))


@responses.activate
def test_the_next_sync_asks_only_for_pull_requests_updated_since_and_skipped_ones_count_as_read(config, monkeypatch):
    registered(monkeypatch, CommentedOnly)
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    listing = responses.get(repository_url(repo, "pullrequests"), json=page([pull_request(1, 3, comment_count=2), pull_request(2, 6)]))
    tasks = responses.get(partition_url(CommentedOnly, repo, 1), json=page([item(CommentedOnly, 1)]))
    uncommented = responses.get(partition_url(CommentedOnly, repo, 2), json=page([]))
    state = {"pull_request_tasks": {repo["uuid"]: {"pull_request_updated_on": "2024-03-02T00:00:00+00:00"}}}

    output = run_read({**config, "num_workers": 1}, ["pull_request_tasks"], SyncMode.incremental, state=state)

    assert parse_qs(urlparse(listing.calls[0].request.url).query)["q"] == ["updated_on>2024-03-02T00:00:00.000000+00:00"]
    assert (tasks.call_count, uncommented.call_count) == (1, 0)
    assert [r.record.data["pull_request_id"] for r in output.records] == [1]
    # the pull request without comments was not read, and it is behind the cursor now: not asked for again
    assert final_state(output, "pull_request_tasks") == {repo["uuid"]: {"pull_request_updated_on": "2024-03-06T00:00:00.000000+00:00"}}


def _registry_names() -> List[str]:
    return [c.name for c in STREAM_CLASSES]


def test_fixture_streams_are_not_shipped():
    assert not set(_registry_names()) & {c.name for c in FIXTURE_STREAMS}
