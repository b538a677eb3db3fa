"""Each credentials choice syncs every stream through ``python main.py read`` against the sandbox, and an
OAuth access token that expires mid-sync is refreshed, the rotated refresh token written back."""

from __future__ import annotations

import pytest

from integration_tests import connector_cli as cli
from integration_tests.sandbox import SandboxServer, generate_workspace
from integration_tests.sandbox.oauth import TokenIssuer

EMAIL, TOKEN, ACCESS_TOKEN = "dev@example.com", "sandbox-token-auth-77aa", "sbx-access-token-workspace-01"
CLIENT_ID, CLIENT_SECRET = "sandbox-consumer-key", "sandbox-consumer-secret"


@pytest.fixture(scope="module")
def sandbox():
    workspace = generate_workspace(seed=5, repositories=4, pull_requests=16, commits=40, deployments=6, members=3)
    issuer = TokenIssuer(CLIENT_ID, CLIENT_SECRET, refresh_tokens={"sbx-refresh-initial"}, lifetime_requests=25)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN, access_tokens=[ACCESS_TOKEN], oauth=issuer) as server:
        base = {"workspace": workspace.slug, "api_url": server.api_url, "start_date": "2020-01-01T00:00:00Z"}
        reference = cli.run("read", {**base, "email": EMAIL, "api_token": TOKEN}, cli.catalog({s: "full_refresh" for s in cli.STREAMS}))
        assert reference.returncode == 0, reference.stderr[-2000:]
        yield server, issuer, base, reference.counts()


def full_sync(config):
    return cli.run("read", config, cli.catalog({s: "full_refresh" for s in cli.STREAMS}))


def config_updates(result):
    """The CONNECTOR_CONFIG control messages' configs, in order."""
    return [m["control"]["connectorConfig"]["config"] for m in result.other
            if m.get("type") == "CONTROL" and m["control"].get("type") == "CONNECTOR_CONFIG"]


@pytest.mark.parametrize("credentials", [
    {"auth_type": "api_token", "email": EMAIL, "api_token": TOKEN},
    {"auth_type": "access_token", "access_token": ACCESS_TOKEN},
    {"auth_type": "oauth2.0", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},  # client credentials
], ids=["api_token", "access_token", "client_credentials"])
def test_each_credentials_choice_syncs_every_stream(sandbox, credentials):
    server, _, base, expected = sandbox
    result = full_sync({**base, "credentials": credentials})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.counts() == expected and sum(expected.values()) > 0
    secret = credentials.get("api_token") or credentials.get("access_token") or credentials["client_secret"]
    assert secret not in result.stdout  # masked in every log line


def test_an_oauth_token_expiring_mid_sync_is_refreshed_and_the_rotated_refresh_token_written_back(sandbox):
    server, issuer, base, expected = sandbox
    issued_before = issuer.issued
    # one worker: with ten, a token that lasts 25 requests can be spent by the others before a 401's retry
    config = {**base, "num_workers": 1,
              "credentials": {"auth_type": "oauth2.0", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                              "refresh_token": "sbx-refresh-initial"}}

    result = full_sync(config)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.counts() == expected  # nothing lost to the expiries
    assert issuer.issued - issued_before >= 3  # the first token, then one per 25 requests: refreshed on the 401s
    updates = config_updates(result)
    assert len(updates) == issuer.issued - issued_before  # one config update per rotation
    latest = updates[-1]["credentials"]
    assert latest["refresh_token"] in issuer.refresh_tokens and "sbx-refresh-initial" not in issuer.refresh_tokens
    assert latest["refresh_token"] not in " ".join(log["message"] for log in result.logs)  # masked in the logs

    again = cli.run("read", {**config, "credentials": latest}, cli.catalog(streams=["repositories"]))  # the next sync's config
    assert again.returncode == 0 and again.counts()["repositories"] == expected["repositories"]


def test_a_used_refresh_token_fails_check_with_the_fields_to_fix(sandbox):
    server, issuer, base, _ = sandbox
    config = {**base, "credentials": {"auth_type": "oauth2.0", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                      "refresh_token": "sbx-refresh-never-issued"}}
    result = cli.run("check", config)
    [status] = [m["connectionStatus"] for m in result.other if m.get("type") == "CONNECTION_STATUS"]
    assert status["status"] == "FAILED" and "invalid_grant" in status["message"] and "credentials.client_id" in status["message"]


def test_scaled_rate_limit_headers_pace_the_sync_without_a_429():
    workspace = generate_workspace(seed=6, repositories=6, pull_requests=30, commits=60, deployments=6, members=3)
    # 100 requests per rolling 10 s: the sync needs about twice that, so it must slow down near the limit
    with SandboxServer(workspace, access_tokens=[ACCESS_TOKEN], rate_limit=100, rate_window_s=10) as server:
        config = {"workspace": workspace.slug, "api_url": server.api_url,
                  "credentials": {"auth_type": "access_token", "access_token": ACCESS_TOKEN}}
        result = full_sync(config)
        requests_sent = len(server.requests)
    assert result.returncode == 0, result.stderr[-2000:]
    assert requests_sent > 150 and server.rate_limited == 0  # past the window's 100, yet no 429
    paced = [log["message"] for log in result.logs if log["message"].startswith("rate limit: 100 requests per window")]
    assert paced and "requests/minute" in paced[0]


def test_an_access_token_refused_the_workspace_level_streams_skips_them_with_one_warning_each(sandbox):
    server, _, base, expected = sandbox
    config = {**base, "credentials": {"auth_type": "access_token", "access_token": ACCESS_TOKEN}}
    # a repository access token: Bitbucket refuses it the workspace's members and projects
    server.add_fault("403", path_contains="/members", times=None)
    server.add_fault("403", path_contains="/projects", times=None)
    try:
        result = full_sync(config)
        check = cli.run("check", config)
    finally:
        server.clear_faults()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.counts() == {**expected, "workspace_users": 0, "projects": 0}  # every other stream in full
    warnings = [log["message"] for log in result.logs if log["level"] == "WARN"]
    assert sum("Skipping stream workspace_users" in w for w in warnings) == 1
    assert sum("Skipping stream projects" in w for w in warnings) == 1
    [status] = [m["connectionStatus"] for m in check.other if m.get("type") == "CONNECTION_STATUS"]
    assert status["status"] == "SUCCEEDED"
    assert any("cannot read workspace_users" in log["message"] for log in check.logs if log["level"] == "WARN")
