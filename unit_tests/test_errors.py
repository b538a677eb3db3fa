"""error_detail and BitbucketErrorHandler on hand-built responses and recorded Bitbucket error bodies."""

import base64
import json
import logging
from pathlib import Path

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ResponseAction

from source_bitbucket.errors import UNAUTHORIZED_MESSAGE, BitbucketErrorHandler, error_detail, missing_scopes
from source_bitbucket.streams import STREAM_CLASSES

FIXTURES = Path(__file__).resolve().parent / "resource" / "bitbucket-api"
URL = "https://api.bitbucket.org/2.0/repositories/acme/%7Bbbbb%7D/pullrequests?state=OPEN"
TOKEN = "ATATT3x-errors-test-secret-51d0"
LOGGER = logging.getLogger("test_errors")

SCOPES_BODY = {
    "type": "error",
    "error": {
        "message": "Your credentials lack one or more required privilege scopes.",
        "detail": {"granted": ["read:repository:bitbucket"], "required": ["read:pullrequest:bitbucket"]},
    },
}
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><h1>Bad Gateway</h1><script>var x = 1;</script></body></html>"
)


def make_response(status, body=b"", content_type=None):
    if isinstance(body, (dict, list)):
        body, content_type = json.dumps(body).encode(), content_type or "application/json"
    elif isinstance(body, str):
        body = body.encode()
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.encoding = "utf-8"
    if content_type:
        response.headers["Content-Type"] = content_type
    auth = base64.b64encode(f"dev@example.com:{TOKEN}".encode()).decode()
    response.request = requests.Request("GET", URL, headers={"Authorization": f"Basic {auth}"}).prepare()
    response.url = URL
    return response


def fixture_response(status, name):
    path = FIXTURES / name
    content_type = "application/json" if name.endswith(".json") else "text/plain"
    return make_response(status, path.read_bytes(), content_type)


def handler(stream_name="pull_requests", skip_statuses=frozenset(), workspace="acme", scope="read:pullrequest:bitbucket"):
    def skips(response):  # as BitbucketStream.is_skipped
        return response.status_code in skip_statuses and missing_scopes(response) is None

    return BitbucketErrorHandler(LOGGER, stream_name=stream_name, scope=scope, skips=skips, workspace=workspace)


# --- error_detail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,name,expected",
    [
        (401, "error_401__bitbucket-cli-issue30__1.json", "Token is invalid, expired, or not supported for this endpoint."),
        (403, "error_403__bitbucket-cli-issue30__1.json", "Forbidden"),
        (404, "error_404__go-scm__1.json", "Repository dev/null not found"),
        (400, "error_400__sourcegraph__1.json", "newstatus: This pull request is already closed."),
        (500, "error_unknown__pybitbucket__1.json", "'WSGIRequest' object has no attribute 'repository'"),
        (429, "error_429__sharpbucket-issue108__1.txt", "Rate limit for this resource has been exceeded"),
        (404, "error_404__codecov__1.txt", "Not Found"),
        (403, "error_403__jenkins-bbs-issue315__1.txt", "Access denied. You must have write or admin access."),
    ],
)
def test_error_detail_on_recorded_bodies(status, name, expected):
    assert error_detail(fixture_response(status, name)) == expected


def test_error_detail_with_string_detail():
    detail = error_detail(fixture_response(404, "error_404__sourcegraph__2.json"))
    assert detail.startswith("Resource not found; There is no API hosted at this URL.")
    assert "https://developer.acme-team-3.com/bitbucket/api/2/reference/" in detail


def test_error_detail_with_multiline_json_detail_is_one_line():
    assert "\n" not in error_detail(fixture_response(404, "error_404__sourcegraph__2.json"))


def test_error_detail_with_scope_detail():
    detail = error_detail(make_response(403, SCOPES_BODY))
    assert detail == (
        "Your credentials lack one or more required privilege scopes.; "
        "required scopes: read:pullrequest:bitbucket; granted scopes: read:repository:bitbucket"
    )


def test_error_detail_with_scope_detail_and_nothing_granted():
    body = {"type": "error", "error": {"message": "Scopes missing", "detail": {"required": ["a:b", "c:d"], "granted": []}}}
    assert error_detail(make_response(403, body)) == "Scopes missing; required scopes: a:b, c:d; granted scopes: none"


def test_error_detail_on_multiline_plain_text_is_one_short_line():
    detail = error_detail(fixture_response(401, "error_401__sourcegraph__1.txt"))
    assert detail.startswith("Bitbucket Cloud recently stopped supporting account passwords for API authentication.")
    assert "\n" not in detail
    assert len(detail) == 200


@pytest.mark.parametrize("page", [HTML_PAGE, "  \n<html><body>Service Unavailable</body></html>"])
def test_error_detail_does_not_dump_html(page):
    detail = error_detail(make_response(502, page, "text/html"))
    assert detail == "HTTP 502"


@pytest.mark.parametrize("body", [b"", b"   \n"])
def test_error_detail_on_empty_body(body):
    assert error_detail(make_response(404, body)) == "HTTP 404"


@pytest.mark.parametrize("body", [[1, 2], {"message": "not the error shape"}, {"error": "a string"}, "null"])
def test_error_detail_on_json_without_error_object(body):
    assert error_detail(make_response(500, body if not isinstance(body, str) else body.encode())) == "HTTP 500"


