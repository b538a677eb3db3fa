"""Each stream's requests, pagination, records and state, through the real entrypoint (HTTP mocked)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from airbyte_cdk.models import FailureType, SyncMode

from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.streams import STREAM_CLASSES
from unit_tests.conftest import API, WORKSPACE, final_state, page, repository, repository_url, run_read

LISTING = f"{API}/repositories/{WORKSPACE}"


def query(call) -> dict:
    return parse_qs(urlparse(call.request.url).query)


def calls_to(url: str):
    return [c for c in responses.calls if c.request.url.split("?")[0] == url]


def pull_request(repo_n: int, pr_id: int, updated_on: str) -> dict:
    return {"type": "pullrequest", "id": pr_id, "title": f"PR {pr_id}", "state": "MERGED", "updated_on": updated_on}


def commit(sha: str, date: str, parents=()) -> dict:
    return {"type": "commit", "hash": sha, "date": date, "parents": [{"hash": p, "type": "commit"} for p in parents]}


@responses.activate
def test_repositories_full_refresh_reads_every_page_following_next_verbatim(config):
    next_url = f"{LISTING}?page=2&pagelen=100"
    responses.get(LISTING, json=page([repository(1), repository(2)], next_url))
    responses.get(next_url, json=page([repository(3)]))

    output = run_read(config, ["repositories"])

    assert [r.record.data["uuid"] for r in output.records] == [repository(n)["uuid"] for n in (1, 2, 3)]
    assert query(responses.calls[0]) == {"pagelen": ["100"]}
    assert responses.calls[1].request.url == next_url


@responses.activate
def test_repositories_incremental_filters_on_the_server_and_advances_the_cursor(config):
    responses.get(LISTING, json=page([repository(3), repository(5)]))

    output = run_read(config, ["repositories"], SyncMode.incremental, state={"repositories": {"updated_on": "2024-01-02T00:00:00Z"}})

    assert query(responses.calls[0]) == {
        "pagelen": ["100"],
        "q": ["updated_on>2024-01-02T00:00:00.000000+00:00"],
        "sort": ["updated_on"],
    }
    assert len(output.records) == 2
    assert final_state(output, "repositories") == {"updated_on": "2024-01-05T00:00:00.000000+00:00"}


@responses.activate
def test_with_a_repository_scoped_stream_selected_the_listing_is_read_once_and_filtered_here(config):
    newer, older, newest = repository(2), repository(1), repository(3)
    newer["updated_on"], newest["updated_on"] = "2024-01-02T00:00:00.5+01:00", "2024-03-01T00:00:00Z"
    responses.get(LISTING, json=page([newest, older, newer]))
    for repo in (newer, older, newest):
        responses.get(repository_url(repo, "deployments"), json=page([]))
    state = {"repositories": {"updated_on": "2024-01-01T12:00:00Z"}}

    output = run_read(config, ["repositories", "deployments"], SyncMode.incremental, state=state)

    assert not output.errors
    assert len(calls_to(LISTING)) == 1 and query(calls_to(LISTING)[0]) == {"pagelen": ["100"]}  # the whole listing, once
    # what q=updated_on>cursor&sort=updated_on would answer: after the cursor (as instants), oldest first
    assert [r.record.data["uuid"] for r in output.records if r.record.stream == "repositories"] == [newer["uuid"], newest["uuid"]]
    assert final_state(output, "repositories") == {"updated_on": "2024-03-01T00:00:00.000000+00:00"}


@responses.activate
def test_a_later_start_date_beats_an_older_cursor(config):
    config["start_date"] = "2024-06-01T00:00:00+02:00"
    responses.get(LISTING, json=page([]))

    run_read(config, ["repositories"], SyncMode.incremental, state={"repositories": {"updated_on": "2023-01-01T00:00:00Z"}})

    assert query(responses.calls[0])["q"] == ["updated_on>2024-05-31T22:00:00.000000+00:00"]


@responses.activate
def test_pull_requests_send_every_state_the_pagelen_cap_and_an_ascending_window(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    prs_url = repository_url(repo, "pullrequests")
    next_url = prs_url + "?page=2&pagelen=50&state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&sort=updated_on"
    responses.get(prs_url, json=page([pull_request(1, 1, "2024-02-01T00:00:00.000000+00:00")], next_url))
    responses.get(next_url, json=page([pull_request(1, 2, "2024-02-02T10:00:00.5+00:00")]))

    output = run_read(config, ["pull_requests"], SyncMode.incremental)

    first = query(calls_to(prs_url)[0])
    assert first == {
        "pagelen": ["50"],
        "state": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"],
        "q": ["updated_on>2021-01-01T00:00:00.000000+00:00"],
        "sort": ["updated_on"],
        "fields": ["+values.participants,+values.reviewers"],
    }
    assert "fields=%2Bvalues.participants%2C%2Bvalues.reviewers" in calls_to(prs_url)[0].request.url  # '+' sent as %2B
    assert calls_to(prs_url)[1].request.url == next_url
    records = [r.record.data for r in output.records]
    assert [(r["repository_uuid"], r["repository_full_name"], r["id"]) for r in records] == [
        (repo["uuid"], repo["full_name"], 1),
        (repo["uuid"], repo["full_name"], 2),
    ]
    assert final_state(output, "pull_requests") == {repo["uuid"]: {"updated_on": "2024-02-02T10:00:00.500000+00:00"}}


@responses.activate
def test_one_configured_pull_request_state_is_sent_alone(config):
    config["pull_request_state"] = "DECLINED"
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(repository_url(repo, "pullrequests"), json=page([]))

    run_read(config, ["pull_requests"])

    assert query(calls_to(repository_url(repo, "pullrequests"))[0])["state"] == ["DECLINED"]


@responses.activate
def test_each_repository_keeps_its_own_cursor(config):
    repo1, repo2 = repository(1), repository(2)
    responses.get(LISTING, json=page([repo1, repo2]))
    responses.get(repository_url(repo1, "pullrequests"), json=page([pull_request(1, 7, "2024-03-01T00:00:00+00:00")]))
    responses.get(repository_url(repo2, "pullrequests"), json=page([]))
    state = {repo2["uuid"]: {"updated_on": "2023-05-05T00:00:00.000000+00:00"}}

    output = run_read(config, ["pull_requests"], SyncMode.incremental, state={"pull_requests": state})

    assert query(calls_to(repository_url(repo2, "pullrequests"))[0])["q"] == ["updated_on>2023-05-05T00:00:00.000000+00:00"]
    assert final_state(output, "pull_requests") == {
        repo1["uuid"]: {"updated_on": "2024-03-01T00:00:00.000000+00:00"},
        repo2["uuid"]: {"updated_on": "2023-05-05T00:00:00.000000+00:00"},
    }


@responses.activate
def test_state_keyed_by_repository_name_is_migrated_to_the_uuid(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(repository_url(repo, "pullrequests"), json=page([pull_request(1, 1, "2024-04-01T00:00:00+00:00")]))
    legacy = {repo["full_name"]: {"updated_on": "2024-03-01T00:00:00+00:00"}}

    output = run_read(config, ["pull_requests"], SyncMode.incremental, state={"pull_requests": legacy})

    assert query(calls_to(repository_url(repo, "pullrequests"))[0])["q"] == ["updated_on>2024-03-01T00:00:00.000000+00:00"]
    assert final_state(output, "pull_requests") == {repo["uuid"]: {"updated_on": "2024-04-01T00:00:00.000000+00:00"}}


@responses.activate
def test_a_future_dated_record_does_not_move_the_cursor(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(
        repository_url(repo, "pullrequests"),
        json=page([pull_request(1, 1, "2024-04-01T00:00:00+00:00"), pull_request(1, 2, "2999-01-01T00:00:00+00:00")]),
    )
    state = {repo["uuid"]: {"updated_on": "2024-01-01T00:00:00.000000+00:00"}}

    output = run_read(config, ["pull_requests"], SyncMode.incremental, state={"pull_requests": state})

    assert len(output.records) == 2
    assert final_state(output, "pull_requests") == state


@responses.activate
def test_the_repository_listing_is_read_once_for_all_repository_scoped_streams(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    for resource in ("pullrequests", "commits", "deployments"):
        responses.get(repository_url(repo, resource), json=page([]))

    output = run_read(config, ["pull_requests", "commits", "deployments"])

    assert not output.errors
    assert len(calls_to(LISTING)) == 1


@responses.activate
def test_403_and_404_skip_only_that_repository_with_one_warning_and_no_retry(config):
    repos = [repository(1), repository(2), repository(3)]
    responses.get(LISTING, json=page(repos))
    responses.get(repository_url(repos[0], "deployments"), status=403, json={"type": "error", "error": {"message": "Forbidden"}})
    responses.get(repository_url(repos[1], "deployments"), status=404, body="Not Found")
    responses.get(repository_url(repos[2], "deployments"), json=page([{"uuid": "{d1}", "state": {"name": "IN_PROGRESS"}}]))

    output = run_read(config, ["deployments"])

    assert not output.errors
    assert [r.record.data["repository_uuid"] for r in output.records] == [repos[2]["uuid"]]
    warnings = [m.log.message for m in output.logs if "Skipping repository" in m.log.message]
    assert len(warnings) == 2  # logged by the reader threads, in any order
    [forbidden] = [w for w in warnings if repos[0]["full_name"] in w]
    assert "HTTP 403" in forbidden and "no access to this repository" in forbidden
    assert len(calls_to(repository_url(repos[0], "deployments"))) == 1
    assert len(calls_to(repository_url(repos[1], "deployments"))) == 1


@responses.activate
def test_a_scope_error_fails_the_stream_at_once_naming_the_scope(config):
    repos = [repository(1), repository(2)]
    responses.get(LISTING, json=page(repos))
    for repo in repos:
        responses.get(
            repository_url(repo, "pullrequests"),
            status=403,
            json={"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.",
                                              "detail": {"required": ["read:pullrequest:bitbucket"], "granted": []}}},
        )

    output = run_read(config, ["pull_requests"], expect_failure=True)

    assert not output.records
    [error] = [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert error.failure_type == FailureType.config_error
    assert "needs the scope read:pullrequest:bitbucket" in error.message
    assert not [m for m in output.logs if "Skipping repository" in m.log.message]


@responses.activate
def test_401_fails_the_sync_at_once_with_a_config_error(config):
    responses.get(LISTING, status=401, body="Unauthorized")

    output = run_read(config, ["repositories"], expect_failure=True)

    errors = [e.trace.error for e in output.errors]
    assert any(e.failure_type == FailureType.config_error and "Atlassian account email" in e.message for e in errors)
    assert len(calls_to(LISTING)) == 1


@responses.activate
def test_a_wrong_workspace_names_the_workspace(config):
    responses.get(LISTING, status=404, json={"type": "error", "error": {"message": "Repository not found"}})

    output = run_read(config, ["repositories"], expect_failure=True)

    assert any(f"Workspace '{WORKSPACE}' was not found" in e.trace.error.message for e in output.errors)


@responses.activate
def test_commits_ask_only_for_commits_not_reachable_from_the_tips_already_read(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    url = repository_url(repo, "commits")
    responses.get(
        url,
        json=page([
            commit("c3", "2024-05-03T00:00:00+00:00", ["c2"]),
            commit("b1", "2022-01-01T00:00:00+00:00", ["a0"]),  # a branch merged late: old date, new to us
            commit("c2", "2024-05-02T00:00:00+00:00", ["abc1234"]),
        ]),
    )
    state = {repo["uuid"]: {"date": "2024-05-01T00:00:00.000000+00:00", "exclude": ["abc1234"]}}

    output = run_read(config, ["commits"], SyncMode.incremental, state={"commits": state})

    assert query(calls_to(url)[0]) == {"pagelen": ["100"], "exclude": ["abc1234"]}
    assert [r.record.data["hash"] for r in output.records] == ["c3", "b1", "c2"]
    written = final_state(output, "commits")[repo["uuid"]]
    assert parse_datetime(written.pop("checked_on")) is not None  # the sync's start: the skip rule's age
    assert written == {"date": "2024-05-03T00:00:00.000000+00:00", "exclude": ["b1", "c3"],
                       "repository_updated_on": "2024-01-01T00:00:00.000000+00:00"}  # the listing's, for the skip rule


@pytest.mark.parametrize("tips", [2, 300])
@responses.activate
def test_commits_send_tips_in_a_post_body_only_when_they_do_not_fit_in_a_url(config, tips):
    """``POST .../commits`` with a form-encoded ``exclude`` list is Bitbucket's documented form for tip
    lists too long for a URL (bitbucket-api-more-endpoints.md, section 6); every tip is sent (no cap),
    and the next page is the answer's GET link."""
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    url = repository_url(repo, "commits")
    excluded = sorted(f"{i:040x}" for i in range(tips))
    second = f"{url}?page=abc"
    first_page = page([commit("n2", "2024-05-03T00:00:00+00:00", ["n1"])], next_url=second)
    responses.add("POST" if tips > 2 else "GET", url, json=first_page)
    responses.get(second, json=page([commit("n1", "2024-05-02T00:00:00+00:00", [excluded[0]])]))
    state = {repo["uuid"]: {"date": "2024-05-01T00:00:00.000000+00:00", "exclude": excluded}}

    output = run_read(config, ["commits"], SyncMode.incremental, state={"commits": state})

    first, following = (call.request for call in calls_to(url))
    sent = parse_qs(first.body) if first.method == "POST" else query(calls_to(url)[0])
    assert sent["exclude"] == excluded  # every tip, none dropped
    assert (first.method, len(first.url) <= 2048) == (("POST", True) if tips > 2 else ("GET", True))
    assert following.method == "GET" and following.body is None
    if first.method == "POST":
        assert query(calls_to(url)[0]) == {"pagelen": ["100"]}
        assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert [r.record.data["hash"] for r in output.records] == ["n2", "n1"]
    assert final_state(output, "commits")[repo["uuid"]]["exclude"] == sorted(excluded[1:] + ["n2"])


