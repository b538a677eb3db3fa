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