def test_error_detail_never_raises_on_undecodable_bytes():
    assert isinstance(error_detail(make_response(500, b"\xff\xfe\x00broken")), str)


# --- BitbucketErrorHandler.interpret_response ------------------------------------------------


@pytest.mark.parametrize(
    "name", ["error_401__bitbucket-cli-issue30__1.json", "error_401__sourcegraph__1.txt"]
)
@pytest.mark.parametrize("skip_statuses", [frozenset(), frozenset({403, 404})])
def test_401_fails_with_config_error(name, skip_statuses):
    resolution = handler(skip_statuses=skip_statuses).interpret_response(fixture_response(401, name))
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert resolution.error_message == UNAUTHORIZED_MESSAGE
    assert "'email'" in UNAUTHORIZED_MESSAGE and "'api_token'" in UNAUTHORIZED_MESSAGE


@pytest.mark.parametrize("stream_name,scope", sorted((s.name, s.required_scope) for s in STREAM_CLASSES))
def test_403_fails_with_config_error_naming_the_scope(stream_name, scope):
    resolution = handler(stream_name=stream_name, scope=scope).interpret_response(
        fixture_response(403, "error_403__migrate-bbs-to-cloud-issue9__1.json")
    )
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert scope in resolution.error_message
    assert stream_name in resolution.error_message
    assert "Forbidden" in resolution.error_message
    assert TOKEN not in resolution.error_message


def test_403_for_pull_requests_names_read_pullrequest_and_the_api_detail():
    resolution = handler(stream_name="pull_requests").interpret_response(make_response(403, SCOPES_BODY))
    assert "The API token needs the scope read:pullrequest:bitbucket" in resolution.error_message
    assert "granted scopes: read:repository:bitbucket" in resolution.error_message


def test_403_for_unknown_stream_still_explains():
    resolution = handler(stream_name="mystery", scope="").interpret_response(make_response(403, "Forbidden"))
    assert resolution.response_action == ResponseAction.FAIL
    assert "mystery" in resolution.error_message
    assert "read scope" in resolution.error_message


@pytest.mark.parametrize("name", ["error_404__codecov__1.txt", "error_404__go-scm__1.json", "error_404__sourcegraph__2.json"])
def test_404_fails_with_config_error_naming_the_workspace(name):
    resolution = handler(stream_name="repositories", workspace="acme-corp").interpret_response(fixture_response(404, name))
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert "'acme-corp'" in resolution.error_message
    assert "'workspace'" in resolution.error_message


@pytest.mark.parametrize("status", [403, 404])
def test_skip_statuses_are_ignored(status):
    body = {"type": "error", "error": {"message": "Forbidden"}}  # no access to this one repository
    resolution = handler(skip_statuses={403, 404}).interpret_response(make_response(status, body))
    assert resolution.response_action == ResponseAction.IGNORE


def test_a_scope_error_fails_the_stream_even_where_403_skips_a_repository():
    resolution = handler(stream_name="pull_requests", skip_statuses={403, 404}).interpret_response(make_response(403, SCOPES_BODY))
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert "needs the scope read:pullrequest:bitbucket" in resolution.error_message
    assert "id.atlassian.com/manage-profile/security/api-tokens" in resolution.error_message


@pytest.mark.parametrize("body, expected", [
    (SCOPES_BODY, ["read:pullrequest:bitbucket"]),
    ({"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes."}}, []),
    ({"type": "error", "error": {"message": "Forbidden"}}, None),
    ("Access denied. You must have write or admin access.", None),
])
def test_missing_scopes_tells_a_scope_error_from_other_403s(body, expected):
    assert missing_scopes(make_response(403, body)) == expected


def test_skip_statuses_only_skip_the_listed_status():
    resolution = handler(skip_statuses={404}).interpret_response(make_response(403, SCOPES_BODY))
    assert resolution.response_action == ResponseAction.FAIL


def test_400_fails_with_system_error_and_the_api_message():
    resolution = handler(stream_name="pull_requests").interpret_response(
        fixture_response(400, "error_400__sourcegraph__1.json")
    )
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.system_error
    assert "newstatus: This pull request is already closed." in resolution.error_message
    assert "pull_requests" in resolution.error_message
    assert TOKEN not in resolution.error_message


@pytest.mark.parametrize("skip_statuses", [frozenset(), frozenset({403, 404})])
def test_429_is_rate_limited(skip_statuses):
    resolution = handler(skip_statuses=skip_statuses).interpret_response(
        fixture_response(429, "error_429__sharpbucket-issue108__1.txt")
    )
    assert resolution.response_action == ResponseAction.RATE_LIMITED


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(status):
    resolution = handler().interpret_response(make_response(status, HTML_PAGE, "text/html"))
    assert resolution.response_action == ResponseAction.RETRY


@pytest.mark.parametrize(
    "exception", [requests.ConnectionError("connection reset"), requests.Timeout("read timed out")]
)
def test_network_errors_are_retried(exception):
    assert handler().interpret_response(exception).response_action == ResponseAction.RETRY


def test_success_is_not_an_error():
    resolution = handler(skip_statuses={403, 404}).interpret_response(make_response(200, {"values": []}))
    assert resolution.response_action == ResponseAction.SUCCESS
