"""The commits stream's tips against the sandbox: every tip sent (by POST once they outgrow a URL), the skip
rule for repositories nothing was pushed to, and its weekly full check."""

from __future__ import annotations

import copy
from datetime import timedelta
from urllib.parse import unquote

import pytest

from integration_tests import connector_cli as cli
from integration_tests.sandbox import SandboxServer, generate_workspace
from integration_tests.sandbox.resources import endpoint_kind
from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.streams.unchanged import FULL_CHECK_EVERY

EMAIL, TOKEN = "dev@example.com", "sandbox-token-tips-41c2"
BRANCHES = 200  # tips in 40-character hashes: far past a URL's length once sent as exclude=


@pytest.fixture(scope="module")
def synced():
    """A workspace whose busiest repository got ``BRANCHES`` new branches after a first sync, and the second sync."""
    workspace = generate_workspace(seed=11, repositories=6, pull_requests=20, commits=120, deployments=5, members=3)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        config = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url}
        catalog = cli.catalog(streams=["commits"])
        first = cli.run("read", config, catalog)
        repo = max(workspace.repositories, key=lambda r: len(r.graph))
        branches = workspace.add_branches(repo.slug, BRANCHES)["branches"]
        server.reset_requests()
        second = cli.run("read", config, catalog, state=first.final_state())
        yield workspace, server, config, catalog, repo, branches, second


def commit_requests(server, repo):
    """``(method, query)`` of each request for the repository's commit listing."""
    return [(method, query) for method, path, query in server.requests
            if endpoint_kind(path) == "commits" and unquote(path.split("/")[4]) in (repo.slug, repo.uuid)]


def tips_of(result, repo):
    state = result.final_state()[0]["stream"]["stream_state"]
    return state[repo.uuid]["exclude"]


def test_new_branches_are_read_once_and_every_tip_is_kept(synced):
    workspace, server, _, _, repo, branches, second = synced
    assert second.returncode == 0, second.stderr[-2000:]
    assert sorted(r["hash"] for r in second.records["commits"]) == sorted(branches.values())
    assert set(branches.values()) <= set(tips_of(second, repo))  # no cap: every tip is in the state
    others = {r.uuid for r in workspace.repositories} - {repo.uuid}
    assert not any(r["repository_uuid"] in others for r in second.records["commits"])  # nothing pushed there


def test_tips_that_do_not_fit_in_a_url_go_in_a_post_body_and_cost_one_request(synced):
    workspace, server, config, catalog, repo, branches, second = synced
    pushed = workspace.push_commits(repo.slug, 1)["commits"]
    server.reset_requests()

    third = cli.run("read", config, catalog, state=second.final_state())

    assert third.returncode == 0, third.stderr[-2000:]
    assert [r["hash"] for r in third.records["commits"]] == pushed  # only the new commit, nothing listed again
    (method, query), = commit_requests(server, repo)  # one request, whatever the number of branches
    assert method == "POST" and "exclude" not in query  # the tips travelled in the body
    assert server.request_counts()["commits"] == 1  # the others: no push, skipped


def test_a_repository_not_read_for_a_week_is_read_anyway_at_one_request(synced):
    workspace, server, config, catalog, repo, _, second = synced
    current = cli.run("read", config, catalog, state=second.final_state())  # whatever earlier tests pushed
    state = copy.deepcopy(current.final_state())
    entries = state[0]["stream"]["stream_state"]
    aged = [uuid for uuid, entry in entries.items() if isinstance(entry, dict) and entry.get("checked_on")]
    for uuid in aged:
        checked_on = parse_datetime(entries[uuid]["checked_on"])
        entries[uuid]["checked_on"] = format_datetime(checked_on - FULL_CHECK_EVERY - timedelta(hours=1))
    server.reset_requests()

    checked = cli.run("read", config, catalog, state=state)

    assert checked.returncode == 0, checked.stderr[-2000:]
    assert len(aged) == len(workspace.repositories)
    assert server.request_counts()["commits"] == len(aged)  # each read again, one request each (POST for the big one)
    assert checked.records["commits"] == []  # nothing listed again
    after = checked.final_state()[0]["stream"]["stream_state"]
    assert all(parse_datetime(after[uuid]["checked_on"]) > parse_datetime(entries[uuid]["checked_on"]) for uuid in aged)
