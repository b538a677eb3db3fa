"""The connection check: do the credentials work, and which scopes does the token lack?

Requests (none of them retried or rate-limit-waited; a check answers in seconds):

1. ``GET /repositories/{workspace}?pagelen=1``: the credentials, the workspace and the
   ``read:repository:bitbucket`` scope (repositories, commits). Its ``next`` link, when there is
   one, must pass the same host rule as a sync's (``same_api_host``).
2. With the first repository of that page, ``GET .../{repository}/pullrequests?pagelen=1``
   (``read:pullrequest:bitbucket``) and ``GET .../{repository}/deployments?pagelen=1``
   (``read:pipeline:bitbucket``).
3. ``GET /workspaces/{workspace}/members?pagelen=1`` (``read:workspace:bitbucket``) and
   ``GET /workspaces/{workspace}/projects?pagelen=1`` (``read:project:bitbucket``).

With OAuth credentials the token endpoint is asked first (a refusal names the fields to fix).
With a repository selection (``repositories``, ``projects``, ``partition``...), the whole listing is
counted too (one request per 100 repositories, only the fields the selection reads), and a selection
matching no repository fails the check.
So a check costs 5 requests (3 in a workspace without repositories). Only Bitbucket's scope
error (a 403 with ``detail.required``, see ``missing_scopes``) counts as a missing scope; any
other answer to steps 2 and 3 (a 404 where Pipelines are off, a 429) says nothing about scopes
and is only logged. A missing repository or pull request scope fails the check (every sync
needs them); a missing pipeline, workspace or project scope only fails the streams that need it, so the
check succeeds and logs a warning naming them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple
from urllib.parse import quote

import requests
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.auth import AuthBase

from source_bitbucket.config import ACCESS_TOKEN, BitbucketConfig, same_api_host
from source_bitbucket.streams import STREAM_CLASSES, Deployments, Projects, PullRequests, Repositories, WorkspaceUsers
from source_bitbucket.errors import (
    UNAUTHORIZED_MESSAGES,
    error_detail,
    foreign_link_message,
    forbidden_message,
    json_body,
    missing_scopes,
    missing_scopes_message,
    workspace_not_found_message,
)

CHECK_TIMEOUT_SECONDS = 30
OAUTH_TOKEN_FIX = ("Check 'credentials.client_id' and 'credentials.client_secret' (the OAuth consumer's key and secret); "
                   "a refresh token revoked, already used or unused for 3 months needs the connector authorized again.")


@dataclass(frozen=True)
class ScopeProbe:
    """One cheap request that needs one scope family.

    Attributes:
        scope: the API-token scope the request needs.
        streams: the streams that fail without it.
        core: whether the check fails without it (else it warns).
        resource: the path below the repository (``pullrequests``), or below the workspace
            (``members``) when ``per_repository`` is False.
    """

    scope: str
    streams: Tuple[str, ...]
    core: bool
    resource: str
    per_repository: bool = True


def _probe(stream: type, core: bool, resource: str, per_repository: bool = True) -> ScopeProbe:
    """A probe for ``stream``'s scope, naming every registered stream that needs the same scope."""
    scope = stream.required_scope
    return ScopeProbe(scope, tuple(s.name for s in STREAM_CLASSES if s.required_scope == scope), core, resource, per_repository)


PROBES = (
    _probe(PullRequests, core=True, resource=PullRequests.resource),
    _probe(Deployments, core=False, resource=Deployments.resource),
    _probe(WorkspaceUsers, core=False, resource="members", per_repository=False),
    _probe(Projects, core=False, resource="projects", per_repository=False),
)


