"""spec, check and discover through the real entrypoint."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import _run_command, discover

from source_bitbucket import SourceBitbucket
from unit_tests.conftest import API, TOKEN, WORKSPACE

LISTING = f"{API}/repositories/{WORKSPACE}"


def run_check(config, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    output = _run_command(SourceBitbucket(), ["check", "--config", str(path)])
    [status] = output.connection_status_messages
    return status.connectionStatus, output


def test_spec_lists_the_config_fields_in_order_with_the_token_secret():
    output = _run_command(SourceBitbucket(), ["spec"])
    [message] = output.spec_messages
    spec = message.spec.connectionSpecification
    assert spec["required"] == ["workspace", "email", "api_token"]
    properties = spec["properties"]
    assert sorted(properties, key=lambda k: properties[k]["order"]) == [
        "workspace", "email", "api_token", "start_date", "pull_request_state", "api_url", "max_waiting_time", "num_workers"
    ]
    assert properties["api_token"]["airbyte_secret"] is True
    assert properties["start_date"]["default"] == "2020-01-01T00:00:00Z"
    assert properties["pull_request_state"]["default"] == "ALL"
    assert set(properties["pull_request_state"]["enum"]) == {"ALL", "OPEN", "MERGED", "DECLINED", "SUPERSEDED"}


@responses.activate
def test_check_succeeds_with_one_cheap_request(config, tmp_path):
    responses.get(LISTING, json={"values": [], "pagelen": 1})

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.SUCCEEDED
    assert len(responses.calls) == 1
    assert responses.calls[0].request.url == f"{LISTING}?pagelen=1"
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "status_code,body,expected",
    [
        (401, "Unauthorized", "Atlassian account email"),
        (403, json.dumps({"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.",
                                                     "detail": {"required": ["read:repository:bitbucket"], "granted": ["account"]}}}),
         "required scopes: read:repository:bitbucket; granted scopes: account"),
        (404, json.dumps({"type": "error", "error": {"message": "Not found"}}), f"Workspace '{WORKSPACE}' was not found"),
        (429, "Rate limit for this resource has been exceeded", "rate limit"),
        (500, "<html>oops</html>", "HTTP 500"),
    ],
)
@responses.activate
def test_check_failures_say_what_to_do_and_do_not_retry(config, tmp_path, status_code, body, expected):
    responses.get(LISTING, status=status_code, body=body)

    status, output = run_check(config, tmp_path)

    assert status.status == Status.FAILED
    assert expected in status.message
    assert len(responses.calls) == 1
    assert TOKEN not in json.dumps([str(m) for m in output._messages])


@responses.activate
def test_check_reports_a_network_error(config, tmp_path):
    responses.get(LISTING, body=requests.ConnectionError("connection refused"))

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.FAILED and "Could not reach" in status.message


@responses.activate
def test_check_rejects_a_bad_config_before_any_request(config, tmp_path):
    config["workspace"] = "https://bitbucket.org/acme/"

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.FAILED and "'workspace'" in status.message
    assert len(responses.calls) == 0


def test_discover_declares_keys_cursors_and_sync_modes(config):
    output = discover(SourceBitbucket(), config)
    streams = {s.name: s for s in output.catalog.catalog.streams}
    declared = {
        name: (s.source_defined_primary_key, s.default_cursor_field, sorted(m.value for m in s.supported_sync_modes))
        for name, s in streams.items()
    }
    both = ["full_refresh", "incremental"]
    assert declared == {
        "repositories": ([["uuid"]], ["updated_on"], both),
        "pull_requests": ([["repository_uuid"], ["id"]], ["updated_on"], both),
        "commits": ([["repository_uuid"], ["hash"]], ["date"], both),
        "deployments": ([["uuid"]], ["completed_on"], both),
        "workspace_users": ([["user_uuid"]], None, ["full_refresh"]),
    }
    for stream in streams.values():
        properties = stream.json_schema["properties"]
        for key in stream.source_defined_primary_key:
            assert key[0] in properties
        assert "$ref" not in json.dumps(stream.json_schema)
