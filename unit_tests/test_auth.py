"""The credentials choice: config forms, the header each sends, OAuth refreshes and their control message."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest
import responses
from airbyte_cdk.models import FailureType, Status
from airbyte_cdk.test.entrypoint_wrapper import _run_command

from source_bitbucket import SourceBitbucket
from source_bitbucket.auth import BITBUCKET_TOKEN_URL, token_url
from source_bitbucket.config import BitbucketConfig, ConfigError
from unit_tests.conftest import API, WORKSPACE, page, repository, run_read

LISTING = f"{API}/repositories/{WORKSPACE}"
NOW = datetime(2026, 12, 3, tzinfo=timezone.utc)
CLIENT_ID, CLIENT_SECRET = "consumer-key-1a2b", "consumer-secret-9z8y"


def oauth(**extra):
    return {"workspace": WORKSPACE, "credentials": {"auth_type": "oauth2.0", "client_id": CLIENT_ID,
                                                    "client_secret": CLIENT_SECRET, **extra}}


def token_answer(access: str, refresh: str = "refresh-2", expires_in: int = 7200):
    return {"access_token": access, "token_type": "bearer", "expires_in": expires_in, "refresh_token": refresh,
            "scopes": "repository pullrequest"}


# ------------------------------------------------------------------ config forms
def test_top_level_email_and_api_token_read_as_the_api_token_choice():
    legacy = BitbucketConfig.from_mapping({"workspace": "acme", "email": "me@example.com", "api_token": "tok"}, now=NOW)
    chosen = BitbucketConfig.from_mapping(
        {"workspace": "acme", "credentials": {"auth_type": "api_token", "email": "me@example.com", "api_token": "tok"}}, now=NOW)
    assert legacy.credentials == chosen.credentials
    assert (chosen.credentials.auth_type, chosen.credentials.email, chosen.credentials.api_token) == ("api_token", "me@example.com", "tok")


@pytest.mark.parametrize("credentials,auth_type", [
    ({"auth_type": "access_token", "access_token": "bbat-1"}, "access_token"),
    ({"access_token": "bbat-1"}, "access_token"),  # without auth_type: told by the fields
    ({"client_id": "k", "client_secret": "s"}, "oauth2.0"),
    ({"email": "me@example.com", "api_token": "t"}, "api_token"),
])
def test_each_choice_is_read(credentials, auth_type):
    assert BitbucketConfig.from_mapping({"workspace": "acme", "credentials": credentials}, now=NOW).credentials.auth_type == auth_type


@pytest.mark.parametrize("config,field", [
    ({"workspace": "acme"}, "credentials"),
    ({"workspace": "acme", "credentials": "tok"}, "credentials"),
    ({"workspace": "acme", "credentials": {"auth_type": "password"}}, "credentials.auth_type"),
    ({"workspace": "acme", "credentials": {"auth_type": "access_token", "access_token": " bbat "}}, "credentials.access_token"),
    ({"workspace": "acme", "credentials": {"auth_type": "oauth2.0", "client_id": "k"}}, "credentials.client_secret"),
    ({"workspace": "acme", "credentials": {"auth_type": "api_token", "email": "me", "api_token": "t"}}, "credentials.email"),
])
def test_bad_credentials_name_the_field_and_never_the_secret(config, field):
    with pytest.raises(ConfigError) as error:
        BitbucketConfig.from_mapping(config, now=NOW)
    assert error.value.field == field and error.value.failure_type == FailureType.config_error
    assert "bbat" not in error.value.message


def test_the_token_endpoint_is_bitbucket_s_for_bitbucket_s_api_and_the_sandbox_s_otherwise():
    assert token_url("https://api.bitbucket.org/2.0") == BITBUCKET_TOKEN_URL == "https://bitbucket.org/site/oauth2/access_token"
    assert token_url("http://127.0.0.1:8765/2.0") == "http://127.0.0.1:8765/site/oauth2/access_token"


# ------------------------------------------------------------------ what is sent
@responses.activate
def test_an_access_token_is_sent_as_a_bearer_token():
    responses.get(LISTING, json=page([repository(1)]))
    output = run_read({"workspace": WORKSPACE, "credentials": {"auth_type": "access_token", "access_token": "bbat-xyz"}},
                      ["repositories"])
    assert len(output.records) == 1
    assert responses.calls[0].request.headers["Authorization"] == "Bearer bbat-xyz"
    assert "bbat-xyz" not in "".join(m.log.message for m in output.logs)


@responses.activate
def test_oauth_refresh_token_grant_sends_the_consumer_as_basic_auth_and_writes_the_rotated_token_back(capsys):
    token = responses.post(BITBUCKET_TOKEN_URL, json=token_answer("access-1", refresh="refresh-2"))
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(oauth(refresh_token="refresh-1"), ["repositories"])

    assert len(output.records) == 1 and token.call_count == 1
    sent = token.calls[0].request
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert parse_qs(sent.body) == {"grant_type": ["refresh_token"], "refresh_token": ["refresh-1"]}  # no secret in the body
    assert responses.calls[1].request.headers["Authorization"] == "Bearer access-1"
    # the CDK prints the CONNECTOR_CONFIG control message straight to stdout, where the platform reads it
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    updates = [m["control"]["connectorConfig"]["config"] for m in lines if m.get("type") == "CONTROL"]
    assert updates and updates[-1]["credentials"]["refresh_token"] == "refresh-2"
    assert updates[-1]["credentials"]["access_token"] == "access-1" and updates[-1]["credentials"]["token_expiry_date"]


@responses.activate
def test_oauth_client_credentials_grant_needs_no_refresh_token():
    token = responses.post(BITBUCKET_TOKEN_URL, json=token_answer("access-cc"))
    responses.get(LISTING, json=page([repository(1)]))

    output = run_read(oauth(), ["repositories"])

    assert len(output.records) == 1
    assert parse_qs(token.calls[0].request.body) == {"grant_type": ["client_credentials"]}
    assert responses.calls[1].request.headers["Authorization"] == "Bearer access-cc"


@responses.activate
def test_a_valid_stored_access_token_is_used_without_a_refresh():
    responses.get(LISTING, json=page([repository(1)]))
    expiry = (datetime.now(timezone.utc) + timedelta(minutes=30)).isoformat()
    output = run_read(oauth(refresh_token="refresh-1", access_token="access-0", token_expiry_date=expiry), ["repositories"])
    assert len(output.records) == 1 and len(responses.calls) == 1
    assert responses.calls[0].request.headers["Authorization"] == "Bearer access-0"


@responses.activate
def test_a_401_refreshes_the_oauth_token_once_and_retries_with_the_new_one():
    expiry = (datetime.now(timezone.utc) + timedelta(minutes=30)).isoformat()
    responses.post(BITBUCKET_TOKEN_URL, json=token_answer("access-new", refresh="refresh-2"))
    responses.get(LISTING, status=401, body="Token expired", match=[responses.matchers.header_matcher({"Authorization": "Bearer access-old"})])
    responses.get(LISTING, json=page([repository(1)]), match=[responses.matchers.header_matcher({"Authorization": "Bearer access-new"})])

    output = run_read(oauth(refresh_token="refresh-1", access_token="access-old", token_expiry_date=expiry), ["repositories"])

    assert len(output.records) == 1
    assert [c.request.url.split("?")[0] for c in responses.calls] == [LISTING, BITBUCKET_TOKEN_URL, LISTING]


@responses.activate
def test_a_401_after_the_refresh_fails_the_sync_as_a_config_error():
    responses.post(BITBUCKET_TOKEN_URL, json=token_answer("access-new"))
    responses.get(LISTING, status=401, body="Token is invalid")

    output = run_read(oauth(refresh_token="refresh-1"), ["repositories"], expect_failure=True)

    assert output.errors and output.errors[-1].trace.error.failure_type == FailureType.config_error
    assert sum(1 for c in responses.calls if c.request.url.startswith(BITBUCKET_TOKEN_URL)) <= 2  # no refresh loop


@responses.activate
def test_check_says_which_fields_to_fix_when_the_token_endpoint_refuses(tmp_path):
    responses.post(BITBUCKET_TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "Invalid refresh_token"})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(oauth(refresh_token="refresh-used")))

    output = _run_command(SourceBitbucket(), ["check", "--config", str(path)])

    [status] = output.connection_status_messages
    assert status.connectionStatus.status == Status.FAILED
    assert "credentials.client_id" in status.connectionStatus.message and "refresh-used" not in status.connectionStatus.message
    assert len(responses.calls) == 1  # nothing sent to the API without a token


@responses.activate
def test_an_unreadable_stored_token_expiry_means_a_refresh_not_a_crash():
    responses.post(BITBUCKET_TOKEN_URL, json=token_answer("access-1"))
    responses.get(LISTING, json=page([repository(1)]))
    output = run_read(oauth(refresh_token="refresh-1", access_token="old", token_expiry_date="next tuesday"), ["repositories"])
    assert len(output.records) == 1 and responses.calls[1].request.headers["Authorization"] == "Bearer access-1"
