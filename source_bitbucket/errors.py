"""How HTTP failures from Bitbucket become retries, skips or clear, actionable errors.

* 401 fails at once with a ``config_error`` (wrong email, retired app password, unscoped token).
* 403 names the missing scopes from the error body's ``detail`` (``{"required": [...], "granted": [...]}``).
* 404 on a workspace-level listing means the workspace slug is wrong.
* On a repository's sub-resource (pull requests, commits, deployments) 403 and 404 skip that
  repository for that stream (no access, Pipelines off, deleted mid-sync) with one warning.
* 429, 5xx and network errors are retried with backoff by the CDK's ``HttpClient``.

Source: Bitbucket's error shape ``{"type": "error", "error": {"message", "detail", ...}}``
(narrative "Standardized error responses"); 429 and some 401/404 bodies are plain text.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Union

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, HttpStatusErrorHandler, ResponseAction
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import DEFAULT_ERROR_MAPPING

REQUIRED_SCOPES = {
    "repositories": "read:repository:bitbucket",
    "commits": "read:repository:bitbucket",
    "pull_requests": "read:pullrequest:bitbucket",
    "deployments": "read:pipeline:bitbucket",
    "workspace_users": "read:workspace:bitbucket",
}

UNAUTHORIZED_MESSAGE = (
    "Bitbucket rejected the credentials (HTTP 401). Set 'email' to your Atlassian account email "
    "(not the Bitbucket username) and 'api_token' to an API token created with scopes at "
    "https://id.atlassian.com/manage-profile/security/api-tokens (app passwords and unscoped tokens no longer work)."
)


def error_detail(response: requests.Response) -> str:
    """A one-line description of a Bitbucket error response: its JSON ``error.message`` (and
    ``detail``), or the start of a plain-text body. Never raises."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip().replace("\n", " ")
        return text[:200] if text and not text.lstrip().startswith("<") else f"HTTP {response.status_code}"
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        parts = [str(error.get("message") or "")]
        detail = error.get("detail")
        if isinstance(detail, Mapping):
            parts.append(f"required scopes: {', '.join(detail.get('required') or [])}")
            parts.append(f"granted scopes: {', '.join(detail.get('granted') or []) or 'none'}")
        elif detail:
            parts.append(str(detail))
        return " ".join("; ".join(p for p in parts if p).split())
    return f"HTTP {response.status_code}"


def forbidden_message(response: requests.Response, stream_name: str) -> str:
    """The message for a 403: what Bitbucket said and which scope the stream needs."""
    scope = REQUIRED_SCOPES.get(stream_name, "the stream's read scope")
    return (
        f"Bitbucket refused access to {stream_name} (HTTP 403: {error_detail(response)}). "
        f"The API token needs the scope {scope}; create a new token with it."
    )


class BitbucketErrorHandler(HttpStatusErrorHandler):
    """The CDK's status handler with Bitbucket's meanings for 401/403/404.

    Args:
        logger: the stream's logger.
        stream_name: used in messages and to name the missing scope.
        skip_statuses: statuses that skip the current repository (IGNORE) instead of failing;
            ``{403, 404}`` for repository-scoped streams, empty for workspace-level ones.
        workspace: the slug, for the 404 message of workspace-level listings.
    """

    def __init__(self, logger: logging.Logger, stream_name: str, skip_statuses=frozenset(), workspace: str = "", **kwargs: Any):
        super().__init__(logger=logger, error_mapping=dict(DEFAULT_ERROR_MAPPING), **kwargs)
        self._stream_name = stream_name
        self._skip_statuses = frozenset(skip_statuses)
        self._workspace = workspace

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]] = None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            status = response_or_exception.status_code
            if status in self._skip_statuses:
                return ErrorResolution(ResponseAction.IGNORE, FailureType.config_error, None)
            if status == 401:
                return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, UNAUTHORIZED_MESSAGE)
            if status == 403:
                return ErrorResolution(
                    ResponseAction.FAIL, FailureType.config_error, forbidden_message(response_or_exception, self._stream_name)
                )
            if status == 404:
                return ErrorResolution(
                    ResponseAction.FAIL,
                    FailureType.config_error,
                    f"Workspace '{self._workspace}' was not found (HTTP 404). Check 'workspace': it is the slug in "
                    f"https://bitbucket.org/<workspace>/, and the token's account must be a member of it.",
                )
            if status == 400:
                return ErrorResolution(
                    ResponseAction.FAIL,
                    FailureType.system_error,
                    f"Bitbucket rejected a {self._stream_name} request (HTTP 400: {error_detail(response_or_exception)}).",
                )
        return super().interpret_response(response_or_exception)
