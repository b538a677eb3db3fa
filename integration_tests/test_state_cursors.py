"""Cursors in an incoming state that cannot be used, through ``main.py read`` against the sandbox.

A cursor later than the start of the sync (hand-edited, or written by a buggy tool) would make every
stream read nothing and, echoed back, every later sync too; a cursor that cannot be parsed would be
carried from state to state. Both are dropped from the state with one warning naming the stream, the
repository and the value, and neither is written back. A future cursor counts as the sync's start in
that sync (nothing new is read there, as Airbyte's future-state acceptance test expects); the next sync
reads from start_date (duplicates, never losses). An unparsable one is read from start_date at once.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import keys, truth_keys
from integration_tests.sandbox import SandboxServer, generate_workspace

EMAIL, TOKEN = "dev@example.com", "sandbox-token-cursors-5d1e"
NOW = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()
FUTURE = "2099-01-01T00:00:00Z"
CURSORS = {"pull_requests": "updated_on", "commits": "date", "deployments": "completed_on"}
STREAMS = ["repositories", "pull_requests", "commits", "deployments"]


def stream_state(name: str, value: Mapping[str, Any]) -> Dict[str, Any]:
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": value}}


def read_with(state_for, then_resume: bool = False) -> tuple:
    """Read with ``state_for(uuids)``; with ``then_resume``, also read again with the STATE emitted."""
    workspace = generate_workspace(seed=4, repositories=3, pull_requests=40, commits=80, deployments=8, members=2, now=NOW)
    uuids = [r.uuid for r in workspace.repositories]
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        conf = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url}
        result = cli.run("read", conf, cli.catalog(streams=STREAMS), state=state_for(uuids), timeout=240)
        resumed = cli.run("read", conf, cli.catalog(streams=STREAMS), state=result.final_state(), timeout=240) if then_resume else None
    return workspace, uuids, result, resumed


def warnings(result: cli.SyncResult) -> List[str]:
    return [log["message"] for log in result.logs if log["level"] == "WARN"]


@pytest.mark.parametrize("shape", ["per_repository", "stream_wide"])
def test_a_cursor_later_than_the_sync_start_is_ignored_with_a_warning_and_never_written_back(shape: str) -> None:
    def state_for(uuids):
        states = [stream_state("repositories", {"updated_on": FUTURE})]
        for stream, field in CURSORS.items():
            value = {uuid: {field: FUTURE} for uuid in uuids} if shape == "per_repository" else {field: FUTURE}
            states.append(stream_state(stream, value))
        return states

    workspace, uuids, result, resumed = read_with(state_for, then_resume=True)

    assert result.returncode == 0, result.errors
    for stream in STREAMS:  # the cursor counts as the sync's start: nothing new is read in this sync
        records = result.records.get(stream, [])
        assert all(stream == "deployments" and not r.get("completed_on") for r in records), (stream, len(records))
    said = warnings(result)
    for stream in STREAMS:
        about = [w for w in said if w.startswith(f"{stream}: ") and FUTURE in w and "later than the start of this sync" in w]
        if shape == "per_repository" and stream != "repositories":
            assert sorted(uuid for uuid in uuids if any(uuid in w for w in about)) == sorted(uuids), (stream, about)
            assert len(about) == len(uuids), about  # one warning per cursor
        else:
            assert len(about) == 1, (stream, said)
    assert "2099" not in json.dumps(result.states)  # never written back ...
    assert resumed.returncode == 0, resumed.errors
    truth = truth_keys(workspace)
    for stream in STREAMS:  # ... so the next sync reads everything since start_date: nothing is lost
        assert set(keys(resumed, stream)) == truth[stream], stream
    assert not [w for w in warnings(resumed) if "cursor" in w]


def test_a_cursor_that_cannot_be_parsed_is_dropped_with_one_warning_and_not_copied_into_later_states() -> None:
    def state_for(uuids):
        return [stream_state("pull_requests", {uuids[0]: {"updated_on": "last tuesday"}}),
                stream_state("repositories", {"updated_on": "13/45/2024"})]

    workspace, uuids, result, _ = read_with(state_for)

    assert result.returncode == 0, result.errors
    said = warnings(result)
    assert len([w for w in said if "'last tuesday'" in w and uuids[0] in w and w.startswith("pull_requests: ")]) == 1, said
    assert len([w for w in said if "'13/45/2024'" in w and w.startswith("repositories: ")]) == 1, said
    assert "last tuesday" not in json.dumps(result.states) and "13/45/2024" not in json.dumps(result.states)
    assert set(keys(result, "pull_requests")) == truth_keys(workspace)["pull_requests"]


def test_a_cursor_between_bitbucket_s_clock_and_ours_is_in_the_future_too() -> None:
    """Bitbucket's clock an hour behind ours (the sandbox's Date header follows its clock): a cursor 20 minutes
    ago by our clock is 40 minutes ahead of Bitbucket's. Trusted, it would hide every pull request updated in
    the next 40 minutes of Bitbucket's time, for good."""
    behind = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    ahead_of_bitbucket = (datetime.now(timezone.utc) - timedelta(minutes=20)).isoformat()
    workspace = generate_workspace(seed=7, repositories=2, pull_requests=20, commits=30, deployments=4, members=1, now=behind)
    uuids = [r.uuid for r in workspace.repositories]
    catalog = cli.catalog(streams=["pull_requests", "commits", "deployments"])
    state = [stream_state(stream, {uuid: {field: ahead_of_bitbucket} for uuid in uuids}) for stream, field in CURSORS.items()]
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN, clock_dates=True) as server:
        conf = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url}
        first = cli.run("read", conf, catalog, state=state, timeout=240)
        repo = max(workspace.repositories, key=lambda r: len(r.pull_requests))
        workspace.update_pull_request(repo.slug, repo.pull_requests[0].id)  # dated by Bitbucket's clock: before the cursor
        workspace.add_pull_request(repo.slug)
        workspace.push_commits(repo.slug, 2)
        second = cli.run("read", conf, catalog, state=first.final_state(), timeout=240)
    assert first.returncode == 0 and second.returncode == 0, (first.errors, second.errors)
    assert [w for w in warnings(first) if "later than the start of this sync" in w]
    assert ahead_of_bitbucket not in json.dumps(first.states)
    truth = truth_keys(workspace)
    for stream in CURSORS:
        assert set(keys(first, stream)) | set(keys(second, stream)) == truth[stream], stream
