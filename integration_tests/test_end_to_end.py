"""``python main.py read`` against the sandbox: every stream in full, then exactly what changed."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Tuple

import pytest

from integration_tests import connector_cli as cli
from integration_tests.demo import pipeline_changes, review_changes
from integration_tests.ground_truth import PIPELINE_STREAMS, REVIEW_STREAMS, connector_key, pipeline_truth, review_truth
from integration_tests.sandbox import SandboxServer, generate_workspace
from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.streams.pipeline_steps import STEP_FIELDS, STEP_IMAGE_FIELDS
from source_bitbucket.streams.pull_request_activity import LOOKBACK
from source_bitbucket.streams.refs import TARGET_FIELDS, Branches, Tags

EMAIL, TOKEN = "dev@example.com", "sandbox-token-e2e-5d1f"


def truth_key(stream: str, record: Mapping[str, Any]) -> Tuple:
    """The same key computed from the sandbox's raw API objects."""
    return {
        "repositories": lambda r: (r["uuid"],),
        "pull_requests": lambda r: (r["destination"]["repository"]["uuid"], r["id"]),
        "commits": lambda r: (r["repository"]["uuid"], r["hash"]),
        "deployments": lambda r: (r["uuid"],),
        "workspace_users": lambda r: (r["user"]["uuid"],),
    }[stream](record)


def truth(workspace, api_url: str) -> Dict[str, Dict[Tuple, Mapping[str, Any]]]:
    """Every stream's current objects by key, with their hrefs on ``api_url`` as the connector receives them."""
    out = {**pipeline_truth(workspace, api_url), **review_truth(workspace, api_url)}
    out.update({s: {truth_key(s, r): r for r in workspace.records(s, api_url)} for s in cli.STREAMS
                if s not in PIPELINE_STREAMS + REVIEW_STREAMS})
    return out


def expected_record(stream: str, obj: Mapping[str, Any]) -> Dict[str, Any]:
    """What the connector emits of an API object (without the fields it adds): null fields left out;
    a pipeline without its ``variables``; a step with only the fields it keeps (no credentials, no commands);
    a branch or tag with only the fields it keeps, its target trimmed to the tip's hash, date and author."""
    if stream == "pipelines":
        obj = {k: v for k, v in obj.items() if k != "variables"}
    if stream == "pipeline_steps":
        kept = {k: obj[k] for k in STEP_FIELDS if k in obj}
        if isinstance(obj.get("image"), Mapping):
            kept["image"] = {k: obj["image"][k] for k in STEP_IMAGE_FIELDS if k in obj["image"]}
        obj = kept
    if stream in ("branches", "tags"):
        kept_fields = (Branches if stream == "branches" else Tags).kept_fields
        obj = {**{k: obj[k] for k in kept_fields if k in obj},
               "target": {k: obj["target"][k] for k in TARGET_FIELDS if k in obj["target"]}}
    return {k: v for k, v in obj.items() if v is not None}


def emitted(result: cli.SyncResult, stream: str) -> Dict[Tuple, Mapping[str, Any]]:
    keys = [connector_key(stream, r) for r in result.records[stream]]
    assert len(keys) == len(set(keys)), f"{stream}: duplicate records in one sync"
    return {connector_key(stream, r): r for r in result.records[stream]}


PULL_REQUEST_SCOPED = {"pull_request_id", "pull_request_updated_on"}
ADDED = {"deployments": {"completed_on"}, "workspace_users": {"user_uuid"},
         "pipeline_steps": {"pipeline_uuid", "pipeline_created_on"},
         "pull_request_activity": {"pull_request_id", "activity_type", "activity_date", "actor_uuid", "activity_id"},
         "pull_request_comments": PULL_REQUEST_SCOPED, "pull_request_commits": PULL_REQUEST_SCOPED,
         "pull_request_diffstat": PULL_REQUEST_SCOPED | {"path"},
         "branches": {"repository_updated_on"}, "tags": {"repository_updated_on"}}


def strip(stream: str, record: Mapping[str, Any]) -> Dict[str, Any]:
    """A connector record without the fields the connector adds."""
    added = {"repository_uuid", "repository_full_name"} | ADDED.get(stream, set())
    return {k: v for k, v in record.items() if k not in added}


