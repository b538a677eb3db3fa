"""How HTTP failures from Bitbucket become retries, skips or clear, actionable errors.

* 401 fails at once with a ``config_error`` (wrong email, retired app password, unscoped token).
* 403 names the missing scopes from the error body's ``detail`` (``{"required": [...], "granted": [...]}``).
* 404 on a workspace-level listing means the workspace slug is wrong.
* A 403 that is Bitbucket's scope error (``detail.required``) fails the stream at once, naming the
  scope: every repository would answer the same.
* On a repository's sub-resource (pull requests, commits, deployments) any other 403, and a 404,
  skip that repository for that stream (no access, Pipelines off, deleted mid-sync) with one warning.
* 429, 5xx, network errors and 200 answers that are not a list page are retried by the CDK's
  ``HttpClient``, waiting as ``source_bitbucket.backoff`` says.

Source: Bitbucket's error shape ``{"type": "error", "error": {"message", "detail", ...}}``
(https://developer.atlassian.com/cloud/bitbucket/rest/intro/#standardized-error-responses); 429 and some 401/404 bodies are plain text.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, List, Mapping, Optional, Union
from urllib.parse import urlparse

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import (
    ErrorResolution,
    HttpStatusErrorHandler,
    ResponseAction,
)
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import DEFAULT_ERROR_MAPPING

from source_bitbucket.config import same_api_host

UNAUTHORIZED_MESSAGE = (
    "Bitbucket rejected the credentials (HTTP 401). Set 'email' to your Atlassian account email "
    "(not the Bitbucket username) and 'api_token' to an API token created with scopes at "
    "https://id.atlassian.com/manage-profile/security/api-tokens (app passwords and unscoped tokens no longer work)."
)
UNAUTHORIZED_MESSAGES = {  # by credentials.auth_type
    "api_token": UNAUTHORIZED_MESSAGE,
    "access_token": "Bitbucket rejected the access token (HTTP 401): it was revoked or has expired. Create a new "
                    "workspace, project or repository access token (its Settings > Access tokens) and set "
                    "'credentials.access_token' to it.",
    "oauth2.0": "Bitbucket rejected the OAuth credentials (HTTP 401). Check 'credentials.client_id' and "
                "'credentials.client_secret' (the OAuth consumer's key and secret), and authorize the connector again "
                "if the refresh token was revoked or went unused for 3 months.",
}


_BODY = "_bitbucket_json"
_NOT_JSON = object()


def json_body(response: requests.Response) -> Optional[Any]:
    """The response's decoded JSON body, decoded once and cached on the response; None when the
    body is not JSON (an HTML error page, a truncated body)."""
    body = _decoded(response)
    return None if body is _NOT_JSON else body


def _decoded(response: requests.Response) -> Any:
    if not hasattr(response, _BODY):
        try:
            body = response.json()
        except ValueError:
            body = _NOT_JSON
        setattr(response, _BODY, body)
    return getattr(response, _BODY)


def is_page(response: requests.Response) -> bool:
    """Whether a 200 is a whole list page: a JSON object with a ``values`` list (the only field
    Bitbucket guarantees). Anything else (truncated JSON, an HTML page, a page without ``values``)
    is retried: skipping it would let the cursor move past records never read."""
    body = _decoded(response)
    return isinstance(body, Mapping) and isinstance(body.get("values"), list)


def is_object(response: requests.Response, key: str) -> bool:
    """Whether a 200 is a whole single object: a JSON object with a string ``key`` (e.g. ``uuid``)."""
    body = _decoded(response)
    return isinstance(body, Mapping) and isinstance(body.get(key), str)


def error_detail(response: requests.Response) -> str:
    """A one-line description of a Bitbucket error response: its JSON ``error.message`` (and
    ``detail``), or the start of a plain-text body. Never raises."""
    body = _decoded(response)
    if body is _NOT_JSON:
        text = " ".join((response.text or "").split())
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


API_TOKENS_PAGE = "https://id.atlassian.com/manage-profile/security/api-tokens"
SCOPE_ERROR_MARKER = "required privilege scopes"


def missing_scopes(response: requests.Response) -> Optional[List[str]]:
    """The scopes a 403 says the credentials lack, or None when the 403 is not a scope error.

    Bitbucket answers a missing scope with ``{"type": "error", "error": {"message": "Your
    credentials lack one or more required privilege scopes.", "detail": {"required": [...],
    "granted": [...]}}}`` (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#standardized-error-responses; https://github.com/backstage/backstage/issues/22383).
    Any other 403 (no access to one repository, a private repository, an admin-only endpoint)
    returns None. An empty list means a scope error that did not name the scope.
    """
    if response.status_code != 403:
        return None
    body = _decoded(response)
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None
    detail = error.get("detail")
    required = detail.get("required") if isinstance(detail, Mapping) else None
    if isinstance(required, list):
        return [str(scope) for scope in required]
    if SCOPE_ERROR_MARKER in str(error.get("message") or "").lower():
        return []
    return None


def forbidden_message(response: requests.Response, stream_name: str, scope: str) -> str:
    """The message for a 403 that stops a stream: what Bitbucket said, which scope is missing
    (Bitbucket's ``detail.required``, else ``scope``, the stream's ``required_scope``) and where to add it."""
    scopes = missing_scopes(response) or [scope or "the stream's read scope"]
    return (
        f"Bitbucket refused access to {stream_name} (HTTP 403: {error_detail(response)}). The API token needs the "
        f"scope {', '.join(scopes)}: {_token_fix('it', stream_name)}"
    )


def missing_scopes_message(scopes: Mapping[str, List[str]]) -> str:
    """The check's message for the scopes a token lacks, ``{scope: [stream names that need it]}``."""
    listed = "; ".join(f"{scope} (for {', '.join(streams)})" for scope, streams in scopes.items())
    fix = _token_fix("them", "those streams")
    return f"The API token lacks these scopes: {listed}. {fix[0].upper()}{fix[1:]}"


def _token_fix(scopes: str, streams: str) -> str:
    """What to do about a missing scope: the one wording of it."""
    return (
        f"create a token with {scopes} at {API_TOKENS_PAGE} (Create API token with scopes, app Bitbucket) "
        f"and put it in 'api_token', or leave {streams} out of the connection."
    )


def workspace_not_found_message(workspace: str) -> str:
    """The message for a 404 on a workspace-level listing: the workspace slug is wrong."""
    return (
        f"Workspace '{workspace}' was not found (HTTP 404). Check 'workspace': it is the slug in "
        f"https://bitbucket.org/<workspace>/, and the token's account must be a member of it."
    )


def foreign_redirect_message(url: str, api_url: str) -> str:
    """The message for an answer that a redirect brought from another server than ``api_url``."""
    target, api = urlparse(url), urlparse(api_url)
    return (
        f"Bitbucket redirected a request to {target.scheme}://{target.netloc or '?'}, not to the configured API "
        f"{api.scheme}://{api.netloc}; its answer is not used (credentials are only sent to the API). If that server "
        f"is the API, set 'api_url' to its address as the redirects write it."
    )


def foreign_link_message(link: str, api_url: str) -> str:
    """The message for a ``next`` link that points at another server than ``api_url``."""
    target, api = urlparse(link), urlparse(api_url)
    return (
        f"Bitbucket's next-page link points to {target.scheme}://{target.netloc or '?'}, not to the configured API "
        f"{api.scheme}://{api.netloc}; refusing to send credentials there. If that server is the API, set 'api_url' "
        f"to its address as the links write it."
    )


# The CDK looks exceptions up by exact class; name the usual network failures so that they are
# retried as transient errors rather than logged as "unexpected".
_NETWORK_ERRORS = {
    error: ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"Network error ({error.__name__}).")
    for error in (
        requests.ConnectionError,
        requests.Timeout,
        requests.ConnectTimeout,
        requests.ReadTimeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )
}


