"""The repository selection against the sandbox, per stream: a filtered sync reads only the selected
repositories in every repository-scoped stream, and the partitions of a workspace together read every
record exactly once."""

from __future__ import annotations

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import connector_key
from integration_tests.sandbox import SandboxServer, generate_workspace
from source_bitbucket.selection import bucket

EMAIL, TOKEN = "dev@example.com", "sandbox-token-selection-5e6f"
WORKSPACE_LEVEL = ("workspace_users", "projects")
COUNT = 3


@pytest.fixture(scope="module")
def sandbox():
    workspace = generate_workspace(seed=9, repositories=8, pull_requests=24, commits=60, deployments=8, members=3)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        config = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url}
        reference = full_sync(config)
        assert reference.returncode == 0, reference.stderr[-2000:]
        yield workspace, server, config, reference


def full_sync(config):
    return cli.run("read", config, cli.catalog({s: "full_refresh" for s in cli.STREAMS}))


def keys(result, stream):
    return [connector_key(stream, r) for r in result.records[stream]]


def repository_of(stream, record):
    return record["uuid"] if stream == "repositories" else record.get("repository_uuid")


def test_the_partitions_read_every_record_exactly_once(sandbox):
    workspace, server, config, reference = sandbox
    parts = [full_sync({**config, "partition": {"index": i, "count": COUNT}}) for i in range(COUNT)]
    for i, part in enumerate(parts):
        assert part.returncode == 0, part.stderr[-2000:]
        for stream in cli.STREAMS:
            if stream in WORKSPACE_LEVEL:
                assert (part.records[stream] != []) == (i == 0), (stream, i)  # bucket 0 only
            else:
                assert {bucket(repository_of(stream, r), COUNT) for r in part.records[stream]} <= {i}, stream
    for stream in cli.STREAMS:
        together = [k for part in parts for k in keys(part, stream)]
        assert sorted(together) == sorted(keys(reference, stream)), stream  # each once, none missing
    assert all(part.records["repositories"] for part in parts)  # the sandbox's 8 spread over the 3 buckets


def test_a_filtered_sync_reads_only_the_selected_repositories_in_every_stream(sandbox):
    workspace, server, config, reference = sandbox
    repos = workspace.records("repositories")
    project = repos[0]["project"]["key"]
    excluded = next(r["slug"] for r in repos if r["project"]["key"] == project)
    chosen = {r["uuid"] for r in repos if r["project"]["key"] == project and r["slug"] != excluded}
    assert chosen, "the sandbox has a second repository in that project"
    server.reset_requests()

    result = full_sync({**config, "projects": [project], "excluded_repositories": [excluded], "repositories": ["*"]})

    assert result.returncode == 0, result.stderr[-2000:]
    assert {r["uuid"] for r in result.records["repositories"]} == chosen
    for stream in cli.STREAMS:
        if stream in WORKSPACE_LEVEL:
            assert keys(result, stream) == keys(reference, stream)
            continue
        expected = [connector_key(stream, r) for r in reference.records[stream] if repository_of(stream, r) in chosen]
        assert sorted(keys(result, stream)) == sorted(expected), stream
    listing = [q for _, path, q in server.requests if path.rstrip("/").endswith(f"/repositories/{workspace.slug}")]
    assert listing and all(q.get("q") == [f'project.key="{project}"'] for q in listing)  # filtered by Bitbucket


def test_check_counts_the_selected_repositories_and_fails_when_none_match(sandbox):
    workspace, server, config, _ = sandbox
    ok = cli.run("check", {**config, "repositories": ["api-*"]})
    none = cli.run("check", {**config, "repositories": ["no-such-*"]})
    [ok_status] = [m["connectionStatus"] for m in ok.other if m.get("type") == "CONNECTION_STATUS"]
    [none_status] = [m["connectionStatus"] for m in none.other if m.get("type") == "CONNECTION_STATUS"]
    assert ok_status["status"] == "SUCCEEDED"
    assert any("repositories match the selection" in log["message"] for log in ok.logs)
    assert none_status["status"] == "FAILED" and "'repositories'" in none_status["message"]
