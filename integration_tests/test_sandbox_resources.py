"""The sandbox's list table (``sandbox.resources.PAGED``): one more entry is one more served, capped, counted list."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integration_tests.sandbox import SandboxServer, generate_workspace, resources
from integration_tests.sandbox.resources import PULL_REQUEST, Paged, endpoint_kind

EMAIL, TOKEN = "dev@example.com", "sandbox-token"
TASKS = Paged("tasks", PULL_REQUEST + "/tasks", lambda owner, _: list(range(owner.pull_request.id + 4)),
              lambda owner, n: {"type": "task", "id": n, "pull_request": owner.pull_request.id}, default_pagelen=3,
              max_pagelen=5)


@pytest.fixture
def tasks_registered(monkeypatch):
    monkeypatch.setattr(resources, "PAGED", [*resources.PAGED, TASKS])


def test_endpoint_kinds_come_from_the_table():
    assert [endpoint_kind(p) for p in ("/2.0/repositories/ws", "/2.0/repositories/ws/x", "/2.0/repositories/ws/x/pullrequests",
                                       "/2.0/repositories/ws/x/pullrequests/3", "/2.0/repositories/ws/x/commits/a/b",
                                       "/2.0/repositories/ws/x/deployments", "/2.0/workspaces/ws/members",
                                       "/2.0/repositories/ws/x/refs/branches", "/2.0/user", "/2.0/workspaces/ws",
                                       "/2.0/repositories/ws/x/pullrequests/3/tasks", "/elsewhere",
                                       "/2.0/repositories/ws/x/environments", "/2.0/repositories/ws/x/pipelines/",
                                       "/2.0/repositories/ws/x/pipelines/%7Bp%7D", "/2.0/repositories/ws/x/pipelines/%7Bp%7D/steps/",
                                       "/2.0/repositories/ws/x/pipelines/%7Bp%7D/steps/%7Bs%7D",
                                       "/2.0/repositories/ws/x/refs/tags", "/2.0/repositories/ws/x/pullrequests/activity",
                                       "/2.0/repositories/ws/x/pullrequests/3/comments", "/2.0/repositories/ws/x/pullrequests/3/commits",
                                       "/2.0/repositories/ws/x/pullrequests/3/diffstat", "/2.0/repositories/ws/x/diffstat/a..b",
                                       "/2.0/workspaces/ws/projects")] == [
        "repositories", "repositories", "pullrequests", "pullrequests", "commits", "deployments", "members", "branches",
        "other", "other", "other", "other", "environments", "pipelines", "pipelines", "pipeline_steps", "pipeline_steps",
        "tags", "pull_request_activity", "pull_request_comments", "pull_request_commits", "pull_request_diffstat",
        "pull_request_diffstat", "projects"]
    assert resources.kinds() == ("repositories", "pullrequests", "deployments", "members", "environments", "pipelines",
                                 "pipeline_steps", "branches", "tags", "pull_request_comments", "pull_request_diffstat",
                                 "projects", "commits", "pull_request_activity", "pull_request_commits", "other")


def test_a_registered_resource_is_served_paged_capped_and_counted(tasks_registered):
    assert endpoint_kind("/2.0/repositories/ws/x/pullrequests/3/tasks") == "tasks"
    ws = generate_workspace(seed=1, repositories=2, pull_requests=6, commits=12, deployments=2, members=2)
    repo = next(r for r in ws.repositories if r.pull_requests)
    pr = repo.pull_requests[-1]
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN) as server, requests.Session() as http:
        http.auth = (EMAIL, TOKEN)
        url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests/{pr.id}/tasks"
        first = http.get(url, params={"fields": "values.id,next,size"}).json()
        assert first["size"] == pr.id + 4 and [t["id"] for t in first["values"]] == [0, 1, 2]
        assert parse_qs(urlsplit(first["next"]).query) == {"fields": ["values.id,next,size"], "page": ["2"]}
        values, next_url = [], f"{url}?pagelen=5"
        while next_url:
            page = http.get(next_url).json()
            values += page["values"]
            next_url = page.get("next")
        assert values == [{"type": "task", "id": n, "pull_request": pr.id} for n in range(pr.id + 4)]
        too_long = http.get(url, params={"pagelen": 6})
        assert too_long.status_code == 400 and too_long.json()["error"]["message"] == "Invalid pagelen"
        missing = http.get(f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests/999/tasks")
        assert missing.status_code == 404 and missing.json()["error"]["message"] == "Pull request 999 not found"
        pages = 2 + -(-(pr.id + 4) // 5)
        counts = server.request_counts()
        assert {k: v for k, v in counts.items() if v} == {"tasks": pages + 1}
        assert set(counts) == set(resources.kinds()) and "tasks" in counts
