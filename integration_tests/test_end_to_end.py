"""``python main.py read`` against the sandbox: every stream in full, then exactly what changed."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import connector_key
from integration_tests.sandbox import SandboxServer, generate_workspace

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
    return {s: {truth_key(s, r): r for r in workspace.records(s, api_url)} for s in cli.STREAMS}


def emitted(result: cli.SyncResult, stream: str) -> Dict[Tuple, Mapping[str, Any]]:
    keys = [connector_key(stream, r) for r in result.records[stream]]
    assert len(keys) == len(set(keys)), f"{stream}: duplicate records in one sync"
    return {connector_key(stream, r): r for r in result.records[stream]}


def strip(record: Mapping[str, Any]) -> Dict[str, Any]:
    """A connector record without the fields the connector adds."""
    added = {"repository_uuid", "repository_full_name", "completed_on", "user_uuid"}
    return {k: v for k, v in record.items() if k not in added}


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
                assert strip(record) == {k: v for k, v in expected[stream][key].items() if v is not None}, (stream, key)
    prs = result.records["pull_requests"]  # the collection leaves them out unless asked with fields=+values...
    assert all(isinstance(p.get("participants"), list) and isinstance(p.get("reviewers"), list) for p in prs)
    assert sum(bool(p["reviewers"]) for p in prs) > len(prs) / 2 and any(p["participants"] for p in prs)
    assert all(q["fields"] == ["+values.participants,+values.reviewers"]
               for _, path, q in server.requests if path.endswith("/pullrequests"))
    assert server.request_counts()["repositories"] == 1  # one listing page, read once for all streams
    assert not any(e for e in result.errors)
    assert TOKEN not in result.stdout + result.stderr


def test_an_incremental_sync_after_changes_emits_exactly_what_changed_and_loses_nothing(sandbox):
    workspace, server, config = sandbox
    first = cli.run("read", config, cli.catalog())
    assert first.returncode == 0, first.errors
    before = truth(workspace, server.api_url)
    for stream in cli.STREAMS:
        assert emitted(first, stream).keys() == before[stream].keys(), stream
    assert {s["stream"]["stream_descriptor"]["name"] for s in first.states} == set(cli.STREAMS)

    slugs = [r["slug"] for r in workspace.records("repositories") if r["mainbranch"]]
    open_pr = next(pr for pr in workspace.records("pull_requests") if pr["state"] == "OPEN")
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
    after = truth(workspace, server.api_url)
    server.reset_requests()

    second = cli.run("read", config, cli.catalog(), state=first.final_state())

    assert second.returncode == 0, second.errors
    for stream in cli.STREAMS:
        got = emitted(second, stream)
        changed = {k for k, v in after[stream].items() if before[stream].get(k) != v}
        unfinished = {k for k, v in after[stream].items() if stream == "deployments" and not v["state"].get("completed_on")}
        expected = set(after[stream]) if stream == "workspace_users" else changed | unfinished
        assert set(got) == expected, (stream, set(got) ^ expected)
        # nothing lost: the two syncs together hold every current record in its latest version
        union = {**emitted(first, stream), **got}
        assert union.keys() == after[stream].keys(), stream
        for key, record in got.items():
            assert strip(record) == {k: v for k, v in after[stream][key].items() if v is not None}, (stream, key)
    late = [c for c in second.records["commits"] if c["date"] < "2026-01-01"]
    assert len(late) == 3, "the old-dated commits of a branch merged late must be read"


def test_an_unchanged_workspace_costs_one_request_per_repository_and_stream(sandbox):
    workspace, server, config = sandbox
    first = cli.run("read", config, cli.catalog())
    server.reset_requests()

    second = cli.run("read", config, cli.catalog(), state=first.final_state())

    assert second.returncode == 0
    assert sum(len(v) for k, v in second.records.items() if k not in ("deployments", "workspace_users")) == 0
    counts = server.request_counts()
    repositories = len(workspace.records("repositories"))
    assert counts["pullrequests"] == repositories
    assert counts["commits"] == repositories
    assert counts["deployments"] == repositories
    assert counts["repositories"] == 2  # the filtered window for the stream, the listing for the children


def test_reading_repositories_concurrently_gives_the_same_records_order_and_state(sandbox):
    workspace, server, config = sandbox
    sequential = cli.run("read", {**config, "num_workers": 1}, cli.catalog())
    concurrent = cli.run("read", {**config, "num_workers": 6}, cli.catalog())

    assert sequential.returncode == concurrent.returncode == 0
    for stream in cli.STREAMS:
        assert concurrent.records[stream] == sequential.records[stream], stream  # same records, same order
    assert concurrent.final_state() == sequential.final_state()
    assert [s["stream"]["stream_descriptor"] for s in concurrent.states] == [
        s["stream"]["stream_descriptor"] for s in sequential.states
    ]
