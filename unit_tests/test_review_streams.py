"""The code-review streams against Bitbucket's traps (HTTP mocked): pull_request_activity,
pull_request_comments, pull_request_commits, pull_request_diffstat, branches, tags, projects.

Facts: ``shared/docs/bitbucket-api-more-endpoints.md`` 2.1, 2.2, 2.6-2.9, 2.11."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List
from urllib.parse import parse_qs, urlparse

import responses
from airbyte_cdk.models import SyncMode

from source_bitbucket.streams.pull_request_activity import activity_id
from unit_tests.conftest import API, TOKEN, WORKSPACE, final_state, page, repository, repository_url, run_read

LISTING = f"{API}/repositories/{WORKSPACE}"
REPO = repository(1)
ACTIVITY = repository_url(REPO, "pullrequests/activity")
PROJECTS = f"{API}/workspaces/{WORKSPACE}/projects"
USER = {"type": "user", "uuid": "{u1}", "display_name": "Dev User 1"}


def query(url: str) -> Dict[str, List[str]]:
    return parse_qs(urlparse(url).query)


def listing(*repos) -> None:
    responses.get(LISTING, json={"values": list(repos) or [REPO], "pagelen": 100})


def records(output, stream: str) -> List[Dict[str, Any]]:
    return [m.record.data for m in output.records if m.record.stream == stream]


def warnings(output) -> List[str]:
    return [m.log.message for m in output.logs if m.log.level.value == "WARN"]


def calls(prefix: str) -> List[str]:
    return [c.request.url for c in responses.calls if c.request.url.startswith(prefix)]


# --- pull_request_activity -----------------------------------------------------------------------

def entry(kind: str, pr: int, date: str, **event: Any) -> Dict[str, Any]:
    """One feed entry of ``kind`` on pull request ``pr``, dated ``date`` (in the kind's own date field)."""
    field = "created_on" if kind == "comment" else "date"
    return {"pull_request": {"type": "pullrequest", "id": pr, "title": f"PR {pr}"}, kind: {field: date, **event}}


@responses.activate
def test_activity_lifts_type_date_actor_and_pull_request_of_every_kind_and_keeps_unknown_kinds(config):
    listing()
    feed = [
        entry("update", 3, "2024-05-04T10:00:00.123456+00:00", state="MERGED", author=USER),
        entry("approval", 3, "2024-05-03T10:00:00+00:00", user=USER),
        entry("changes_requested", 2, "2024-05-02T10:00:00Z", user={"uuid": "{u2}"}),
        entry("comment", 2, "2024-05-01T10:00:00.5+02:00", id=77, user=USER, content={"raw": "LGTM"}),
        entry("task", 1, "2024-04-30T10:00:00+00:00", creator={"uuid": "{u3}"}),  # a kind this connector does not know
    ]
    responses.get(ACTIVITY, json=page(feed))

    output = run_read(config, ["pull_request_activity"])

    rows = records(output, "pull_request_activity")
    assert [(r["activity_type"], r["pull_request_id"], r["actor_uuid"]) for r in rows] == [
        ("update", 3, "{u1}"), ("approval", 3, "{u1}"), ("changes_requested", 2, "{u2}"), ("comment", 2, "{u1}"), ("task", 1, "{u3}")]
    assert [r["activity_date"] for r in rows] == [
        "2024-05-04T10:00:00.123456+00:00", "2024-05-03T10:00:00.000000+00:00", "2024-05-02T10:00:00.000000+00:00",
        "2024-05-01T08:00:00.500000+00:00", "2024-04-30T10:00:00.000000+00:00"]
    assert rows[0]["update"]["state"] == "MERGED" and rows[3]["comment"]["content"]["raw"] == "LGTM"  # the entry is kept
    assert len({r["activity_id"] for r in rows}) == 5
    assert query(calls(ACTIVITY)[0])["pagelen"] == ["50"]


def test_activity_id_is_stable_and_names_the_comment():
    base = {"pull_request_id": 2, "activity_type": "comment", "activity_date": "2024-05-01T08:00:00.000000+00:00",
            "actor_uuid": "{u1}"}
    edited = {**base, "comment": {"id": 77, "content": {"raw": "edited"}}}
    assert activity_id({**base, "comment": {"id": 77, "content": {"raw": "first"}}}) == activity_id(edited)  # an edit keeps the key
    assert activity_id({**base, "comment": {"id": 78}}) != activity_id(edited)  # two comments in the same microsecond
    assert len(activity_id(edited)) == 32


@responses.activate
def test_activity_stops_one_page_past_the_cursor_less_the_lookback_and_emits_the_lookback_again(config):
    listing()
    second = f"{ACTIVITY}?ctx=token-2&pagelen=50"
    third = f"{ACTIVITY}?ctx=token-3&pagelen=50"
    responses.get(ACTIVITY, json=page([entry("approval", 5, "2024-05-10T12:00:00+00:00", user=USER),
                                       entry("approval", 4, "2024-05-10T10:30:00+00:00", user=USER)], second),
                  match=[responses.matchers.query_param_matcher({"pagelen": "50"})])
    responses.get(second, json=page([entry("approval", 3, "2024-05-10T09:30:00+00:00", user=USER),  # within the hour of lookback
                                     entry("approval", 2, "2024-05-10T08:00:00+00:00", user=USER)], third),  # before it: last page
                  match=[responses.matchers.query_param_matcher({"ctx": "token-2", "pagelen": "50"})])
    responses.get(third, json=page([entry("approval", 1, "2024-05-01T00:00:00+00:00", user=USER)]),
                  match=[responses.matchers.query_param_matcher({"ctx": "token-3", "pagelen": "50"})])
    state = {REPO["uuid"]: {"activity_date": "2024-05-10T10:00:00.000000+00:00"}}

    output = run_read(config, ["pull_request_activity"], SyncMode.incremental, state={"pull_request_activity": state})

    assert [r["pull_request_id"] for r in records(output, "pull_request_activity")] == [5, 4, 3]
    assert len(calls(ACTIVITY)) == 2  # the page that reached the window ends the walk
    assert calls(ACTIVITY)[1] == second  # next followed verbatim (opaque token)
    assert final_state(output, "pull_request_activity")[REPO["uuid"]] == {"activity_date": "2024-05-10T12:00:00.000000+00:00"}


# --- pull request listing shared by the pull-request-scoped streams -------------------------------

def pull_requests(*prs: Dict[str, Any]) -> None:
    responses.get(repository_url(REPO, "pullrequests"), json=page(list(prs)))


def pr(n: int, comment_count: int = 0, day: int = 5) -> Dict[str, Any]:
    return {"id": n, "updated_on": f"2024-05-{day:02d}T00:00:00.000000+00:00", "comment_count": comment_count, "state": "OPEN"}


@responses.activate
def test_comments_read_only_pull_requests_with_comments_drop_drafts_and_keep_soft_deletes_replies_and_inline(config):
    listing()
    pull_requests(pr(1, comment_count=0), pr(2, comment_count=3))
    comments = [
        {"id": 10, "content": {"raw": "a"}, "user": USER, "deleted": False, "pending": False,
         "inline": {"from": None, "to": None, "path": "README.md"}},
        {"id": 11, "content": {"raw": ""}, "deleted": True, "parent": {"id": 10}},
        {"id": 12, "content": {"raw": "draft"}, "pending": True},
        {"id": 13, "content": {"raw": "done"}, "resolution": {"type": "comment_resolution", "user": USER}},
    ]
    responses.get(repository_url(REPO, "pullrequests/2/comments"), json=page(comments))

    output = run_read(config, ["pull_request_comments"])

    rows = records(output, "pull_request_comments")
    assert [r["id"] for r in rows] == [10, 11, 13]
    assert rows[1]["deleted"] is True and rows[1]["parent"] == {"id": 10} and rows[0]["inline"]["path"] == "README.md"
    assert all(r["pull_request_id"] == 2 and r["pull_request_updated_on"] == "2024-05-05T00:00:00.000000+00:00" for r in rows)
    assert not calls(repository_url(REPO, "pullrequests/1/"))  # no comments: no request


@responses.activate
def test_the_pull_request_listing_is_walked_once_when_pull_requests_and_the_pull_request_scoped_streams_are_read(config):
    listing()
    pull_requests(pr(1, comment_count=0), pr(2, comment_count=3))
    for n in (1, 2):
        responses.get(repository_url(REPO, f"pullrequests/{n}/commits"), json={"values": [], "pagelen": 100})
    responses.get(repository_url(REPO, "pullrequests/2/comments"), json=page([{"id": 10, "content": {"raw": "a"}}]))

    output = run_read(config, ["pull_requests", "pull_request_comments", "pull_request_commits"], SyncMode.incremental)

    assert [r["id"] for r in records(output, "pull_requests")] == [1, 2]
    assert [(r["pull_request_id"], r["id"]) for r in records(output, "pull_request_comments")] == [(2, 10)]
    walks = [url for url in calls(repository_url(REPO, "pullrequests")) if urlparse(url).path.endswith("/pullrequests")]
    assert len(walks) == 1 and query(walks[0])["fields"] == ["+values.participants,+values.reviewers"]  # the stream's own
    assert len(calls(repository_url(REPO, "pullrequests/"))) == 3  # comments of #2, commits of #1 and #2


@responses.activate
def test_a_repository_gone_from_the_shared_pull_request_listing_gives_one_warning_naming_its_streams(config):
    listing()
    responses.get(repository_url(REPO, "pullrequests"), status=404,
                  json={"type": "error", "error": {"message": "Repository not found"}})  # deleted after the listing

    streams = ["pull_request_comments", "pull_request_commits", "pull_request_diffstat"]
    output = run_read(config, streams, SyncMode.incremental)

    assert not output.records
    [warning] = warnings(output)  # one line for the walk the three share, not one per stream
    assert "for streams pull_request_comments, pull_request_commits, pull_request_diffstat" in warning, warning
    assert "HTTP 404" in warning and "shared pull request listing" in warning
    assert len(calls(repository_url(REPO, "pullrequests"))) == 1

    responses.calls.reset()  # with pull_requests read too: its skip hands nothing over, the listing asks itself
    output = run_read(config, ["pull_requests", "pull_request_comments"], SyncMode.incremental)
    found = warnings(output)
    assert len(found) == 2 and "for stream pull_requests:" in found[0] and "for streams pull_request_comments " in found[1], found


@responses.activate
def test_pull_request_commits_take_an_empty_list_as_no_rows_and_skip_a_deleted_fork(config):
    listing()
    pull_requests(pr(1), pr(2), pr(3, day=6))
    commit = {"hash": "a" * 40, "date": "2024-05-01T10:00:00+00:00", "parents": [], "author": {"raw": "Dev <d@example.com>"}}
    responses.get(repository_url(REPO, "pullrequests/1/commits"), json=page([commit]))
    responses.get(repository_url(REPO, "pullrequests/2/commits"), json={"values": [], "pagelen": 100})  # source branch deleted
    responses.get(repository_url(REPO, "pullrequests/3/commits"), status=404,
                  json={"type": "error", "error": {"message": "Source repository not found"}})  # a deleted fork

    output = run_read(config, ["pull_request_commits"], SyncMode.incremental)

    assert [(r["pull_request_id"], r["hash"]) for r in records(output, "pull_request_commits")] == [(1, "a" * 40)]
    [warning] = warnings(output)
    assert "pull request #3" in warning and "HTTP 404" in warning
    # the repository's cursor covers the pull requests read, the skipped one too (its rows are gone with its fork)
    assert final_state(output, "pull_request_commits")[REPO["uuid"]] == {"pull_request_updated_on": "2024-05-06T00:00:00.000000+00:00"}


# --- pull_request_diffstat -----------------------------------------------------------------------

DIFFSTAT_TARGET = repository_url(REPO, "diffstat/aaaaaaaaaaaa..bbbbbbbbbbbb")


def diffstat_redirect(n: int, location: str) -> None:
    responses.get(repository_url(REPO, f"pullrequests/{n}/diffstat"), status=302, headers={"Location": location})


@responses.activate
def test_diffstat_follows_the_redirect_on_the_api_host_with_the_credentials_and_lifts_the_path(config):
    listing()
    pull_requests(pr(1))
    diffstat_redirect(1, f"{DIFFSTAT_TARGET}?pagelen=500")
    files = [{"status": "added", "lines_added": 3, "lines_removed": 0, "old": None, "new": {"path": "src/new.py"}},
             {"status": "removed", "lines_added": 0, "lines_removed": 9, "old": {"path": "src/old.py"}, "new": None}]
    responses.get(DIFFSTAT_TARGET, json=page(files))

    output = run_read(config, ["pull_request_diffstat"])

    assert [r["path"] for r in records(output, "pull_request_diffstat")] == ["src/new.py", "src/old.py"]
    target = [c for c in responses.calls if c.request.url.startswith(DIFFSTAT_TARGET)]
    assert len(target) == 1 and target[0].request.headers["Authorization"].startswith("Basic ")
    assert query(target[0].request.url)["pagelen"] == ["500"]


@responses.activate
def test_diffstat_refuses_a_redirect_to_another_host_and_sends_it_no_credentials(config):
    listing()
    pull_requests(pr(1))
    diffstat_redirect(1, "https://evil.example.com/2.0/diffstat/x")
    responses.get("https://evil.example.com/2.0/diffstat/x", json=page([{"status": "added", "new": {"path": "stolen"}}]))

    output = run_read(config, ["pull_request_diffstat"], expect_failure=True)

    assert not records(output, "pull_request_diffstat")
    foreign = [c for c in responses.calls if "evil.example.com" in c.request.url]
    assert foreign and all("Authorization" not in c.request.headers for c in foreign)
    error = output.errors[-1].trace.error.message
    assert "evil.example.com" in error and "api_url" in error and TOKEN not in error


@responses.activate
def test_diffstat_skips_a_pull_request_without_common_ancestor_or_timed_out_once_each_without_retries(config):
    listing()
    pull_requests(pr(1), pr(2), pr(3))
    responses.get(repository_url(REPO, "pullrequests/1/diffstat"), status=400,
                  json={"type": "error", "error": {"message": "No common ancestor"}})
    responses.get(repository_url(REPO, "pullrequests/2/diffstat"), status=555,
                  json={"type": "error", "error": {"message": "Generating the diffstat timed out"}})
    diffstat_redirect(3, DIFFSTAT_TARGET)
    responses.get(DIFFSTAT_TARGET, json=page([{"status": "modified", "old": {"path": "a"}, "new": {"path": "a"}}]))

    output = run_read(config, ["pull_request_diffstat"])

    assert [r["pull_request_id"] for r in records(output, "pull_request_diffstat")] == [3]
    assert len(calls(repository_url(REPO, "pullrequests/1/"))) == 1 and len(calls(repository_url(REPO, "pullrequests/2/"))) == 1
    found = warnings(output)
    assert len(found) == 2 and "share no history" in found[0] and "timed out" in found[1], found


@responses.activate
def test_diffstat_fails_on_any_other_400(config):
    listing()
    pull_requests(pr(1))
    responses.get(repository_url(REPO, "pullrequests/1/diffstat"), status=400,
                  json={"type": "error", "error": {"message": "Invalid pagelen"}})

    output = run_read(config, ["pull_request_diffstat"], expect_failure=True)

    assert any("Invalid pagelen" in e.trace.error.message for e in output.errors)


# --- branches, tags -------------------------------------------------------------------------------

def tag(name: str, annotated: bool = True) -> Dict[str, Any]:
    target = {"hash": "c" * 40, "date": "2024-05-01T10:00:00+00:00", "author": {"raw": "Dev"}, "message": "m",
              "parents": [{"hash": "d" * 40}], "links": {"self": {"href": "x"}}}
    if not annotated:  # lightweight: no date, message or tagger of its own
        return {"name": name, "type": "tag", "target": target, "date": None, "message": None, "tagger": None}
    return {"name": name, "type": "tag", "target": target, "date": "2024-05-02T10:00:00+00:00", "message": "v", "tagger": {"raw": "Dev"}}


@responses.activate
def test_tags_ask_for_the_kept_fields_only_trim_the_target_and_carry_the_repository_updated_on(config):
    listing()
    responses.get(repository_url(REPO, "refs/tags"), json=page([tag("v1"), tag("nightly", annotated=False)]))

    output = run_read(config, ["tags"])

    rows = records(output, "tags")
    assert [r["name"] for r in rows] == ["v1", "nightly"]
    assert rows[0]["target"] == {"hash": "c" * 40, "date": "2024-05-01T10:00:00+00:00", "author": {"raw": "Dev"}}
    assert "date" not in rows[1] and rows[1]["target"]["hash"] == "c" * 40  # nulls are dropped by the CDK, the row is kept
    assert all(r["repository_updated_on"] == REPO["updated_on"] for r in rows)
    asked = query(calls(repository_url(REPO, "refs/tags"))[0])
    assert asked["sort"] == ["name"] and asked["pagelen"] == ["100"]
    assert set(asked["fields"][0].split(",")) == {
        "values.name", "values.type", "values.date", "values.message", "values.tagger",
        "values.target.hash", "values.target.date", "values.target.author", "next", "page", "pagelen", "size"}


def refs_state(updated_on: str, checked_on: datetime) -> Dict[str, Any]:
    return {REPO["uuid"]: {"repository_updated_on": updated_on, "checked_on": checked_on.isoformat()}}


@responses.activate
def test_branches_skip_a_repository_whose_updated_on_has_not_moved_and_read_one_that_moved(config):
    moved = repository(2)
    listing(REPO, moved)
    responses.get(repository_url(moved, "refs/branches"), json=page([{"name": "main", "target": {"hash": "e" * 40}}]))
    recent = datetime.now(timezone.utc) - timedelta(days=1)
    state = {**refs_state(REPO["updated_on"], recent),
             moved["uuid"]: {"repository_updated_on": "2023-01-01T00:00:00.000000+00:00", "checked_on": recent.isoformat()}}

    output = run_read(config, ["branches"], SyncMode.incremental, state={"branches": state})

    assert not calls(repository_url(REPO, "refs/"))  # unchanged: no request
    assert [(r["repository_uuid"], r["name"]) for r in records(output, "branches")] == [(moved["uuid"], "main")]
    written = final_state(output, "branches")
    assert written[REPO["uuid"]] == state[REPO["uuid"]]
    assert written[moved["uuid"]]["repository_updated_on"] == moved["updated_on"]
    assert datetime.fromisoformat(written[moved["uuid"]]["checked_on"]) > recent


@responses.activate
def test_branches_read_an_unchanged_repository_again_after_seven_days_and_an_empty_one_gets_state_too(config):
    listing()
    responses.get(repository_url(REPO, "refs/branches"), json={"values": [], "pagelen": 100, "size": 0, "page": 1})
    state = refs_state(REPO["updated_on"], datetime.now(timezone.utc) - timedelta(days=8))

    output = run_read(config, ["branches"], SyncMode.incremental, state={"branches": state})

    assert len(calls(repository_url(REPO, "refs/branches"))) == 1
    checked = datetime.fromisoformat(final_state(output, "branches")[REPO["uuid"]]["checked_on"])
    assert checked > datetime.now(timezone.utc) - timedelta(minutes=5)


@responses.activate
def test_tags_of_a_repository_pushed_during_the_sync_are_read_again_next_time(config):
    during = (datetime.now(timezone.utc) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    pushed = repository(1, updated_on=during)  # the listing says updated after the sync began
    listing(pushed)
    responses.get(repository_url(pushed, "refs/tags"), json=page([tag("v2")]))

    output = run_read(config, ["tags"], SyncMode.incremental)

    assert [r["name"] for r in records(output, "tags")] == ["v2"]
    assert not final_state(output, "tags").get(REPO["uuid"])  # nothing claims that version: the next sync reads it again


# --- projects -------------------------------------------------------------------------------------

def project(n: int, updated_on: str) -> Dict[str, Any]:
    return {"type": "project", "uuid": f"{{p{n}}}", "key": f"P{n}", "name": f"Project {n}", "updated_on": updated_on}


@responses.activate
def test_projects_filter_on_the_server_after_the_cursor_and_advance_it(config):
    responses.get(PROJECTS, json=page([project(1, "2024-05-01T00:00:00.000000+00:00"), project(2, "2024-05-03T00:00:00+00:00")]))

    output = run_read(config, ["projects"], SyncMode.incremental,
                      state={"projects": {"updated_on": "2024-04-01T00:00:00.000000+00:00"}})

    assert [r["key"] for r in records(output, "projects")] == ["P1", "P2"]
    asked = query(calls(PROJECTS)[0])
    assert asked["q"] == ["updated_on>2024-04-01T00:00:00.000000+00:00"] and asked["sort"] == ["updated_on"]
    assert asked["pagelen"] == ["50"]
    assert final_state(output, "projects") == {"updated_on": "2024-05-03T00:00:00.000000+00:00"}


@responses.activate
def test_projects_skip_the_stream_with_one_warning_naming_the_scope_on_a_403(config):
    responses.get(PROJECTS, status=403, json={"type": "error", "error": {
        "message": "Your credentials lack one or more required privilege scopes.",
        "detail": {"required": ["read:project:bitbucket"], "granted": ["read:repository:bitbucket"]}}})
    listing()

    output = run_read(config, ["projects", "repositories"])

    assert not output.errors
    assert len(records(output, "repositories")) == 1  # the other streams go on
    [warning] = warnings(output)
    assert "projects" in warning and "read:project:bitbucket" in warning and "repository access tokens" in warning