@responses.activate
def test_commits_dated_before_start_date_are_not_emitted_but_still_become_tips(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(
        repository_url(repo, "commits"),
        json=page([commit("new", "2024-01-01T00:00:00+00:00", ["ancient"]), commit("ancient", "2010-01-01T00:00:00+00:00")]),
    )

    output = run_read(config, ["commits"], SyncMode.incremental)

    assert [r.record.data["hash"] for r in output.records] == ["new"]
    assert final_state(output, "commits")[repo["uuid"]]["exclude"] == ["new"]


@responses.activate
def test_commits_read_again_in_full_when_an_excluded_tip_is_gone(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    url = repository_url(repo, "commits")
    responses.get(url, status=404, json={"type": "error", "error": {"message": "Commit not found"}},
                  match=[responses.matchers.query_param_matcher({"pagelen": "100", "exclude": "def5678"})])
    responses.get(url, json=page([commit("x2", "2024-05-03T00:00:00+00:00", ["x1"]), commit("x1", "2024-05-02T00:00:00+00:00")]),
                  match=[responses.matchers.query_param_matcher({"pagelen": "100"})])
    state = {repo["uuid"]: {"date": "2024-05-01T00:00:00.000000+00:00", "exclude": ["def5678"]}}

    output = run_read(config, ["commits"], SyncMode.incremental, state={"commits": state})

    assert [r.record.data["hash"] for r in output.records] == ["x2", "x1"]
    assert final_state(output, "commits")[repo["uuid"]]["exclude"] == ["x2"]


@responses.activate
def test_an_empty_repository_has_no_commits_and_no_error(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(repository_url(repo, "commits"), json={"pagelen": 100, "values": []})

    output = run_read(config, ["commits"], SyncMode.incremental)

    assert not output.errors and not output.records


@responses.activate
def test_deployments_are_filtered_here_and_unfinished_ones_always_come_through(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    url = repository_url(repo, "deployments")
    responses.get(
        url,
        json=page([
            {"uuid": "{new}", "state": {"name": "COMPLETED", "completed_on": "2024-06-02T08:25:38.86750Z"}},
            {"uuid": "{running}", "state": {"name": "IN_PROGRESS", "started_on": "2024-06-03T00:00:00Z"}},
            {"uuid": "{undeployed}", "state": {"name": "UNDEPLOYED", "status": {}}},
            {"uuid": "{old}", "state": {"name": "COMPLETED", "completed_on": "2024-05-01T00:00:00Z"}},
        ]),
    )
    state = {repo["uuid"]: {"completed_on": "2024-06-01T00:00:00.000000+00:00"}}

    output = run_read(config, ["deployments"], SyncMode.incremental, state={"deployments": state})

    assert query(calls_to(url)[0]) == {"pagelen": ["100"]}
    assert [(r.record.data["uuid"], r.record.data.get("completed_on")) for r in output.records] == [
        ("{new}", "2024-06-02T08:25:38.86750Z"),
        ("{running}", None),
        ("{undeployed}", None),
    ]
    assert final_state(output, "deployments") == {repo["uuid"]: {"completed_on": "2024-06-02T08:25:38.867500+00:00"}}


@responses.activate
def test_workspace_users_read_every_page_keyed_by_the_user_uuid(config):
    url = f"{API}/workspaces/{WORKSPACE}/members"
    next_url = url + "?page=2&pagelen=100"
    responses.get(url, json=page([{"type": "workspace_membership", "user": {"uuid": "{u1}"}}], next_url))
    responses.get(next_url, json=page([{"type": "workspace_membership", "user": {"uuid": "{u2}", "type": "app_user"}}]))

    output = run_read(config, ["workspace_users"])

    assert [r.record.data["user_uuid"] for r in output.records] == ["{u1}", "{u2}"]
    assert query(calls_to(url)[0]) == {"pagelen": ["100"]}


@responses.activate
def test_a_page_without_values_is_retried_not_skipped(config, monkeypatch):
    monkeypatch.setattr("airbyte_cdk.sources.streams.http.rate_limiting.time.sleep", lambda seconds: None)
    responses.get(LISTING, json={"pagelen": 100, "next": f"{LISTING}?page=2"})
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(config, ["repositories"])

    assert not output.errors
    assert [r.record.data["uuid"] for r in output.records] == [repository(1)["uuid"]]
    assert any("before retry 1 (HTTP 200 but not a JSON page with 'values')" in m.log.message for m in output.logs)


@responses.activate
def test_items_that_are_not_objects_or_lack_a_key_are_skipped_and_reported(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo, "not-an-object", {"full_name": "acme/no-uuid"}]))
    responses.get(
        repository_url(repo, "pullrequests"),
        json=page([pull_request(1, 1, "2024-02-01T00:00:00+00:00"), {"title": "no id", "updated_on": "2024-02-02T00:00:00+00:00"}, 7]),
    )

    output = run_read(config, ["pull_requests"], SyncMode.incremental)

    assert not output.errors
    assert [r.record.data["id"] for r in output.records] == [1]
    warnings = [m.log.message for m in output.logs if "were skipped" in m.log.message]
    assert any("repositories: 2 item(s)" in w for w in warnings) and any("pull_requests: 2 item(s)" in w for w in warnings)


@responses.activate
def test_pull_requests_of_a_big_repository_get_one_state_after_the_walk_not_one_every_500_records(config):
    """A STATE written inside a walk of a page-numbered listing could claim an item that slid onto a page
    already read (see BitbucketStream): state comes once the repository's listing has been walked."""
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    url = repository_url(repo, "pullrequests")
    prs = [pull_request(1, i, f"2024-02-01T00:{i // 60:02d}:{i % 60:02d}+00:00") for i in range(1, 1201)]
    pages = [prs[i:i + 50] for i in range(0, len(prs), 50)]
    for n, values in enumerate(pages):
        this = url if n == 0 else f"{url}?page={n + 1}"
        following = f"{url}?page={n + 2}" if n + 1 < len(pages) else None
        match = [responses.matchers.query_param_matcher({"page": str(n + 1)})] if n else []
        responses.get(this, json=page(values, following), match=match)

    output = run_read(config, ["pull_requests"], SyncMode.incremental)

    states = [dict(m.state.stream.stream_state.__dict__)[repo["uuid"]]["updated_on"] for m in output.state_messages]
    assert states == ["2024-02-01T00:20:00.000000+00:00"]  # the end of the repository, nothing before
    assert len(output.records) == 1200
    assert any("1/1 repositories read (acme/repo-1: 1200 records" in m.log.message for m in output.logs)


@pytest.mark.parametrize("stream_class", STREAM_CLASSES, ids=lambda c: c.name)
def test_no_stream_checkpoints_inside_a_slice(stream_class):
    """Mid-slice checkpoints break the state contract: page-numbered listings shift under the reader, and a
    commit frontier written mid-repository would exclude the ancestors of unread pages."""
    assert stream_class.state_checkpoint_interval is None


@responses.activate
def test_a_renamed_repository_keeps_its_cursor(config):
    renamed = {**repository(1), "full_name": f"{WORKSPACE}/new-name", "slug": "new-name"}
    responses.get(LISTING, json=page([renamed]))
    responses.get(repository_url(renamed, "pullrequests"), json=page([]))
    state = {renamed["uuid"]: {"updated_on": "2024-03-01T00:00:00.000000+00:00"}}  # written when it was repo-1

    run_read(config, ["pull_requests"], SyncMode.incremental, state={"pull_requests": state})

    assert query(calls_to(repository_url(renamed, "pullrequests"))[0])["q"] == ["updated_on>2024-03-01T00:00:00.000000+00:00"]


@responses.activate
def test_a_401_stops_the_whole_sync_not_just_one_stream(config):
    responses.get(LISTING, status=401, body="Unauthorized")
    responses.get(f"{API}/workspaces/{WORKSPACE}/members", status=401, body="Unauthorized")

    output = run_read(config, ["repositories", "pull_requests", "workspace_users"], expect_failure=True)

    assert len(responses.calls) == 1  # the first stream's 401; the others are not attempted
    stream_errors = [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert [e.stream_descriptor.name for e in stream_errors] == ["repositories"]


@responses.activate
@pytest.mark.parametrize("api_url", ["https://API.bitbucket.org/2.0", "https://api.bitbucket.org:443/2.0"])
def test_another_spelling_of_the_api_host_follows_bitbuckets_own_next_links(config, api_url):
    repos = [repository(1), repository(2)]
    first = f"{api_url}/repositories/{WORKSPACE}"  # as configured; Bitbucket's links name api.bitbucket.org
    responses.get(first, json=page(repos[:1], f"{LISTING}?page=2"), match=[responses.matchers.query_param_matcher({"pagelen": "100"})])
    responses.get(LISTING, json=page(repos[1:]), match=[responses.matchers.query_param_matcher({"page": "2"})])

    output = run_read({**config, "api_url": api_url}, ["repositories"])

    assert not output.errors
    assert [r.record.data["uuid"] for r in output.records] == [r["uuid"] for r in repos]


@responses.activate
def test_commits_write_their_tips_once_a_repository_is_read_even_when_every_commit_predates_start_date(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    tip, base = "b" * 40, "a" * 40
    responses.get(repository_url(repo, "commits"), json=page([commit(tip, "2019-02-01T00:00:00+00:00", [base]),
                                                             commit(base, "2019-01-01T00:00:00+00:00")]))

    output = run_read(config, ["commits"], SyncMode.incremental)

    assert not output.records  # both are older than start_date (2021)
    written = final_state(output, "commits")[repo["uuid"]]
    assert written["exclude"] == [tip]  # the next sync asks for nothing twice
    assert written["repository_updated_on"] == "2024-01-01T00:00:00.000000+00:00"


def commit_state(repo, updated_on: str, checked_days_ago: float) -> dict:
    checked = format_datetime(datetime.now(timezone.utc) - timedelta(days=checked_days_ago))
    return {repo["uuid"]: {"date": "2024-05-01T00:00:00.000000+00:00", "exclude": ["abc1234"],
                           "repository_updated_on": updated_on, "checked_on": checked}}


@responses.activate
def test_commits_skip_a_repository_whose_updated_on_has_not_moved_without_a_request(config):
    unchanged, pushed, stale = repository(1), repository(2), repository(3)
    responses.get(LISTING, json=page([unchanged, pushed, stale]))
    calls = {repo["uuid"]: responses.get(repository_url(repo, "commits"), json=page([])) for repo in (unchanged, pushed, stale)}
    state = {**commit_state(unchanged, "2024-01-01T01:00:00+01:00", 1),  # the same instant as the listing's
             **commit_state(pushed, "2024-01-01T00:00:00Z", 1),  # the listing says 2024-01-02: pushed since
             **commit_state(stale, "2024-01-03T00:00:00Z", 7.1)}  # unmoved, but last read over 7 days ago

    output = run_read(config, ["commits"], SyncMode.incremental, state={"commits": state})

    assert not output.errors
    assert [calls[r["uuid"]].call_count for r in (unchanged, pushed, stale)] == [0, 1, 1]
    final = final_state(output, "commits")
    assert final[unchanged["uuid"]] == state[unchanged["uuid"]]  # kept as it was
    assert final[pushed["uuid"]]["repository_updated_on"] == "2024-01-02T00:00:00.000000+00:00"
    assert parse_datetime(final[stale["uuid"]]["checked_on"]) > parse_datetime(state[stale["uuid"]]["checked_on"])


@responses.activate
def test_commits_of_a_repository_read_from_the_sync_start_write_no_tips(config):
    """A future cursor is read as the sync's start: the commits before it were read and not emitted, so
    tips written now would hide them from the next sync for good."""
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    responses.get(repository_url(repo, "commits"), json=page([commit("c" * 40, "2024-02-01T00:00:00+00:00")]))

    output = run_read(config, ["commits"], SyncMode.incremental, state={"commits": {repo["uuid"]: {"date": "2099-01-01T00:00:00Z"}}})

    assert not output.records
    assert repo["uuid"] not in final_state(output, "commits")


@responses.activate
def test_an_empty_repository_is_skipped_too_until_a_push_moves_its_updated_on(config):
    repo = repository(1)
    responses.get(LISTING, json=page([repo]))
    commits = responses.get(repository_url(repo, "commits"), json=page([]))

    first = run_read(config, ["commits"], SyncMode.incremental)
    state = final_state(first, "commits")
    second = run_read(config, ["commits"], SyncMode.incremental, state={"commits": state})

    assert state[repo["uuid"]]["repository_updated_on"] == "2024-01-01T00:00:00.000000+00:00"
    assert commits.call_count == 1 and not second.errors  # the second sync asked nothing
