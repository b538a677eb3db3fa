"""spec, check and discover through the real entrypoint."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import _run_command, discover

from source_bitbucket import SourceBitbucket
from unit_tests.conftest import API, TOKEN, WORKSPACE, repository, repository_url

LISTING = f"{API}/repositories/{WORKSPACE}"
MEMBERS = f"{API}/workspaces/{WORKSPACE}/members"
PROJECTS = f"{API}/workspaces/{WORKSPACE}/projects"


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
    assert spec["required"] == ["workspace"]
    properties = spec["properties"]
    assert sorted(properties, key=lambda k: properties[k]["order"]) == [
        "workspace", "credentials", "start_date", "pull_request_state", "api_url", "max_waiting_time", "num_workers",
        "repositories", "excluded_repositories", "projects", "skip_forks", "partition",
        "email", "api_token",  # configs from before the credentials choice: accepted, hidden
    ]
    assert properties["email"]["airbyte_hidden"] is properties["api_token"]["airbyte_hidden"] is True
    choices = {c["properties"]["auth_type"]["const"]: c for c in properties["credentials"]["oneOf"]}
    assert list(choices) == ["api_token", "access_token", "oauth2.0"]
    secrets = {k for c in choices.values() for k, v in c["properties"].items() if v.get("airbyte_secret")}
    assert secrets == {"api_token", "access_token", "client_id", "client_secret", "refresh_token"}
    assert properties["api_token"]["airbyte_secret"] is True
    auth = message.spec.advanced_auth
    assert auth.predicate_key == ["credentials", "auth_type"] and auth.predicate_value == "oauth2.0"
    outputs = auth.oauth_config_specification.complete_oauth_output_specification["properties"]
    assert outputs["refresh_token"]["path_in_connector_config"] == ["credentials", "refresh_token"]
    assert properties["start_date"]["default"] == "2020-01-01T00:00:00Z"
    assert properties["pull_request_state"]["default"] == "ALL"
    one, several = properties["pull_request_state"]["anyOf"]
    assert set(one["enum"]) == {"ALL", "OPEN", "MERGED", "DECLINED", "SUPERSEDED"}
    assert several["type"] == "array" and set(several["items"]["enum"]) == {"OPEN", "MERGED", "DECLINED", "SUPERSEDED"}


@responses.activate
def test_check_of_an_empty_workspace_costs_three_requests(config, tmp_path):
    responses.get(LISTING, json={"values": [], "pagelen": 1})
    responses.get(MEMBERS, json={"values": [], "pagelen": 1})
    responses.get(PROJECTS, json={"values": [], "pagelen": 1})

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.SUCCEEDED
    assert [c.request.url for c in responses.calls] == [f"{LISTING}?pagelen=1", f"{MEMBERS}?pagelen=1", f"{PROJECTS}?pagelen=1"]
    assert all(c.request.headers["Authorization"].startswith("Basic ") for c in responses.calls)


def scope_error(scope):
    return {"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.",
                                       "detail": {"required": [scope], "granted": ["read:repository:bitbucket"]}}}


def probes(pull_requests, deployments, members, projects=200):
    """The check's five requests; each probe answers 200, a scope error (its scope), or a status."""
    repo = repository(1)
    responses.get(LISTING, json={"values": [repo], "pagelen": 1, "next": f"{LISTING}?pagelen=1&page=2"})
    for url, answer, scope in ((repository_url(repo, "pullrequests"), pull_requests, "read:pullrequest:bitbucket"),
                               (repository_url(repo, "deployments"), deployments, "read:pipeline:bitbucket"),
                               (MEMBERS, members, "read:workspace:bitbucket"),
                               (PROJECTS, projects, "read:project:bitbucket")):
        if answer == 200:
            responses.get(url, json={"values": [], "pagelen": 1})
        elif answer == "scope":
            responses.get(url, status=403, json=scope_error(scope))
        else:
            responses.get(url, status=answer, body="Not Found")


@responses.activate
def test_check_with_every_scope_costs_five_requests(config, tmp_path):
    probes(200, 200, 200)

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.SUCCEEDED
    assert len(responses.calls) == 5


@responses.activate
def test_check_succeeds_with_a_warning_naming_projects_when_the_project_scope_is_missing(config, tmp_path):
    probes(200, 200, 200, projects="scope")  # e.g. a repository access token: it cannot have the project scope

    status, output = run_check(config, tmp_path)

    assert status.status == Status.SUCCEEDED
    [warning] = [m.log.message for m in output.logs if m.log.level.value == "WARN"]
    assert "read:project:bitbucket (for projects)" in warning


@responses.activate
def test_check_fails_when_the_pull_request_scope_is_missing_and_names_it(config, tmp_path):
    probes("scope", "scope", 200)

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.FAILED
    assert "read:pullrequest:bitbucket (for pull_requests" in status.message  # and any other stream needing it
    assert "read:pipeline:bitbucket (for deployments" in status.message
    assert "id.atlassian.com/manage-profile/security/api-tokens" in status.message


@responses.activate
def test_check_succeeds_with_a_warning_when_only_pipeline_or_workspace_scopes_are_missing(config, tmp_path):
    probes(200, "scope", "scope")

    status, output = run_check(config, tmp_path)

    assert status.status == Status.SUCCEEDED
    [warning] = [m.log.message for m in output.logs if m.log.level.value == "WARN"]
    assert "read:pipeline:bitbucket (for deployments" in warning and "read:workspace:bitbucket (for workspace_users" in warning
    for name in ("environments", "pipelines", "pipeline_steps"):  # every stream the pipeline scope gates is named
        assert name in warning.split("read:workspace:bitbucket")[0], warning


@responses.activate
def test_check_does_not_count_a_404_as_a_missing_scope(config, tmp_path):
    probes(200, 404, 200)  # Pipelines off in that repository

    status, output = run_check(config, tmp_path)

    assert status.status == Status.SUCCEEDED
    assert not [m for m in output.logs if m.log.level.value == "WARN"]


@responses.activate
def test_check_refuses_a_next_link_to_another_host_as_a_sync_would(config, tmp_path):
    responses.get(LISTING, json={"values": [repository(1)], "pagelen": 1, "next": "https://evil.example.com/2.0/x?page=2"})

    status, _ = run_check(config, tmp_path)

    assert status.status == Status.FAILED and "evil.example.com" in status.message and "'api_url'" in status.message
    assert len(responses.calls) == 1


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
    shipped = {  # what existing connections were configured with: a new stream must not change these
        "repositories": ([["uuid"]], ["updated_on"], both),
        "pull_requests": ([["repository_uuid"], ["id"]], ["updated_on"], both),
        "commits": ([["repository_uuid"], ["hash"]], ["date"], both),
        "deployments": ([["uuid"]], ["completed_on"], both),
        "workspace_users": ([["user_uuid"]], None, ["full_refresh"]),
    }
    assert {name: declared[name] for name in shipped} == shipped
    for stream in streams.values():
        properties = stream.json_schema["properties"]
        for key in stream.source_defined_primary_key:
            assert key[0] in properties
        assert "$ref" not in json.dumps(stream.json_schema)
