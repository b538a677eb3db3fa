"""Which server credentials go to, and which scopes a token lacks, through ``main.py`` against the sandbox.

* ``api_url`` and the API's ``next`` links are compared as origins (scheme, host case-insensitively,
  effective port; loopback spellings as one host), by ``read`` and by ``check`` alike.
* A 403 that is Bitbucket's scope error fails the stream at once, naming the scope; a 403 without it
  (no access to one repository) skips that repository with one warning. ``check`` names every missing scope.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict
from urllib.parse import urlsplit

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import keys, truth_keys
from integration_tests.sandbox import SandboxServer, generate_workspace
from source_bitbucket.streams import STREAM_CLASSES

EMAIL, TOKEN = "dev@example.com", "sandbox-token-hosts-8a2f"
NOW = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()


def workspace():
    """4 repositories (one empty); the busiest has 2 pages of pull requests and 3 of commits."""
    return generate_workspace(seed=2, repositories=4, pull_requests=120, commits=260, deployments=12, members=4, now=NOW)


def config(api_url: str, ws) -> Dict[str, Any]:
    return {"workspace": ws.slug, "email": EMAIL, "api_token": TOKEN, "api_url": api_url, "max_waiting_time": 0.5}


def check_status(result: cli.SyncResult) -> Dict[str, Any]:
    [status] = [m["connectionStatus"] for m in result.other if m.get("type") == "CONNECTION_STATUS"]
    return status


@pytest.mark.parametrize("spelling", ["localhost", "LOCALHOST", "127.0.0.1"])
def test_another_spelling_of_the_sandbox_host_reads_every_page(spelling: str) -> None:
    ws = workspace()
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN) as server:
        api_url = f"http://{spelling}:{urlsplit(server.api_url).port}/2.0"
        checked = cli.run("check", config(api_url, ws))
        result = cli.run("read", config(api_url, ws), cli.catalog(), timeout=240)
    assert check_status(checked)["status"] == "SUCCEEDED", checked.stdout[-2000:]
    assert result.returncode == 0, result.errors
    truth = truth_keys(ws)
    for stream in cli.STREAMS:
        assert set(keys(result, stream)) == truth[stream], stream


def test_check_refuses_a_next_link_to_another_server_as_read_does() -> None:
    ws = workspace()
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN) as server:
        server.add_fault("foreign_next", f"/repositories/{ws.slug}?", None)
        checked = cli.run("check", config(server.api_url, ws))
        foreign = [path for _, path, _ in server.requests]
    status = check_status(checked)
    assert status["status"] == "FAILED" and "evil.example.com" in status["message"] and "'api_url'" in status["message"]
    assert len(foreign) == 1  # nothing sent after the refused link


# ----------------------------------------------------------------------------- scopes
ALL_SCOPES = ["read:repository:bitbucket", "read:pullrequest:bitbucket", "read:pipeline:bitbucket", "read:workspace:bitbucket"]


def without(scope: str):
    return [s for s in ALL_SCOPES if s != scope]


def stream_errors(result: cli.SyncResult) -> Dict[str, str]:
    return {t["error"]["stream_descriptor"]["name"]: t["error"]["message"]
            for t in result.traces if t.get("type") == "ERROR" and t["error"].get("stream_descriptor")}


def test_a_token_without_the_pull_request_scope_fails_check_and_the_stream_not_a_green_empty_sync() -> None:
    ws = workspace()
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN, scopes=without("read:pullrequest:bitbucket")) as server:
        checked = cli.run("check", config(server.api_url, ws))
        check_requests = len(server.requests)
        server.reset_requests()
        result = cli.run("read", config(server.api_url, ws), cli.catalog(), timeout=240)
        pull_request_requests = [p for _, p, _ in server.requests if p.endswith("/pullrequests")]
    status = check_status(checked)
    assert status["status"] == "FAILED" and "read:pullrequest:bitbucket (for pull_requests" in status["message"], status
    assert check_requests == 5  # /user, the workspace, one repository, its pull requests, the projects
    assert result.returncode != 0
    errors = stream_errors(result)
    needing = [c.name for c in STREAM_CLASSES if c.required_scope == "read:pullrequest:bitbucket"]
    assert list(errors) == needing and "pull_request_activity" in needing, errors  # each fails once, nothing else
    for stream in needing:
        assert "needs the scope read:pullrequest:bitbucket" in errors[stream], errors[stream]
    assert "id.atlassian.com/manage-profile/security/api-tokens" in errors["pull_requests"]
    assert len(pull_request_requests) <= 10  # failed at once, not one skip per repository (at most one per worker)
    assert not [l for l in result.logs if "Skipping repository" in l["message"]]
    truth = truth_keys(ws)
    for stream in ("repositories", "commits", "deployments", "workspace_users"):  # the other streams still sync
        assert set(keys(result, stream)) == truth[stream], stream


def test_a_token_without_the_pipeline_scope_passes_check_with_a_warning_and_fails_only_the_pipeline_streams() -> None:
    ws = workspace()
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN, scopes=without("read:pipeline:bitbucket")) as server:
        checked = cli.run("check", config(server.api_url, ws))
        result = cli.run("read", config(server.api_url, ws), cli.catalog(), timeout=240)
    assert check_status(checked)["status"] == "SUCCEEDED"
    assert any("read:pipeline:bitbucket (for deployments" in l["message"] for l in checked.logs if l["level"] == "WARN")
    pipeline_streams = [c.name for c in STREAM_CLASSES if c.required_scope == "read:pipeline:bitbucket"]
    assert pipeline_streams == ["deployments", "environments", "pipelines", "pipeline_steps"]
    assert sorted(stream_errors(result)) == sorted(pipeline_streams)
    assert all("read:pipeline:bitbucket" in message for message in stream_errors(result).values())


def test_a_403_without_the_scope_error_skips_only_that_repository_with_one_warning() -> None:
    ws = workspace()
    target = max(ws.repositories, key=lambda r: len(r.pull_requests))
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN) as server:
        server.add_fault("403", "/pullrequests", None, repository=target.slug)
        result = cli.run("read", config(server.api_url, ws), cli.catalog(streams=["pull_requests"]), timeout=240)
    assert result.returncode == 0, result.errors
    warned = [l["message"] for l in result.logs if "Skipping repository" in l["message"]]
    assert len(warned) == 1 and f"{ws.slug}/{target.slug}" in warned[0] and "HTTP 403" in warned[0], warned
    expected = {k for k in truth_keys(ws)["pull_requests"] if k[0] != target.uuid}
    assert set(keys(result, "pull_requests")) == expected


def test_once_a_scope_error_is_seen_the_stream_sends_no_more_requests() -> None:
    """30 repositories, 2 workers: at most the 2 requests in flight meet the 403; the other 28
    repositories cost nothing (the rate limit is not spent on answers known in advance)."""
    ws = generate_workspace(seed=6, repositories=30, pull_requests=60, commits=60, deployments=0, members=1, now=NOW)
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN, scopes=without("read:pullrequest:bitbucket")) as server:
        result = cli.run("read", {**config(server.api_url, ws), "num_workers": 2}, cli.catalog(streams=["pull_requests"]), timeout=240)
        sent = [p for _, p, _ in server.requests if p.endswith("/pullrequests")]
    assert result.returncode != 0 and list(stream_errors(result)) == ["pull_requests"]
    assert 1 <= len(sent) <= 2, len(sent)
    errors_logged = [l for l in result.logs if l["level"] == "ERROR" and "failed with status code '403'" in l["message"]]
    assert len(errors_logged) <= 2, len(errors_logged)