class BitbucketErrorHandler(HttpStatusErrorHandler):
    """The CDK's status handler with Bitbucket's meanings for 401/403/404.

    Args:
        logger: the stream's logger.
        stream_name: used in messages.
        scope: the API-token scope the stream needs (its ``required_scope``), named by 403 messages.
        on_scope_missing: called with the message when a 403 is Bitbucket's scope error, so that the
            stream sends no more requests (every repository would answer the same).
        skips: ``response -> bool``, whether an answer skips the current partition (IGNORE) instead
            of failing or being retried (the stream's ``is_skipped``: a plain 403 or a 404 on a
            repository's sub-resource; default: nothing is skipped). Asked first, so a stream may
            skip a scope error too.
        workspace: the slug, for the 404 message of workspace-level listings.
        stop_sync: set when no other stream can succeed either (a 401: the credentials; a 404 on a
            workspace-level listing: the workspace), so that the source stops the sync at once
            with that one error instead of failing every stream the same way.
        is_whole: ``response -> bool``, whether a 200 is a whole answer (default ``is_page``); one
            that is not is retried.
        api_url: the configured API; an answer a redirect brought from another server fails the
            stream (requests follows redirects and drops the credentials on another host; e.g.
            the pull request diffstat's 302).
        auth_type: the credentials' kind (``config.Credentials.auth_type``): names the fix of a 401; with
            ``oauth2.0`` a 401 first refreshes the access token once and retries (the CDK's
            REFRESH_TOKEN_THEN_RETRY), and only a 401 after that fails.
    """

    def __init__(
        self,
        logger: logging.Logger,
        stream_name: str,
        scope: str = "",
        on_scope_missing: Optional[Callable[[str], None]] = None,
        skips: Callable[[requests.Response], bool] = lambda response: False,
        workspace: str = "",
        stop_sync: Optional[threading.Event] = None,
        is_whole: Callable[[requests.Response], bool] = is_page,
        api_url: str = "",
        auth_type: str = "api_token",
        **kwargs: Any,
    ):
        super().__init__(logger=logger, error_mapping={**DEFAULT_ERROR_MAPPING, **_NETWORK_ERRORS}, **kwargs)
        self._stream_name = stream_name
        self._scope = scope
        self._on_scope_missing = on_scope_missing
        self._skips = skips
        self._workspace = workspace
        self._stop_sync = stop_sync
        self._is_whole = is_whole
        self._api_url = api_url
        self._auth_type = auth_type

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]] = None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            status = response_or_exception.status_code
            if response_or_exception.history and self._api_url and not same_api_host(response_or_exception.url, self._api_url):
                return ErrorResolution(ResponseAction.FAIL, FailureType.system_error,
                                       foreign_redirect_message(response_or_exception.url, self._api_url))
            if response_or_exception.ok and not self._is_whole(response_or_exception):
                return ErrorResolution(
                    ResponseAction.RETRY,
                    FailureType.transient_error,
                    f"Bitbucket sent a {self._stream_name} page that is not JSON with a 'values' list (HTTP {status}).",
                )
            if self._skips(response_or_exception):
                return ErrorResolution(ResponseAction.IGNORE, FailureType.config_error, None)
            if missing_scopes(response_or_exception) is not None:  # the token lacks a scope: every repository would answer so
                message = forbidden_message(response_or_exception, self._stream_name, self._scope)
                if self._on_scope_missing is not None:
                    self._on_scope_missing(message)
                return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, message)
            if status == 401:
                message = UNAUTHORIZED_MESSAGES[self._auth_type]
                if self._auth_type == "oauth2.0":  # the CDK refreshes once; a 401 after that fails with its own message
                    return ErrorResolution(ResponseAction.REFRESH_TOKEN_THEN_RETRY, FailureType.config_error, message)
                if self._stop_sync is not None:
                    self._stop_sync.set()  # the source stops the whole sync, not just this stream
                return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, message)
            if status == 403:
                return ErrorResolution(
                    ResponseAction.FAIL, FailureType.config_error, forbidden_message(response_or_exception, self._stream_name, self._scope)
                )
            if status == 404:
                if self._stop_sync is not None:
                    self._stop_sync.set()
                return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, workspace_not_found_message(self._workspace))
            if status == 400:
                return ErrorResolution(
                    ResponseAction.FAIL,
                    FailureType.system_error,
                    f"Bitbucket rejected a {self._stream_name} request (HTTP 400: {error_detail(response_or_exception)}).",
                )
        return super().interpret_response(response_or_exception)