def check_connection(
    config: BitbucketConfig, auth: AuthBase, logger: logging.Logger
) -> Tuple[bool, Optional[str]]:
    """Run the check's requests (see the module docstring).

    Returns:
        (True, None) when a sync can run; (False, message) naming what to fix otherwise.
    """
    workspace = quote(config.workspace, safe="")
    if hasattr(auth, "get_access_token"):  # OAuth: a token first, from the token endpoint
        try:
            auth.get_access_token()
        except (AirbyteTracedException, requests.RequestException) as error:
            return False, _token_failure_message(error)
    try:
        listing = _get(f"{config.api_url}/repositories/{workspace}", auth)
    except requests.RequestException as error:
        return False, f"Could not reach {config.api_url}: {type(error).__name__}. Check the network and 'api_url'."
    if not listing.ok:
        return False, _listing_failure_message(listing, config)
    body = json_body(listing)
    body = body if isinstance(body, Mapping) else {}
    next_link = body.get("next")
    if next_link and not same_api_host(str(next_link), config.api_url):
        return False, foreign_link_message(str(next_link), config.api_url)
    values = body.get("values") if isinstance(body.get("values"), list) else []
    repository = next((v.get("uuid") for v in values if isinstance(v, Mapping) and v.get("uuid")), None)
    try:
        matched, listed = _count_selected(config, auth) if not config.selection.everything else (None, None)
    except requests.RequestException as error:
        logger.info(f"check: the selection's repositories were not counted ({type(error).__name__}).")
        matched = listed = None
    if matched is not None:
        if matched == 0:
            return False, (f"No repository of the workspace matches the selection ({config.selection.describe()}; "
                           f"{listed} listed). Check 'repositories', 'excluded_repositories', 'projects', 'skip_forks' "
                           "and 'partition'.")
        logger.info(f"check: {matched} of {listed} repositories match the selection ({config.selection.describe()}).")

    missing: List[ScopeProbe] = []
    for probe in PROBES:
        if not probe.per_repository:
            url = f"{config.api_url}/workspaces/{workspace}/{probe.resource}"
        elif repository is not None:
            url = f"{config.api_url}/repositories/{workspace}/{quote(str(repository), safe='')}/{probe.resource}"
        else:
            continue  # no repository to ask: the scope cannot be told apart from an empty workspace
        try:
            response = _get(url, auth)
        except requests.RequestException as error:
            logger.info(f"check: could not ask for {probe.scope} ({type(error).__name__}); not checked.")
            continue
        if missing_scopes(response) is not None:
            missing.append(probe)
        elif response.status_code == 403 and not probe.per_repository and config.credentials.auth_type == ACCESS_TOKEN:
            logger.warning(f"check: this access token cannot read {', '.join(probe.streams)} (HTTP 403: {error_detail(response)}): "
                           "a repository or project access token sees no workspace-level data. Those streams will be "
                           "skipped with one warning; the other streams can sync.")
        elif not response.ok:
            logger.info(f"check: {probe.scope} not checked (HTTP {response.status_code}: {error_detail(response)}).")
    if any(probe.core for probe in missing):
        return False, _missing_scopes_message(missing)
    if missing:
        logger.warning(f"check: {_missing_scopes_message(missing)} The other streams can sync.")
    return True, None


SELECTION_FIELDS = "values.uuid,values.slug,values.parent.uuid,values.project.key,next"


def _count_selected(config: BitbucketConfig, auth: AuthBase) -> Tuple[int, int]:
    """(repositories the selection keeps, repositories listed): every page of the listing, with only the
    fields the selection reads (``fields=``) and its projects as BBQL; a page that fails ends the count."""
    params = {"pagelen": 100, "fields": SELECTION_FIELDS}
    if config.selection.bbql():
        params["q"] = config.selection.bbql()
    url: Optional[str] = f"{config.api_url}/repositories/{quote(config.workspace, safe='')}"
    matched = listed = 0
    while url:
        response = requests.get(url, params=params, auth=auth, timeout=CHECK_TIMEOUT_SECONDS)
        body = json_body(response) if response.ok else None
        if not isinstance(body, Mapping):
            break
        values = [v for v in body.get("values") or [] if isinstance(v, Mapping)]
        listed += len(values)
        matched += sum(1 for v in values if config.selection.keeps(v))
        url = body.get("next") if same_api_host(str(body.get("next") or ""), config.api_url) else None
        params = {}  # the next link carries every parameter
    return matched, listed


def _token_failure_message(error: Exception) -> str:
    response = getattr(error, "response", None)
    if response is not None:
        body = json_body(response)
        reason = body.get("error") if isinstance(body, Mapping) else None
        answer = f"HTTP {response.status_code}{': ' + str(reason) if reason else ''}"
    else:
        answer = getattr(error, "message", None) or type(error).__name__
    return f"Bitbucket's OAuth token endpoint did not issue an access token ({answer}). {OAUTH_TOKEN_FIX}"


def _get(url: str, auth: AuthBase) -> requests.Response:
    return requests.get(url, params={"pagelen": 1}, auth=auth, timeout=CHECK_TIMEOUT_SECONDS)


def _missing_scopes_message(missing: List[ScopeProbe]) -> str:
    return missing_scopes_message({probe.scope: list(probe.streams) for probe in missing})


def _listing_failure_message(response: requests.Response, config: BitbucketConfig) -> str:
    status = response.status_code
    if status == 401:
        return UNAUTHORIZED_MESSAGES[config.credentials.auth_type]
    if status == 403:
        return forbidden_message(response, Repositories.name, Repositories.required_scope)
    if status == 404:
        return workspace_not_found_message(config.workspace)
    if status == 429:
        return "Bitbucket's rate limit is exhausted for this account (HTTP 429); try again in a few minutes."
    return f"Bitbucket answered HTTP {status} ({error_detail(response)}); try again later."
