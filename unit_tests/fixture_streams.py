"""Streams that are not shipped: what adding a stream takes, one class and one schema each.

``DefaultReviewers`` is read once per repository, ``PullRequestTasks`` and ``PullRequestStatuses`` once per pull
request. ``registered(monkeypatch, *classes)`` adds them to the source's registry for one test, so
they go through the same contract tests as the shipped streams (``test_stream_contract.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from source_bitbucket import source
from source_bitbucket.streams import STREAM_CLASSES
from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

SCHEMAS = Path(__file__).resolve().parent / "resource" / "schemas"


class _SchemaFromTests:
    """Schemas of test-only streams live in ``unit_tests/resource/schemas`` (shipped ones in ``schemas/``)."""

    def get_json_schema(self) -> Mapping[str, Any]:
        return json.loads((SCHEMAS / f"{self.name}.json").read_text())


class DefaultReviewers(_SchemaFromTests, RepositoryScopedStream):
    """``GET /repositories/{workspace}/{repo}/default-reviewers``: full refresh, per repository."""

    name = "default_reviewers"
    primary_key = ["repository_uuid", "uuid"]
    page_size = 100
    required_scope = "read:pullrequest:bitbucket"
    resource = "default-reviewers"


class PullRequestTasks(_SchemaFromTests, PullRequestScopedStream):
    """``GET /repositories/{workspace}/{repo}/pullrequests/{id}/tasks``, per pull request."""

    name = "pull_request_tasks"
    primary_key = ["repository_uuid", "pull_request_id", "id"]
    page_size = 100
    required_scope = "read:pullrequest:bitbucket"
    resource = "tasks"


class PullRequestStatuses(_SchemaFromTests, PullRequestScopedStream):
    """``GET /repositories/{workspace}/{repo}/pullrequests/{id}/statuses``, per pull request."""

    name = "pull_request_statuses"
    primary_key = ["repository_uuid", "pull_request_id", "key"]
    page_size = 100
    required_scope = "read:pullrequest:bitbucket"
    resource = "statuses"


FIXTURE_STREAMS = (DefaultReviewers, PullRequestTasks, PullRequestStatuses)


def registered(monkeypatch, *classes: type) -> None:
    """Register ``classes`` after the shipped streams, for the current test only."""
    monkeypatch.setattr(source, "STREAM_CLASSES", STREAM_CLASSES + tuple(classes))