def open_pipelines(truth_now: Mapping[str, Mapping[Tuple, Mapping[str, Any]]]) -> set:
    """The keys of the pipelines not COMPLETED: read again (with their steps) on every sync until they are."""
    return {k for k, v in truth_now["pipelines"].items() if v["state"]["name"] != "COMPLETED"}


@pytest.fixture
def sandbox():
    workspace = generate_workspace(seed=7)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        config = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url,
                  "start_date": "2020-01-01T00:00:00Z"}
        yield workspace, server, config


def test_full_refresh_reads_every_record_of_every_stream_once(sandbox):
    workspace, server, config = sandbox
    modes = {s: "full_refresh" for s in cli.STREAMS}

    result = cli.run("read", config, cli.catalog(modes))

    assert result.returncode == 0, result.errors
    expected = truth(workspace, server.api_url)
    for stream in cli.STREAMS:
        got = emitted(result, stream)
        assert got.keys() == expected[stream].keys(), stream
        for key, record in got.items():
            if stream != "workspace_users":
                assert strip(stream, record) == expected_record(stream, expected[stream][key]), (stream, key)
    prs = result.records["pull_requests"]  # the collection leaves them out unless asked with fields=+values...
    assert all(isinstance(p.get("participants"), list) and isinstance(p.get("reviewers"), list) for p in prs)
    assert sum(bool(p["reviewers"]) for p in prs) > len(prs) / 2 and any(p["participants"] for p in prs)
    listings = [q["fields"] for _, path, q in server.requests if path.endswith("/pullrequests")]
    # one walk per repository, the pull_requests stream's (with participants): the pull-request-scoped
    # streams (comments, commits, diffstat) take the pull requests from it, with no walk of their own
    assert listings and all(f == ["+values.participants,+values.reviewers"] for f in listings)
    assert len(listings) == sum(-(-len(r.pull_requests) // 50) or 1 for r in workspace.repositories)
    assert server.request_counts()["repositories"] == 1  # one listing page, read once for all streams
    assert server.request_counts()["pipelines"] == len(workspace.records("repositories"))  # one page each, shared
    assert server.request_counts()["pipeline_steps"] == len(expected["pipelines"])  # one per pipeline
    assert not any(e for e in result.errors)
    assert TOKEN not in result.stdout + result.stderr
    assert not [s for s in ("sandbox-clear-secret-", "sandbox-registry-password-", "sandbox-script-token-")
                if s in result.stdout + result.stderr]


def test_an_incremental_sync_after_changes_emits_exactly_what_changed_and_loses_nothing(sandbox):
    workspace, server, config = sandbox
    first = cli.run("read", config, cli.catalog())
    assert first.returncode == 0, first.errors
    before = truth(workspace, server.api_url)
    for stream in cli.STREAMS:
        assert emitted(first, stream).keys() == before[stream].keys(), stream
    assert {s["stream"]["stream_descriptor"]["name"] for s in first.states} == set(cli.STREAMS)

    slugs = [r["slug"] for r in workspace.records("repositories") if r["mainbranch"]]
    prs = workspace.records("pull_requests")
    open_pr = next(pr for pr in prs if pr["state"] == "OPEN" and pr["close_source_branch"]
                   and pr["destination"]["repository"]["full_name"].split("/")[1] in slugs)
    running = next(d for d in workspace.records("deployments") if d["state"]["name"] == "IN_PROGRESS")
    open_pr_repo = open_pr["destination"]["repository"]["full_name"].split("/")[1]
    running_repo = running["commit"]["links"]["html"]["href"].split("/")[4]
    workspace.add_pull_request(slugs[0])
    workspace.update_pull_request(open_pr_repo, open_pr["id"])
    workspace.push_commits(slugs[1], 3)
    workspace.push_late_branch(slugs[2], 3, days_old=400)
    workspace.add_deployment(slugs[3], state="COMPLETED")
    workspace.complete_deployment(running_repo, running["uuid"])
    workspace.update_repository(slugs[4])
    workspace.add_member()
    pipelines = pipeline_changes(workspace)  # a running pipeline completes, a halted one resumes, two new ones
    review = review_changes(workspace)
    after = truth(workspace, server.api_url)
    server.reset_requests()

    second = cli.run("read", config, cli.catalog(), state=first.final_state())

    assert second.returncode == 0, second.errors
    changed_prs = {k for k, v in after["pull_requests"].items() if before["pull_requests"].get(k, {}).get("updated_on") != v["updated_on"]}
    moved = {k[0] for k, v in after["repositories"].items() if before["repositories"].get(k, {}).get("updated_on") != v["updated_on"]}
    for stream in cli.STREAMS:
        got = emitted(second, stream)
        changed = {k for k, v in after[stream].items() if before[stream].get(k) != v}
        if stream in REVIEW_STREAMS:
            check_review_stream(stream, got, before, after, changed_prs, moved, first)
            continue
        unfinished = {k for k, v in after[stream].items() if stream == "deployments" and not v["state"].get("completed_on")}
        if stream == "pipelines":
            unfinished = open_pipelines(before)  # read again by uuid
        if stream == "pipeline_steps":  # the steps of every pipeline new or open at the last sync
            read_again = open_pipelines(before) | (after["pipelines"].keys() - before["pipelines"].keys())
            unfinished = {k for k in after[stream] if k[:2] in read_again}
        expected = set(after[stream]) if stream in ("workspace_users", "environments") else changed | unfinished
        assert set(got) == expected, (stream, set(got) ^ expected)
        # nothing lost: the two syncs together hold every current record in its latest version
        union = {**emitted(first, stream), **got}
        assert union.keys() == after[stream].keys(), stream
        for key, record in got.items():
            assert strip(stream, record) == expected_record(stream, after[stream][key]), (stream, key)
    final = {r["uuid"]: r for r in second.records["pipelines"]}
    assert final[pipelines["completed"]["uuid"]]["state"]["name"] == "COMPLETED"
    assert final[pipelines["resumed"]["uuid"]]["state"]["stage"]["name"] == "RUNNING"
    assert {p["uuid"] for p in pipelines["added"]} <= final.keys()
    late = [c for c in second.records["commits"] if c["date"] < "2026-01-01"]
    assert len(late) == 3, "the old-dated commits of a branch merged late must be read"
    comments = {r["id"]: r for r in second.records["pull_request_comments"]}
    assert comments[review["edited"]["comment_id"]]["content"]["raw"].endswith(f"(edited at {review['edited']['updated_on']})")
    assert comments[review["deleted"]["comment_id"]]["deleted"] is True
    merged = (after["pull_requests"][(open_pr["destination"]["repository"]["uuid"], open_pr["id"])])
    assert merged["state"] == "MERGED" and emitted(first, "pull_request_commits")  # read while the branch existed ...
    assert not [r for r in second.records["pull_request_commits"] if r["pull_request_id"] == open_pr["id"]
                and r["repository_uuid"] == merged["destination"]["repository"]["uuid"]]  # ... empty now, nothing deleted
    assert {t["name"] for t in second.records["tags"]} >= {review["tag"]["name"], review["lightweight_tag"]["name"]}
    assert [p["uuid"] for p in second.records["projects"]] == [review["project"]["uuid"]]


def check_review_stream(stream, got, before, after, changed_prs, moved, first) -> None:
    """What the second sync must emit of a code-review stream, and that the two syncs lose nothing.

    Activity: every new entry, plus at most the entries of the lookback hour before each repository's
    cursor again. The pull-request-scoped streams: all the rows of the pull requests updated since
    (those with comments, for comments). Branches and tags: all the refs of the repositories whose
    updated_on moved. Projects: those updated. Deleted refs and the commits of a pull request whose
    branch is gone stay in the destination, as do activity entries the feed no longer lists."""
    if stream == "pull_request_activity":
        new = after[stream].keys() - before[stream].keys()
        assert new and new <= got.keys(), stream
        cursors = {k[0]: max(r["activity_date"] for r in first.records[stream] if r["repository_uuid"] == k[0])
                   for k in got.keys() - new}
        for key in got.keys() - new:  # the lookback's duplicates
            assert got[key]["activity_date"] >= _hour_before(cursors[key[0]]), key
        expected_keys = None
    elif stream in ("pull_request_comments", "pull_request_commits", "pull_request_diffstat"):
        expected_keys = {k for k in after[stream] if k[:2] in changed_prs}
    elif stream in ("branches", "tags"):
        expected_keys = {k for k in after[stream] if k[0] in moved}
    else:
        expected_keys = {k for k, v in after[stream].items() if before[stream].get(k) != v}
    if expected_keys is not None:
        assert set(got) == expected_keys, (stream, set(got) ^ expected_keys)
    union = {**emitted(first, stream), **got}
    assert union.keys() >= after[stream].keys(), stream
    if stream in ("pull_request_comments", "pull_request_diffstat", "projects"):
        assert union.keys() == after[stream].keys(), stream
    for key, record in got.items():
        if key in after[stream] and (stream != "pull_request_activity" or key not in before[stream]):
            assert strip(stream, record) == expected_record(stream, after[stream][key]), (stream, key)


def _hour_before(date: str) -> str:
    return format_datetime(parse_datetime(date) - LOOKBACK)


def test_an_unchanged_workspace_costs_one_request_per_repository_and_stream(sandbox):
    workspace, server, config = sandbox
    first = cli.run("read", config, cli.catalog())
    server.reset_requests()

    second = cli.run("read", config, cli.catalog(), state=first.final_state())

    assert second.returncode == 0
    full_or_unfinished = ("deployments", "workspace_users", "environments", "pipelines", "pipeline_steps",
                          "pull_request_activity")
    assert sum(len(v) for k, v in second.records.items() if k not in full_or_unfinished) == 0
    newest = {}
    for record in first.records["pull_request_activity"]:
        newest[record["repository_uuid"]] = max(newest.get(record["repository_uuid"], ""), record["activity_date"])
    assert all(r["activity_date"] >= _hour_before(newest[r["repository_uuid"]])  # only the lookback, again
               for r in second.records["pull_request_activity"])
    unfinished = open_pipelines(truth(workspace, server.api_url))
    assert {(r["repository_uuid"], r["uuid"]) for r in second.records["pipelines"]} == unfinished
    counts = server.request_counts()
    repositories = len(workspace.records("repositories"))
    assert counts["pullrequests"] == repositories  # one page each, shared by the pull-request-scoped streams
    assert counts["commits"] == 0  # no repository's updated_on moved: none is asked (the skip rule)
    assert counts["deployments"] == repositories
    assert counts["environments"] == repositories
    assert counts["pipelines"] == repositories + len(unfinished)  # one page each, one GET per open pipeline, shared
    assert counts["pipeline_steps"] == len(unfinished)
    assert counts["repositories"] == 1  # the listing, once: the repositories stream filters it too
    assert counts["pull_request_activity"] == repositories  # the feed's first page: nothing newer than the cursor
    assert counts["pull_request_comments"] == counts["pull_request_commits"] == counts["pull_request_diffstat"] == 0
    assert counts["branches"] == counts["tags"] == 0  # no repository's updated_on moved (the skip rule)
    assert counts["projects"] == 1


def test_reading_repositories_concurrently_gives_the_same_records_order_and_state(sandbox):
    workspace, server, config = sandbox
    sequential = cli.run("read", {**config, "num_workers": 1}, cli.catalog())
    concurrent = cli.run("read", {**config, "num_workers": 6}, cli.catalog())

    assert sequential.returncode == concurrent.returncode == 0
    for stream in cli.STREAMS:
        assert concurrent.records[stream] == sequential.records[stream], stream  # same records, same order
    assert without_checked_on(concurrent.final_state()) == without_checked_on(sequential.final_state())
    assert [s["stream"]["stream_descriptor"] for s in concurrent.states] == [
        s["stream"]["stream_descriptor"] for s in sequential.states
    ]


def without_checked_on(states):
    """States without commits' ``checked_on`` (each sync's own start time)."""
    out = json.loads(json.dumps(states))
    for state in out:
        for entry in (state["stream"].get("stream_state") or {}).values():
            if isinstance(entry, dict):
                entry.pop("checked_on", None)
    return out
